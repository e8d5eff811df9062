"""Notifications after runs, delivered by apprise to a real webhook on 127.0.0.1: the
events, the memory channel, the dedupe window, and failures recorded, never fatal."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cronwarden.adapters.memory import MemoryStore
from cronwarden.adapters.notify import AppriseNotifier
from cronwarden.manifest import validate_document
from cronwarden.manifest.model import Manifest
from cronwarden.reasons import ReasonCode
from cronwarden.services.notifications import Notifications
from cronwarden.services.worker import Worker
from cronwarden.testing import FakeClock
from cronwarden.workers.command import CommandResult


class Webhook(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Hook)
        self.received: list[dict[str, Any]] = []

    @property
    def apprise_url(self) -> str:
        return f"json://127.0.0.1:{self.server_address[1]}/hook"


class _Hook(BaseHTTPRequestHandler):
    server: Webhook

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.server.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    server = Webhook()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


class Outcomes:
    """An ``execute`` returning the given statuses in turn."""

    def __init__(self, *statuses: str) -> None:
        self.statuses = list(statuses)

    async def __call__(self, argv: Any, *, env: Mapping[str, str], **_: Any) -> CommandResult:
        status = self.statuses.pop(0)
        return CommandResult(status, 0 if status == "succeeded" else 2, 1, "", "", "")


def _setup(channels: dict[str, str], notify: list[str], **task: Any) -> Manifest:
    return validate_document({
        "notifications": {"channels": channels, "dedupe_window_s": 600},
        "targets": {"job": {"type": "command", "command": ["x"], "retry": {"max_attempts": 2}}},
        "tasks": [{"task_id": "scan", "cron": "* * * * *", "targets": ["job"],
                   "notify": notify, **task}],
    }).manifest  # fmt: skip


def _fire(manifest: Manifest, store: MemoryStore, clock: FakeClock, tmp_path: Path,
          *statuses: str, at_ms: int = 1_000,
          notifications: Notifications | None = None) -> None:  # fmt: skip
    if notifications is None:
        notifications = Notifications(clock, store, AppriseNotifier(), lambda: manifest)
    worker = Worker(clock, store, lambda: manifest, tmp_path, execute=Outcomes(*statuses),
                    notifications=notifications)  # fmt: skip
    trigger = {"task_id": "scan", "target": "job", "scheduled_at": at_ms, "trace_id": "tr_n"}
    asyncio.run(worker.handle(trigger))


def _notes(store: MemoryStore) -> list[dict[str, Any]]:
    reports = asyncio.run(store.reports(limit=100))
    return [r for r in reversed(reports) if r["event_type"] == "CRON_NOTIFICATION"]


def test_a_failing_run_notifies_each_failure_and_the_exhaustion(
    webhook: Webhook, tmp_path: Path
) -> None:
    manifest = _setup({"ops": webhook.apprise_url}, ["ops", "memory"])
    store = MemoryStore()
    _fire(manifest, store, FakeClock(), tmp_path, "failed", "failed")
    assert [m["title"] for m in webhook.received] == [
        "cronwarden: scan job failure", "cronwarden: scan job retry_exhausted"]  # fmt: skip
    assert webhook.received[1]["type"] == "failure"
    notes = _notes(store)
    assert [(n["channel"], n["event"], n["delivered"]) for n in notes] == [
        ("ops", "failure", True), ("memory", "failure", True),
        ("ops", "retry_exhausted", True), ("memory", "retry_exhausted", True)]  # fmt: skip
    assert all(n["reason_code"] == ReasonCode.CRON_RUNNER_NOTIFICATION_SENT for n in notes)
    assert webhook.apprise_url not in json.dumps(notes)  # the channel's URL is never recorded


def test_the_same_notification_is_held_back_within_the_window(
    webhook: Webhook, tmp_path: Path
) -> None:
    manifest = _setup({"ops": webhook.apprise_url}, ["ops"], notify_on=["retry_exhausted"])
    store, clock = MemoryStore(), FakeClock()
    one = Notifications(clock, store, AppriseNotifier(), lambda: manifest)  # the daemon's
    _fire(manifest, store, clock, tmp_path, "failed", "failed", at_ms=1_000, notifications=one)
    clock.advance(60)
    _fire(manifest, store, clock, tmp_path, "failed", "failed", at_ms=61_000,
          notifications=one)  # fmt: skip  # held back
    clock.advance(600)
    _fire(manifest, store, clock, tmp_path, "failed", "failed", at_ms=661_000,
          notifications=one)  # fmt: skip  # the window is over
    assert len(webhook.received) == 2


def test_the_window_holds_across_a_restart_and_a_failed_delivery_is_not_counted(
    webhook: Webhook, tmp_path: Path
) -> None:
    manifest = _setup({"ops": webhook.apprise_url}, ["ops"], notify_on=["retry_exhausted"])
    store, clock = MemoryStore(), FakeClock()
    _fire(manifest, store, clock, tmp_path, "failed", "failed", at_ms=1_000)
    clock.advance(60)  # a new worker (a restart, another process) on the same store
    _fire(manifest, store, clock, tmp_path, "failed", "failed", at_ms=61_000)
    assert len(webhook.received) == 1
    broken = _setup({"ops": "json://127.0.0.1:9/down"}, ["ops"], notify_on=["retry_exhausted"])
    other = MemoryStore()
    _fire(broken, other, clock, tmp_path, "failed", "failed", at_ms=1_000)
    _fire(broken, other, clock, tmp_path, "failed", "failed", at_ms=61_000)
    assert [n["delivered"] for n in _notes(other)] == [False, False]  # tried again


def test_success_is_told_only_when_asked(webhook: Webhook, tmp_path: Path) -> None:
    quiet = _setup({"ops": webhook.apprise_url}, ["ops"])
    _fire(quiet, MemoryStore(), FakeClock(), tmp_path, "succeeded")
    assert webhook.received == []
    told = _setup({"ops": webhook.apprise_url}, ["ops"], notify_on=["success"])
    _fire(told, MemoryStore(), FakeClock(), tmp_path, "succeeded")
    assert [m["type"] for m in webhook.received] == ["success"]


def test_a_channel_that_fails_is_recorded_and_the_run_stands(tmp_path: Path) -> None:
    manifest = _setup({"ops": "json://127.0.0.1:9/nobody"}, ["ops", "nowhere"])
    store = MemoryStore()
    _fire(manifest, store, FakeClock(), tmp_path, "failed", "succeeded")
    notes = _notes(store)
    assert [(n["channel"], n["delivered"], n["reason_code"]) for n in notes] == [
        ("ops", False, ReasonCode.CRON_RUNNER_NOTIFICATION_FAILED),
        ("nowhere", False, ReasonCode.CRON_RUNNER_NOTIFICATION_FAILED)]  # fmt: skip
    assert "CRONWARDEN_UNKNOWN_CHANNEL" in notes[1]["error"]
    assert [r.status for r in asyncio.run(store.runs())] == ["succeeded", "failed"]
