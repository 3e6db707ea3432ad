"""Usage-event load and its after-crash check, for scripts/crash-test (stdlib only).

load ACKED SENT: 16 threads post events with unique idempotency keys until the server stops
answering; each key is appended to SENT before it is sent, and to ACKED (with the answer's
`used`) once the server answered 200.
verify ACKED SENT LIMIT: reads the counter and replays every acknowledged key.
"""
import json
import os
import sys
import threading
import urllib.error
import urllib.request

BASE, KEY = os.environ["BASE"], os.environ["KEY"]


def post(path, body):
    request = urllib.request.Request(
        BASE + path,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {KEY}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, json.load(response)


def load(acked_path, sent_path):
    lock = threading.Lock()
    acked, sent = open(acked_path, "a"), open(sent_path, "a")

    def client(n):
        i = 0
        while True:
            key = f"c{n}-{i}"
            i += 1
            with lock:
                sent.write(key + "\n")
                sent.flush()
            try:
                status, body = post("/v1/usage/events", {"metric": "api_calls", "quantity": 1, "idempotency_key": key})
            except (urllib.error.URLError, ConnectionError, OSError):
                return  # the server is gone
            if status == 200:
                with lock:
                    acked.write(f"{key} {body['used']}\n")
                    acked.flush()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def verify(acked_path, sent_path, limit):
    acked = [line.split() for line in open(acked_path) if line.strip()]
    sent = sum(1 for line in open(sent_path) if line.strip())
    request = urllib.request.Request(BASE + "/v1/usage", headers={"authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        used = next(m["used"] for m in json.load(response)["data"] if m["metric"] == "api_calls")
    print(f"after restart: counter {used}; acknowledged {len(acked)}; sent {sent}; limit {limit}")
    failures = []
    if used < len(acked):
        failures.append("acknowledged events were lost")
    if used > sent:
        failures.append("more counted than sent")
    if used > int(limit):
        failures.append("counter above the hard limit")
    # A replay answers with the first answer; its `used` is stored just after the response, so
    # for an event answered in the instant before the kill it is rebuilt from the counter
    # (docs/usage.md): counted apart, not a failure.
    changed = rebuilt = 0
    for key, first_used in acked:
        status, body = post("/v1/usage/events", {"metric": "api_calls", "quantity": 1, "idempotency_key": key})
        if status != 200 or body["metric"] != "api_calls" or body["limit"] != int(limit):
            changed += 1
        elif body["used"] != int(first_used):
            rebuilt += 1
    request = urllib.request.Request(BASE + "/v1/usage", headers={"authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        after = next(m["used"] for m in json.load(response)["data"] if m["metric"] == "api_calls")
    if after != used:
        failures.append(f"replays counted {after - used} events")
    if changed:
        failures.append(f"{changed} replays answered differently from the first answer")
    print(f"replayed {len(acked)} acknowledged keys: counter still {after}; {changed} wrong answers; "
          f"{rebuilt} answered with a rebuilt `used`")
    if failures:
        print("FAILED: " + "; ".join(failures), file=sys.stderr)
        sys.exit(1)
    print("ok: no acknowledged event lost, none double-counted, replays unchanged")


if __name__ == "__main__":
    {"load": lambda: load(*sys.argv[2:4]), "verify": lambda: verify(*sys.argv[2:5])}[sys.argv[1]]()
