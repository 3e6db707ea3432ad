"""The example backend against a running Eshtarek (scripts/example-test starts one, seeded).

Each test signs up its own tenant, so they share nothing but the demo catalog.
"""

import json
import os
import unittest
import urllib.request
import uuid

from eshtarek_backend import Eshtarek, PlanLimit, RateLimited

BASE = os.environ.get("ESHTAREK_BASE", "http://127.0.0.1:8080")


def call(method, path, token=None, body=None):
    request = urllib.request.Request(
        BASE + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"content-type": "application/json", **({"authorization": f"Bearer {token}"} if token else {})},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response) if response.status != 204 else None


def plan_id(token, name):
    return next(p["id"] for p in call("GET", "/v1/plans?limit=100", token)["data"] if p["name"] == name)


def tenant_on(plan_name=None, plan=None):
    """A new tenant subscribed to a plan; returns (owner token, API key secret)."""
    tag = uuid.uuid4().hex[:8]
    signed_up = call(
        "POST",
        "/v1/auth/register",
        body={"email": f"backend-{tag}@example.com", "password": "correct horse battery", "name": "Backend", "tenant_name": f"Backend {tag}"},
    )
    token = signed_up["tokens"]["access_token"]
    call("POST", "/v1/subscriptions", token, {"plan_id": plan or plan_id(token, plan_name)})
    key = call("POST", "/v1/api-keys", token, {"name": "backend"})["secret"]
    return token, key


class Backend(unittest.TestCase):
    def test_a_retried_record_counts_once(self):
        token, key = tenant_on("Free")
        client = Eshtarek(BASE, key)
        first = client.record("api_calls", 10, "order-1")
        again = client.record("api_calls", 10, "order-1")  # the retry after a lost answer
        self.assertEqual(first["used"], 10)
        self.assertEqual(again["used"], 10)
        usage = call("GET", "/v1/usage", token)
        counted = next(m for m in usage["data"] if m["metric"] == "api_calls")
        self.assertEqual(counted["used"], 10, "counted once")

    def test_one_check_answers_a_feature_a_metric_and_a_rate(self):
        _, key = tenant_on("Free")
        ok, answers = Eshtarek(BASE, key).allowed(feature="priority_support", metric="api_calls", quantity=5, rate_bucket="requests")
        self.assertFalse(ok, "Free has no priority support")
        self.assertEqual(answers["priority_support"]["reason"], "disabled")
        self.assertEqual(answers["api_calls"]["reason"], "within_limit")
        self.assertEqual(answers["requests"]["reason"], "within_rate")
        self.assertEqual(answers["requests"]["remaining"], 59)

    def test_a_plan_limit_says_which_plan_would_allow_it(self):
        _, key = tenant_on("Free")
        client = Eshtarek(BASE, key)
        with self.assertRaises(PlanLimit) as refused:
            client.record("api_calls", 2000, "import-1")
        self.assertEqual(refused.exception.metric, "api_calls")
        self.assertEqual(refused.exception.upgrade_to["name"], "Business")
        # The refused 2,000 counted nothing: all 1,000 of the allowance are still there.
        self.assertEqual(client.record("api_calls", 1000, "import-2")["used"], 1000)

    def test_past_the_api_rate_the_client_is_told_when_to_retry(self):
        admin = call(
            "POST",
            "/v1/auth/login",
            body={"email": os.environ["ESHTAREK_ADMIN_EMAIL"], "password": os.environ["ESHTAREK_ADMIN_PASSWORD"]},
        )["tokens"]["access_token"]
        plan = call(
            "POST",
            "/v1/plans",
            admin,
            {
                "name": f"Tight {uuid.uuid4().hex[:6]}",
                "price": "0",
                "currency": "USD",
                "billing_cycle": "monthly",
                "rate_limits": [{"bucket": "eshtarek_api", "limit": 2, "per": "minute"}],
            },
        )["id"]
        _, key = tenant_on(plan=plan)
        client = Eshtarek(BASE, key)
        with self.assertRaises(RateLimited) as refused:
            for i in range(5):
                client.allowed(feature="priority_support")
        self.assertGreaterEqual(refused.exception.retry_after, 1)
        self.assertLessEqual(refused.exception.retry_after, 60)


if __name__ == "__main__":
    unittest.main()
