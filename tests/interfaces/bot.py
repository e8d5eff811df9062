"""A bot for the watchdog's end-to-end tests: serves its health on 127.0.0.1:PORT and
writes its pid to PIDFILE.

    python bot.py PORT PIDFILE            # serve in the foreground
    python bot.py PORT PIDFILE --detach   # start a detached bot (its own session), wait
                                          # until it answers, exit 0: a restart command
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"status": "ok", "pid": os.getpid(),
                           "last_decision_ms": int(time.time() * 1000)}).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def serve(port: int, pidfile: str) -> None:
    server = HTTPServer(("127.0.0.1", port), Health)
    with open(pidfile, "w") as handle:
        handle.write(str(os.getpid()))
    server.serve_forever()


def detach(port: int, pidfile: str) -> int:
    subprocess.Popen([sys.executable, __file__, str(port), pidfile], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return 0
        except OSError:
            time.sleep(0.05)
    return 1


if __name__ == "__main__":
    port, pidfile = int(sys.argv[1]), sys.argv[2]
    if "--detach" in sys.argv[3:]:
        sys.exit(detach(port, pidfile))
    serve(port, pidfile)
