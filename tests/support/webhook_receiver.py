"""A webhook receiver for the tests, verifying every message with the `standardwebhooks`
package (PyPI; nobody here wrote it), on loopback.

    python webhook_receiver.py <log file>

Prints its port on the first line of stdout. Paths choose how it answers:
  /ok            200
  /flaky/<n>     500 to the first <n> deliveries of each webhook-id, then 200
  /gone          410
  /busy/<secs>   503 with Retry-After: <secs> to the first delivery of each id, then 200
POST /__secret/<path> with a body of `whsec_…` adds a secret to verify deliveries to <path>
with (each path its own secrets: an endpoint's message signed with another's secret fails). Every delivery appends a
JSON line to the log: id, timestamp, type, path, status answered, whether the signature
verified, and the receiver's clock.
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

log_path = sys.argv[1]
secrets = {}
seen = {}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.path.startswith("/__secret/"):
            with lock:
                secrets.setdefault(self.path[len("/__secret"):], []).append(body.decode())
            return self.answer(204)
        headers = {k.lower(): v for k, v in self.headers.items()}
        verified = False
        for secret in list(secrets.get(self.path, [])):
            try:
                Webhook(secret).verify(body, headers)
                verified = True
                break
            except Exception:
                pass
        msg_id = headers.get("webhook-id", "")
        with lock:
            seen[(self.path, msg_id)] = seen.get((self.path, msg_id), 0) + 1
            count = seen[(self.path, msg_id)]
        parts = self.path.strip("/").split("/")
        extra = {}
        if parts[0] == "ok":
            status = 200
        elif parts[0] == "flaky":
            status = 500 if count <= int(parts[1]) else 200
        elif parts[0] == "gone":
            status = 410
        elif parts[0] == "busy":
            status = 503 if count == 1 else 200
            extra = {"Retry-After": parts[1]}
        else:
            status = 404
        try:
            kind = json.loads(body).get("type")
        except ValueError:
            kind = None
        entry = {
            "id": msg_id,
            "timestamp": headers.get("webhook-timestamp"),
            "signatures": headers.get("webhook-signature", ""),
            "type": kind,
            "body": body.decode(errors="replace"),
            "path": self.path,
            "status": status,
            "verified": verified,
            "at": time.time(),
        }
        with lock, open(log_path, "a") as log:
            log.write(json.dumps(entry) + "\n")
        self.answer(status, extra)

    def answer(self, status, headers=None):
        try:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the sender went away (the crash test kills it mid-request)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
