"""HTTP targets against a real server on 127.0.0.1: success, 500 retried, 404 final,
slow timed out, refused; secrets from the environment never recorded."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cronwarden.adapters.memory import MemoryStore
from cronwarden.manifest import validate_document
from cronwarden.ports import RunRecord
from cronwarden.services.worker import Worker
from cronwarden.testing import FakeClock
from cronwarden.workers.http import expand, send


class Receiver(ThreadingHTTPServer):
    """Answers by path: /ok 200, /flaky 500 twice then 200, /missing 404, /slow after 3 s."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.calls: list[tuple[str, dict[str, str], Any]] = []
        self.flaky_left = 2

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"null")
        self.server.calls.append((self.path, dict(self.headers), body))
        status = {"/ok": 200, "/missing": 404}.get(self.path, 200)
        if self.path == "/flaky" and self.server.flaky_left > 0:
            self.server.flaky_left -= 1
            status = 500
        if self.path == "/slow":
            time.sleep(3)
        self.send_response(status)
        self.end_headers()
        if self.path.startswith("/echo"):  # a careless endpoint: echoes what it was sent
            self.wfile.write(f"{self.path} {self.headers['Authorization']}".encode())
        else:
            self.wfile.write(f"answer {status}".encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _runs(url: str, tmp_path: Path, **target: Any) -> list[RunRecord]:
    manifest = validate_document({
        "targets": {"hook": {"type": "http", "url": url, **target}},
        "tasks": [{"task_id": "notify", "cron": "* * * * *", "targets": ["hook"]}],
    }).manifest  # fmt: skip
    worker = Worker(FakeClock(), MemoryStore(), lambda: manifest, tmp_path, request=send)
    trigger = {"task_id": "notify", "target": "hook", "scheduled_at": 1_000, "trace_id": "tr_h"}
    return asyncio.run(worker.handle(trigger))


def test_a_2xx_succeeds_with_the_trigger_in_the_body_and_secrets_from_the_environment(
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "s3cret")
    secret_header = {"Authorization": "Bearer ${HOOK_TOKEN}"}
    (run,) = _runs(f"{receiver.url}/ok", tmp_path, headers=secret_header, body={"channel": "ops"})
    assert (run.status, run.exit_code, run.output_tail) == ("succeeded", 200, "answer 200")
    (path, headers, body) = receiver.calls[0]
    assert headers["Authorization"] == "Bearer s3cret"
    assert body == {"channel": "ops", "task_id": "notify", "target": "hook", "scheduled_at": 1_000,
                    "trace_id": "tr_h", "run_id": run.run_id, "attempt": 1}  # fmt: skip
    recorded = json.dumps(run.to_dict()) + (Path(run.artifact_dir) / "run.json").read_text()
    assert "s3cret" not in recorded


def test_secrets_in_the_url_reach_the_server_and_are_masked_in_what_comes_back(
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_KEY", "k-5521-live")
    monkeypatch.setenv("HOOK_TOKEN", "t-9910-live")
    (run,) = _runs(f"{receiver.url}/echo?key=${{HOOK_KEY}}", tmp_path,
                   headers={"Authorization": "Bearer ${HOOK_TOKEN}"})  # fmt: skip
    (path, headers, _) = receiver.calls[0]
    assert (path, headers["Authorization"]) == ("/echo?key=k-5521-live", "Bearer t-9910-live")
    assert run.output_tail == "/echo?key=*** Bearer ***"
    recorded = json.dumps(run.to_dict()) + (Path(run.artifact_dir) / "run.json").read_text()
    assert "k-5521-live" not in recorded and "t-9910-live" not in recorded


def test_a_5xx_is_retried_and_a_4xx_is_final(receiver: Receiver, tmp_path: Path) -> None:
    retry = {"max_attempts": 3}
    flaky = _runs(f"{receiver.url}/flaky", tmp_path, retry=retry)
    assert [(r.status, r.exit_code) for r in flaky] == [
        ("failed", 500), ("failed", 500), ("succeeded", 200)]  # fmt: skip
    missing = _runs(f"{receiver.url}/missing", tmp_path, retry=retry)
    assert [(r.status, r.exit_code, r.error) for r in missing] == [("failed", 404, "HTTP 404")]


def test_a_slow_answer_times_out_and_a_refused_connection_fails(
    receiver: Receiver, tmp_path: Path
) -> None:
    (slow,) = _runs(f"{receiver.url}/slow", tmp_path, timeout_s=0.5)
    assert slow.status == "timed_out" and slow.exit_code is None
    (refused,) = _runs("http://127.0.0.1:9/nothing-listens", tmp_path)
    assert refused.status == "failed" and "ConnectError" in refused.error


def test_expected_statuses_replace_the_2xx_rule(receiver: Receiver, tmp_path: Path) -> None:
    (run,) = _runs(f"{receiver.url}/missing", tmp_path, expect=[404])
    assert run.status == "succeeded"


def test_variables_expand_from_the_given_environment_only() -> None:
    assert expand("Bearer ${A}${B}-$C", {"A": "x"}) == "Bearer x-$C"
