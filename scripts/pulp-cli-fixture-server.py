#!/usr/bin/env python3
"""Fixture HTTP server for scripts/pulp-cli-e2e.sh.

Serves DIRECTORY on 127.0.0.1 (port 0 = any free port; the chosen port is printed as
"PORT <n>" on the first line of stdout). Paths under /slow/ serve the same files, but only
after HOLD seconds (default 120), so a sync from a remote under /slow/ stays running until it
is canceled: the cancellation test does not depend on timing.

usage: pulp-cli-fixture-server.py DIRECTORY [PORT] [HOLD]
"""

import functools
import http.server
import sys
import time


class Handler(http.server.SimpleHTTPRequestHandler):
    hold = 120.0

    def translate_path(self, path):
        if path.startswith("/slow/"):
            path = path[len("/slow") :]
        return super().translate_path(path)

    def send_head(self):
        if self.path.startswith("/slow/"):
            deadline = time.monotonic() + self.hold
            while time.monotonic() < deadline:
                time.sleep(0.2)
        return super().send_head()

    def log_message(self, format, *args):
        sys.stderr.write("fixture: " + (format % args) + "\n")


def main():
    directory = sys.argv[1]
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    Handler.hold = float(sys.argv[3]) if len(sys.argv) > 3 else 120.0
    handler = functools.partial(Handler, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
