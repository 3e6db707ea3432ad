"""Changes for the webhook crash test (scripts/webhook-crash-test): a tenant admin cancels at
period end and resumes, over and over; each acknowledged change writes one event, which must
reach the webhook receiver at least once, whatever happens to the server.

    python webhook_load.py load <acked file>     until the server dies
    python webhook_load.py verify <acked file> <receiver log>
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request

BASE = os.environ["BASE"]
TOKEN = os.environ["TOKEN"]
SUB = os.environ["SUB"]
MAPPED = {
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.created",
    "invoice.paid",
    "invoice.payment_failed",
    "usage.threshold_reached",
}


def call(method, path, body=None):
    request = urllib.request.Request(
        BASE + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read() or b"null")


def load(acked_path):
    with open(acked_path, "a") as acked:
        cancel = True
        while True:
            path = f"/v1/subscriptions/{SUB}/" + ("cancel" if cancel else "resume")
            body = {"at_period_end": True} if cancel else {}
            try:
                status, _ = call("POST", path, body)
            except urllib.error.HTTPError as e:
                status = e.code
            except Exception:
                return  # the server is gone
            if status == 200:
                acked.write(f"{path}\n")
                acked.flush()
                cancel = not cancel


def events():
    found, cursor = [], None
    while True:
        path = "/v1/events?limit=100" + (f"&cursor={cursor}" if cursor else "")
        _, page = call("GET", path)
        found += page["data"]
        cursor = page.get("next_cursor")
        if not cursor:
            return found


def verify(acked_path, receiver_log):
    acked = sum(1 for _ in open(acked_path))
    logged = [e for e in events() if e["type"] in MAPPED]
    updates = sum(1 for e in logged if e["type"] == "customer.subscription.updated")
    assert updates >= acked, f"{acked} changes acknowledged, {updates} events logged"
    want = {e["id"] for e in logged}
    started = time.time()
    deadline = started + 90
    while True:
        got = set()
        if os.path.exists(receiver_log):
            for line in open(receiver_log):
                entry = json.loads(line)
                assert entry["verified"], entry
                got.add(entry["id"])
        missing = want - got
        if not missing or time.time() > deadline:
            break
        time.sleep(1)
    assert not missing, f"{len(missing)} of {len(want)} events never delivered, e.g. {sorted(missing)[:3]}"
    extra = got - want
    assert not extra, f"deliveries of no logged event: {sorted(extra)[:3]}"
    print(
        f"webhooks: {acked} acknowledged changes, {len(want)} events, all {len(got)} delivered "
        f"and verified ({sum(1 for _ in open(receiver_log))} deliveries in all, duplicates allowed; "
        f"the last {time.time() - started:.0f} s after the restart)"
    )


if __name__ == "__main__":
    if sys.argv[1] == "load":
        load(sys.argv[2])
    else:
        verify(sys.argv[2], sys.argv[3])
