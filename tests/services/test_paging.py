"""Pages from the watchdog reach people: a real apprise webhook on 127.0.0.1 hears a
service go down and come back, and a channel that fails is recorded, never fatal."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from cronwarden.adapters.notify import AppriseNotifier
from cronwarden.core.liveness import poll_in_lanes
from cronwarden.core.report import EventType, OperationsReport
from cronwarden.manifest import validate_document
from cronwarden.manifest.services import ServiceSpec
from cronwarden.ports import Poll
from cronwarden.reasons import ReasonCode
from cronwarden.services.heartbeat import HealthHeartbeat
from cronwarden.services.paging import Pager, pages
from cronwarden.testing import FakeClock
from health_server import closed_port_url, health_server

pytestmark = pytest.mark.anyio


class ScriptedProber:
    """Down until ``up``: the pages are under test here, not the polls."""

    def __init__(self) -> None:
        self.up = False

    async def poll(self, url: str, timeout_s: float) -> Poll:
        return Poll(200, b'{"status": "ok"}') if self.up else Poll(None, error="refused")

    async def poll_many(self, targets: Sequence[tuple[str, float]], lanes: int) -> list[Poll]:
        return await poll_in_lanes(self.poll, targets, lanes)

    async def aclose(self) -> None:
        return None


async def test_a_page_reaches_each_channel_and_each_delivery_is_recorded() -> None:
    with health_server() as hook:
        manifest = validate_document({
            "notifications": {"channels": {"oncall": f"json://127.0.0.1:{hook.port}/hook",
                                           "broken": f"json://{closed_port_url()[7:]}"}},
            "heartbeat": {"missed_heartbeats_to_alert": 2, "notify": ["oncall", "broken",
                                                                     "memory"]},
            "services": [{"slug": "bot", "health_url": "http://127.0.0.1:1/h"}],
        }).manifest  # fmt: skip
        recorded: list[OperationsReport] = []

        async def record(reports: Sequence[OperationsReport]) -> None:
            recorded.extend(reports)

        pager = Pager(AppriseNotifier(), lambda: manifest, record)

        async def record_and_page(reports: Sequence[OperationsReport]) -> None:
            await record(reports)
            await pager.page(reports)

        clock, prober = FakeClock(), ScriptedProber()
        services: list[ServiceSpec] = list(manifest.watched)
        heartbeat = HealthHeartbeat(clock, prober, lambda: (services, manifest.heartbeat_settings),
                                    record=record_and_page)  # fmt: skip
        for _ in range(3):  # down at the second miss; the third says nothing new
            await heartbeat.sweep()
            clock.advance(30)
        prober.up = True
        await heartbeat.sweep()
        posts = [json.loads(body) for body in hook.posts.get("/hook", [])]
    notes = [r for r in recorded if r.event_type is EventType.NOTIFICATION]
    assert [(n.details["event"], n.details["channel"], n.details["delivered"]) for n in notes] == [
        ("HEALTH_BOT_DOWN", "oncall", True), ("HEALTH_BOT_DOWN", "broken", False),
        ("HEALTH_BOT_DOWN", "memory", True),
        ("HEALTH_BOT_RECOVERED", "oncall", True), ("HEALTH_BOT_RECOVERED", "broken", False),
        ("HEALTH_BOT_RECOVERED", "memory", True),
    ]  # fmt: skip
    assert notes[1].reason_code is ReasonCode.CRON_RUNNER_NOTIFICATION_FAILED
    assert "error" in notes[1].details
    assert [post["title"] for post in posts] == [
        "cronwarden: bot HEALTH_HEARTBEAT_BOT_DOWN",
        "cronwarden: bot HEALTH_HEARTBEAT_BOT_RECOVERED",
    ]
    assert "2 consecutive missed heartbeats" in posts[0]["message"]
    assert posts[0]["type"] == "failure" and posts[1]["type"] != "failure"


def test_an_undefined_channel_is_warned_about_at_load() -> None:
    result = validate_document({"heartbeat": {"notify": ["pager"]}})
    assert any("notify: channel 'pager' is not defined" in str(p) for p in result.problems)


def _report(code: ReasonCode, bot_id: str, **details: object) -> OperationsReport:
    return OperationsReport(event_type=EventType.WORKLOAD_STATE, task_id="w", fired_at_ms=1,
                            targets=(), trace_id="tr_1", reason_code=code, bot_id=bot_id,
                            details=dict(details))  # fmt: skip


def test_what_pages_its_own_word_else_its_reason_code() -> None:
    from cronwarden.core.report import SUPERVISOR_BOT_ID

    assert pages(_report(ReasonCode.SUPERVISOR_RESTART_BUDGET_EXHAUSTED, SUPERVISOR_BOT_ID))
    assert not pages(_report(ReasonCode.SUPERVISOR_WORKLOAD_STARTED, SUPERVISOR_BOT_ID))
    assert not pages(_report(ReasonCode.HEALTH_HEARTBEAT_BOT_RECOVERED, "gov.health_heartbeat",
                             alert="none"))  # fmt: skip
    assert pages(_report(ReasonCode.HEALTH_HEARTBEAT_BOT_RECOVERED, "gov.health_heartbeat",
                         alert="page"))  # fmt: skip


async def test_pages_go_out_in_the_background_and_shutdown_waits_for_them() -> None:
    from cronwarden.core.report import SUPERVISOR_BOT_ID

    manifest = validate_document({"heartbeat": {"notify": ["memory"]}}).manifest
    recorded: list[OperationsReport] = []

    async def record(reports: Sequence[OperationsReport]) -> None:
        recorded.extend(reports)

    pager = Pager(AppriseNotifier(), lambda: manifest, record)
    pager.send([_report(ReasonCode.SUPERVISOR_RESTART_BUDGET_EXHAUSTED, SUPERVISOR_BOT_ID),
                _report(ReasonCode.SUPERVISOR_WORKLOAD_STARTED, SUPERVISOR_BOT_ID)])  # fmt: skip
    assert recorded == []  # sent returned before any delivery
    await pager.aclose()
    (note,) = recorded
    assert note.details["channel"] == "memory" and note.details["delivered"] is True
    assert note.bot_id == SUPERVISOR_BOT_ID
