"""moto's AWS server, single-threaded, on a free loopback port.

The stock `moto_server` is multi-threaded and not atomic under concurrent conditional writes to
one item (64 racing conditional increments with a limit of 50 sometimes reported 51-53
successes). Serving one request at a time makes each request atomic, as DynamoDB is per item.

Usage: moto_server.py PORT_FILE  -- writes the chosen port to PORT_FILE once listening.
"""

import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

# Serving one request at a time, each on its own connection (HTTP/1.0), a burst of concurrent
# clients (the HTTP suite's 200 racing usage events) waits in the listen queue; werkzeug's 128
# overflows it and clients see connect timeouts. The kernel caps this at net.core.somaxconn.
BaseWSGIServer.request_queue_size = 4096


def main() -> None:
    port_file = sys.argv[1]
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", 0, app, threaded=False)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_port))
    # Rename so a reader never sees a half-written file.
    import os

    os.replace(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
