"""Mixed-load soak against the local binary (scripts/soak), stdlib only.

Tenants, each with an owner, members and an API key, under concurrent usage events, plan
changes, member changes, token refreshes, logins, cross-tenant probes and clock advances
(which run renewals), for DURATION seconds. Then the invariants: no usage over a hard limit,
every invoice sums exactly, invoice numbers 1..n per tenant, no notification twice, no
cross-tenant read. Prints throughput and counts by (operation, status); any 5xx fails.
"""
import collections
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from decimal import Decimal

BASE = os.environ["BASE"]
DURATION = float(os.environ.get("DURATION", "60"))
TENANTS = int(os.environ.get("TENANTS", "6"))
PASSWORD = "soak tenant owner password"
counts = collections.Counter()
counts_lock = threading.Lock()


def call(method, path, token=None, body=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(BASE + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, text.decode(errors="replace")
    except (urllib.error.URLError, ConnectionError, http.client.HTTPException, TimeoutError):
        # The server is down (the kill -9 of KILL_AT): no answer, so nothing was acknowledged.
        return 0, None


def record(op, status):
    with counts_lock:
        counts[(op, status)] += 1


class Session:
    """A signed-in user whose access token is refreshed (once, under a lock) when it expires."""

    def __init__(self, email, password, tenant_id=None):
        self.email, self.password, self.tenant_id = email, password, tenant_id
        self.lock = threading.Lock()
        self.login()

    def login(self):
        for _ in range(100):  # through a server restart
            status, body = call("POST", "/v1/auth/login", body={"email": self.email, "password": self.password, **({"tenant_id": self.tenant_id} if self.tenant_id else {})})
            if status != 0:
                break
            time.sleep(0.1)
        assert status == 200, (status, body)
        self.access, self.refresh_token = body["tokens"]["access_token"], body["tokens"]["refresh_token"]
        self.tenant_id = body["tokens"]["tenant_id"]

    def call(self, op, method, path, body=None):
        token = self.access
        status, answer = call(method, path, token, body)
        if status == 401:
            with self.lock:
                if self.access == token:  # nobody refreshed meanwhile
                    s, b = call("POST", "/v1/auth/refresh", body={"refresh_token": self.refresh_token})
                    record("refresh", s)
                    if s == 200:
                        self.access, self.refresh_token = b["access_token"], b["refresh_token"]
                    else:
                        self.login()
            status, answer = call(method, path, self.access, body)
        record(op, status)
        return status, answer


MAILBOX = os.environ.get("MAILBOX", "")


def invitation_token(email, kind="invitation"):
    """The newest message of `kind` mailed to `email` in the local mailbox (written before the
    request that sent it was answered)."""
    try:
        names = sorted(os.listdir(MAILBOX), reverse=True)
    except FileNotFoundError:
        return None
    for name in names:
        if name.endswith(f"-{kind}.json"):
            with open(os.path.join(MAILBOX, name)) as f:
                message = json.load(f)
            if message["to"] == email:
                return message["token"]
    return None


def setup(admin):
    def post(path, body, token=admin.access, want=201):
        status, answer = call("POST", path, token, body)
        assert status == want, (path, status, answer)
        return answer

    calls = post("/v1/limit-policies", {"metric": "api_calls", "limit": 300, "reset_period": "billing_period", "enforcement": "hard"})
    more_calls = post("/v1/limit-policies", {"metric": "api_calls", "limit": 3000, "reset_period": "billing_period", "enforcement": "hard"})
    seats = post("/v1/limit-policies", {"metric": "max_users", "limit": 4, "reset_period": "none", "enforcement": "hard"})
    small = post("/v1/plans", {"name": "Small", "price": "10.00", "currency": "USD", "billing_cycle": "monthly", "limit_policy_ids": [calls["id"], seats["id"]]})
    large = post("/v1/plans", {"name": "Large", "price": "35.50", "currency": "USD", "billing_cycle": "monthly", "limit_policy_ids": [more_calls["id"], seats["id"]]})
    tenants = []
    for n in range(TENANTS):
        email = f"owner{n}-{random.randrange(1 << 30)}@soak.example"
        status, body = call("POST", "/v1/auth/register", body={"email": email, "password": PASSWORD, "name": f"Owner {n}", "tenant_name": f"Soak {n}"})
        assert status == 201, body
        owner = Session(email, PASSWORD)
        # Inviting needs a verified address: the owner follows the mailed link, signed in.
        post("/v1/auth/verify-email", {"token": invitation_token(email, "verify_email")}, owner.access, want=200)
        post("/v1/payment-methods", {"token": "pm_card_visa"}, owner.access)
        sub = post("/v1/subscriptions", {"plan_id": small["id"]}, owner.access)
        key = post("/v1/api-keys", {"name": "soak"}, owner.access)["secret"]
        tenants.append({"owner": owner, "key": key, "sub": sub["subscription"]["id"], "members": [], "acked_members": set(), "acked_removed": set(), "n": n})
    return tenants, [small["id"], large["id"]]


def worker(tenants, plans, admin, stop):
    rng = random.Random()
    while not stop.is_set():
        t = rng.choice(tenants)
        owner = t["owner"]
        roll = rng.random()
        if roll < 0.60:
            status, body = call("POST", "/v1/usage/events", t["key"], {"metric": "api_calls", "quantity": rng.randint(1, 5), "idempotency_key": f"{rng.random()}"})
            record("usage_event", status)
            # Hard limit: an accepted event never leaves the counter above the limit in force.
            if status == 200 and body["limit"] is not None and body["used"] > body["limit"]:
                record("OVER_LIMIT", status)
        elif roll < 0.68:
            owner.call("plan_change", "POST", f"/v1/subscriptions/{t['sub']}/change", {"plan_id": rng.choice(plans), "effective": "now"})
        elif roll < 0.76:
            email = f"m{rng.randrange(1 << 30)}@soak.example"
            status, body = owner.call("member_add", "POST", f"/v1/tenants/{owner.tenant_id}/members", {"email": email, "role": "tenant_user"})
            token = status == 201 and invitation_token(email)
            if token:
                # The invitee follows the mailed link (the server's local mailbox).
                status, body = call("POST", "/v1/auth/invitations/accept", body={"token": token, "password": PASSWORD})
                record("member_accept", status)
                if status == 201:
                    t["members"].append(body["user"]["id"])
                    t["acked_members"].add(body["user"]["id"])
        elif roll < 0.82 and t["members"]:
            user = t["members"].pop()
            t["acked_members"].discard(user)  # its removal may or may not land before a kill
            status, _ = owner.call("member_remove", "DELETE", f"/v1/tenants/{owner.tenant_id}/members/{user}")
            if status == 204:
                t["acked_removed"].add(user)
        elif roll < 0.88:
            other = rng.choice(tenants)
            if other is not t:
                status, _ = owner.call("cross_tenant_probe", "GET", f"/v1/subscriptions/{other['sub']}")
                if 200 <= status < 300:
                    record("CROSS_TENANT_LEAK", status)
                    print(f"LEAK: tenant {t['n']} read tenant {other['n']}'s subscription", file=sys.stderr)
        elif roll < 0.93:
            owner.call("read_invoices", "GET", "/v1/invoices?limit=100")
        elif roll < 0.96:
            status, _ = call("POST", "/v1/auth/login", body={"email": owner.email, "password": PASSWORD})
            record("login", status)
        elif roll < 0.965:
            # About one in 300 operations moves the clock a day (renewals and dunning run).
            admin.call("clock_advance", "POST", "/v1/admin/clock/advance", {"duration": "1d"})
        else:
            owner.call("read_usage", "GET", "/v1/usage")


def all_pages(session, path):
    items, cursor = [], None
    while True:
        sep = "&" if "?" in path else "?"
        status, body = session.call("check", "GET", path + (f"{sep}cursor={cursor}" if cursor else ""))
        assert status == 200, (path, status, body)
        items += body["data"]
        cursor = body.get("next_cursor")
        if not cursor:
            return items


def check(tenants):
    failures = []
    for t in tenants:
        owner = t["owner"]
        status, usage = owner.call("check", "GET", "/v1/usage")
        if status == 200:
            # A downgrade mid-period may leave usage counted under the larger plan above the
            # smaller limit; it can never pass the largest plan's (3000).
            for m in usage["data"]:
                if m["metric"] == "api_calls" and m["used"] > 3000:
                    failures.append(f"tenant {t['n']}: api_calls used {m['used']} over every limit")
        invoices = all_pages(owner, "/v1/invoices?limit=100")
        numbers = sorted(i["number"] for i in invoices)
        if numbers != list(range(1, len(numbers) + 1)):
            failures.append(f"tenant {t['n']}: invoice numbers {numbers[:20]}... have gaps or duplicates")
        for i in invoices:
            # subtotal = the charge lines; total = subtotal - credit applied = every line.
            charges = sum(Decimal(l["amount"]) for l in i["lines"] if l["kind"] != "credit_balance_applied")
            every = sum(Decimal(l["amount"]) for l in i["lines"])
            subtotal, credit, total = (Decimal(i[k]) for k in ("subtotal", "credit_applied", "total"))
            if charges != subtotal or subtotal - credit != total or every != total:
                failures.append(f"tenant {t['n']}: invoice {i['number']} does not sum: {i}")
        notes = all_pages(owner, "/v1/notifications?limit=100")
        keys = [(n["data"].get("metric"), n["data"].get("threshold"), n["data"].get("period_start")) for n in notes if n["kind"] == "usage.threshold_reached"]
        if len(keys) != len(set(keys)):
            failures.append(f"tenant {t['n']}: a usage warning was sent twice")
        t["invoices"] = len(invoices)
        # Every acknowledged member addition (not removed since) is still there, kill or not.
        present = {m["user_id"] for m in all_pages(owner, f"/v1/tenants/{owner.tenant_id}/members?limit=100")}
        lost = t["acked_members"] - present
        if lost:
            failures.append(f"tenant {t['n']}: {len(lost)} acknowledged member additions are missing")
        back = t["acked_removed"] & present
        if back:
            failures.append(f"tenant {t['n']}: {len(back)} acknowledged member removals came undone")
        t["members_checked"] = len(t["acked_members"]) + len(t["acked_removed"])
    return failures


def main():
    admin = Session(os.environ["ADMIN_EMAIL"], os.environ["ADMIN_PASSWORD"])
    tenants, plans = setup(admin)
    stop = threading.Event()
    threads = [threading.Thread(target=worker, args=(tenants, plans, admin, stop)) for _ in range(16)]
    started = time.time()
    for th in threads:
        th.start()
    time.sleep(DURATION)
    stop.set()
    for th in threads:
        th.join()
    elapsed = time.time() - started
    total = sum(c for (op, _), c in counts.items() if op != "check")
    print(f"{total} requests in {elapsed:.0f} s = {total / elapsed:.0f} req/s over {TENANTS} tenants, 16 clients")
    for (op, status), c in sorted(counts.items()):
        print(f"  {op:<20} {status}  {c}")
    failures = check(tenants)
    print(f"invoices checked: {sum(t['invoices'] for t in tenants)}; acknowledged member additions and removals in place: {sum(t['members_checked'] for t in tenants)}")
    server_errors = sum(c for (_, status), c in counts.items() if status >= 500)
    leaks = sum(c for (op, _), c in counts.items() if op == "CROSS_TENANT_LEAK")
    if server_errors:
        failures.append(f"{server_errors} server errors")
    over = sum(c for (op, _), c in counts.items() if op == "OVER_LIMIT")
    if over:
        failures.append(f"{over} accepted events left usage above the hard limit in force")
    if leaks:
        failures.append(f"{leaks} cross-tenant reads succeeded")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)
    print("ok: no accepted event over the hard limit in force, invoices sum exactly, numbers without gaps, no warning twice, no cross-tenant read, no 5xx")


if __name__ == "__main__":
    main()
