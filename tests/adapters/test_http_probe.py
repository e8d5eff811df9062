"""The HTTP prober against real servers on 127.0.0.1: answers, failures as polls (never
raised), connections kept and bounded, and cancellation that leaves its books whole."""

from __future__ import annotations

import asyncio

import pytest

from cronwarden.adapters.http_probe import HttpProber
from health_server import closed_port_url, health_server, silent_port

pytestmark = pytest.mark.anyio


async def test_an_answer_a_refusal_and_a_silence_are_each_a_poll() -> None:
    prober = HttpProber(4)
    with health_server() as server, silent_port() as silent:
        ok = await prober.poll(server.answer("/h", 200, {"status": "ok"}), 5)
        refused = await prober.poll(closed_port_url(), 5)
        quiet = await prober.poll(silent, 0.2)
        bad = await prober.poll("http://exa mple/", 5)
    await prober.aclose()
    assert ok.status_code == 200 and b'"ok"' in ok.body and ok.latency_ms > 0
    assert refused.status_code is None and not refused.timed_out and refused.error
    assert quiet.status_code is None and quiet.timed_out
    assert bad.status_code is None and bad.error


async def test_connections_are_kept_between_polls_and_bounded() -> None:
    prober = HttpProber(2, max_open=2)
    with health_server() as a, health_server() as b, health_server() as c:
        urls = [s.answer("/h") for s in (a, b, c)]
        for _ in range(3):
            polls = [await prober.poll(url, 5) for url in urls]
            assert all(p.status_code == 200 for p in polls)
        assert len(prober._open) <= 3  # two kept, one in the middle of being replaced
        await asyncio.sleep(0.05)  # the evicted ones close in the background
        assert len(prober._open) == 2 and len(prober._lru) == 2
    await prober.aclose()
    assert not prober._open and not prober._lru


async def test_a_poll_cancelled_midway_gives_its_connection_back() -> None:
    prober = HttpProber(1, max_open=1)
    with health_server() as server:
        slow = server.answer("/slow", delay_s=1.0)
        fast = server.answer("/fast")
        task = asyncio.ensure_future(prober.poll(slow, 5))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        polls = [await prober.poll(fast, 5) for _ in range(3)]  # never StopIteration
    await prober.aclose()
    assert [p.status_code for p in polls] == [200, 200, 200]


async def test_at_most_max_connections_polls_are_in_flight_and_waiting_is_not_timed() -> None:
    prober = HttpProber(2)
    with health_server() as server:
        url = server.answer("/h", delay_s=0.3)
        polls = await asyncio.gather(*(prober.poll(url, 0.5) for _ in range(6)))
    await prober.aclose()
    # six polls of 0.3 s, two at a time, each within its 0.5 s once it has a slot
    assert all(p.status_code == 200 for p in polls), [p.error for p in polls]
    assert server.most_in_flight == 2


async def test_a_sweep_dealt_to_processes_comes_back_whole_and_in_order() -> None:
    from cronwarden.adapters.sharded_probe import ShardedProber

    prober = ShardedProber(2, max_in_flight=8)
    with health_server() as server:
        targets = [(server.answer(f"/h/{n}", 200 if n % 3 else 503, {"n": n}), 5.0)
                   for n in range(30)]  # fmt: skip
        targets.append((closed_port_url(), 5.0))
        polls = await prober.poll_many(targets, 8)
        again = await prober.poll_many(targets, 8)  # the workers and their connections kept
        single = await prober.poll(targets[0][0], 5.0)
    await prober.aclose()
    assert [p.status_code for p in polls[:30]] == [200 if n % 3 else 503 for n in range(30)]
    assert [p.body for p in polls[:30]] == [b'{"n": %d}' % n for n in range(30)]
    assert polls[30].status_code is None and polls[30].error
    assert [p.status_code for p in again] == [p.status_code for p in polls]
    assert single.status_code == 503
