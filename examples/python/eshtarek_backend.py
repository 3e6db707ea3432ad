"""A tenant's backend talking to Eshtarek: the few calls a product makes on its hot path.

Standard library only (urllib), so it runs anywhere Python 3 does. What it shows:

- ask before doing: `allowed()` checks a feature, a metric's room and a request rate in one
  call (`POST /v1/entitlements/check`);
- record what was done with an idempotency key, and retry safely: a retry after a timeout or a
  5xx sends the same key, so Eshtarek counts the work once (`record()`);
- the refusals a backend must handle: 402 (a plan limit: show `upgrade_to`), 429 (a rate:
  wait `Retry-After` seconds), 401 (the key was revoked).
"""

import http.client
import json
import time
import urllib.error
import urllib.request


class PlanLimit(Exception):
    """402: the plan does not allow this; `upgrade_to` names a plan that would (or None)."""

    def __init__(self, problem):
        super().__init__(problem.get("detail", "plan limit reached"))
        self.problem = problem
        self.metric = problem.get("metric")
        self.upgrade_to = problem.get("upgrade_to")


class RateLimited(Exception):
    """429: past a rate; retry after `retry_after` seconds."""

    def __init__(self, problem, retry_after):
        super().__init__(problem.get("detail", "too many requests"))
        self.problem = problem
        self.retry_after = retry_after


class Eshtarek:
    def __init__(self, base_url, api_key, timeout=5.0, retries=3):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.retries = retries

    def _post(self, path, body):
        """POST JSON; retries timeouts and 5xx (the caller's body, idempotency key included,
        is sent again unchanged). Raises PlanLimit, RateLimited or HTTPError for 4xx."""
        data = json.dumps(body).encode()
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(
                self.base_url + path,
                data=data,
                method="POST",
                headers={
                    "content-type": "application/json",
                    "authorization": f"Bearer {self.api_key}",
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.load(response)
            except urllib.error.HTTPError as error:
                problem = _problem(error)
                if error.code == 402:
                    raise PlanLimit(problem) from None
                if error.code == 429:
                    raise RateLimited(problem, int(error.headers.get("Retry-After", "1"))) from None
                if error.code < 500 or attempt == self.retries:
                    raise
            # A timeout, or a connection dropped before the answer (the answer may have been
            # lost after the work was recorded): the same body, key included, is sent again.
            except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException):
                if attempt == self.retries:
                    raise
            time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    def allowed(self, feature=None, metric=None, quantity=1, rate_bucket=None):
        """One check of whatever is given; returns (allowed, the answers by key)."""
        checks = []
        if feature:
            checks.append({"feature": feature})
        if metric:
            checks.append({"metric": metric, "quantity": quantity})
        if rate_bucket:
            checks.append({"rate_bucket": rate_bucket})
        answer = self._post("/v1/entitlements/check", {"checks": checks})
        return answer["allowed"], {r["key"]: r for r in answer["results"]}

    def record(self, metric, quantity, idempotency_key):
        """Records usage once per key: a retry of the same work answers as the first did."""
        return self._post(
            "/v1/usage/events",
            {"metric": metric, "quantity": quantity, "idempotency_key": idempotency_key},
        )


def _problem(error):
    try:
        return json.load(error)
    except ValueError:
        return {"status": error.code}
