"""Real HTTP health endpoints on 127.0.0.1 for the watchdog's tests: each path answers
what the test sets (status, body, delay), and ports that accept and never answer."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    status: int = 200
    body: bytes = b'{"status": "ok"}'
    delay_s: float = 0.0
    content_type: str = "application/json"


class _Server(ThreadingHTTPServer):
    #: 97 polls connect at once; the default backlog of 5 drops SYNs, retried a second
    #: later, which a loaded machine can turn into timeouts.
    request_queue_size = 256


class HealthServer:
    """A threaded server whose answers the test changes while it runs."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.hits: dict[str, int] = {}
        self.posts: dict[str, list[bytes]] = {}
        #: Requests being answered now, and the most there ever were at once.
        self.in_flight = self.most_in_flight = 0
        self._counting = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                answer = server.answers.get(self.path, Answer(404, b'{"status": "unknown"}'))
                with server._counting:
                    server.hits[self.path] = server.hits.get(self.path, 0) + 1
                    server.in_flight += 1
                    server.most_in_flight = max(server.most_in_flight, server.in_flight)
                try:
                    self._answer(answer)
                finally:
                    with server._counting:
                        server.in_flight -= 1

            def _answer(self, answer: Answer) -> None:
                if answer.delay_s:
                    time.sleep(answer.delay_s)
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", answer.content_type)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except OSError:  # the poller gave up first
                    pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                server.posts.setdefault(self.path, []).append(self.rfile.read(length))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, path: str, status: int = 200, body: Any = None, *, delay_s: float = 0.0,
               raw: bytes | None = None) -> str:  # fmt: skip
        """Make ``path`` answer so; its URL."""
        payload = raw if raw is not None else json.dumps(
            {"status": "ok"} if body is None else body).encode()  # fmt: skip
        self.answers[path] = Answer(status, payload, delay_s)
        return self.url(path)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@contextmanager
def health_server() -> Iterator[HealthServer]:
    server = HealthServer()
    try:
        yield server
    finally:
        server.close()


@contextmanager
def silent_port() -> Iterator[str]:
    """A URL whose port accepts connections (the kernel's backlog) and never answers: a
    network partition as the poller sees it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/internal/health/partitioned"
    finally:
        sock.close()


def closed_port_url() -> str:
    """A URL on a port nothing listens on (connection refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/internal/health/gone"
