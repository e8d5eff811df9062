"""Watchdog benchmark: one ``HealthHeartbeat`` sweep over 1,000 and 10,000 real HTTP
health endpoints, against the spec's own model (spec 002 §21: a thread pool of 97
blocking polls), in one run.

* The endpoints: a local health server in **other processes** (so that its CPU is not
  the measured process's): ``--ports`` listeners on 127.0.0.1, each answering
  ``GET /internal/health/svc-<n>`` for ``n`` below its share of the endpoints with
  ``{"status": "ok", "last_decision_ms": <now>}`` (a raw ``asyncio.Protocol``
  HTTP/1.1 responder with keep-alive, split over ``--server-procs`` processes).
* cronwarden: ``HealthHeartbeat(...).sweep()`` as the daemon runs it, with a real
  ``HttpProber``, ``max_in_flight`` 97, a ``SystemClock`` and a no-op ``record``; each
  service judged with the zombie check on ``last_decision_ms``.
* the thread pool: ``ThreadPoolExecutor(max_workers=97)`` of blocking ``requests``
  GETs (one ``Session`` per thread, its pool sized for every port), each body parsed
  as JSON and its ``status`` checked.

Per size: a cold sweep (a new client; connections opened), then ``--rounds`` warm
sweeps, cronwarden and the thread pool taking turns. Sweep wall time (p50, max) and the
CPU time of this process per sweep (``time.process_time()``; the server's CPU is shown
apart); every poll must be healthy, else the run is invalid (exit code 1). Then the
daemon's CPU at 1,000 endpoints every 30 s: one warm sweep's CPU over 30 s, confirmed
by ``HealthHeartbeat.run()`` for a few short intervals. The targets are printed PASS or
FAIL; a missed target does not fail the run.

Run: ``python bench/health_sweep.py [--sizes 1000,10000] [--rounds 5] [--ports 8]
[--server-procs 1] [--run-intervals 5] [--quick]`` (about 3 minutes; ``--quick``, 1,000
endpoints only, under 30 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import requests
from requests.adapters import HTTPAdapter

from cronwarden.adapters.http_probe import HttpProber
from cronwarden.adapters.sharded_probe import ShardedProber
from cronwarden.adapters.system import SystemClock
from cronwarden.core.report import OperationsReport
from cronwarden.manifest.services import HeartbeatSettings, ServiceSpec
from cronwarden.services.heartbeat import HealthHeartbeat

MAX_IN_FLIGHT = 97  # spec 002 §21
DAEMON_INTERVAL_S = 30.0  # spec 002 §6 default
PATH = "/internal/health/svc-"
_PATH = PATH.encode()
#: Targets (issue 7) on this machine.
TARGET_S = {1_000: 1.0, 10_000: 5.0}
TARGET_DAEMON_CPU = 0.10  # of one core, at 1,000 endpoints every 30 s
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- the health server (run with --serve, in its own process) --------------------------


class _Health(asyncio.Protocol):
    """A minimal HTTP/1.1 keep-alive responder: GETs only, pipelining allowed."""

    paths: int = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport, self.pending = transport, b""

    def data_received(self, data: bytes) -> None:
        buffer = self.pending + data
        out: list[bytes] = []
        close = False
        while (end := buffer.find(b"\r\n\r\n")) >= 0:
            head, buffer = buffer[:end], buffer[end + 4 :]
            out.append(self._answer(head))
            close = close or b"connection: close" in head.lower()
        self.pending = buffer
        if out:
            self.transport.write(b"".join(out))
        if close:
            self.transport.close()

    def _answer(self, head: bytes) -> bytes:
        line = head.split(b"\r\n", 1)[0].split(b" ")
        slug = line[1][len(_PATH) :] if len(line) == 3 and line[1].startswith(_PATH) else b""
        if line[0] != b"GET" or not slug.isdigit() or int(slug) >= self.paths:
            return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        body = b'{"status": "ok", "last_decision_ms": %d}' % int(time.time() * 1000)
        return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip


async def _serve(ports: int, paths: int) -> None:
    _Health.paths = paths
    loop = asyncio.get_running_loop()
    servers = [await loop.create_server(_Health, "127.0.0.1", 0, backlog=4096)
               for _ in range(ports)]  # fmt: skip
    bound = [server.sockets[0].getsockname()[1] for server in servers]
    print(" ".join(map(str, bound)), flush=True)
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes stdin


@dataclass
class Servers:
    """The health server processes, their ports, and their CPU seconds so far."""

    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)

    def cpu_s(self) -> float:
        total = 0
        for proc in self.procs:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / CLK_TCK

    def close(self) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.close()
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()


def start_servers(ports: int, procs: int, paths: int) -> Servers:
    servers = Servers()
    per = [ports // procs + (n < ports % procs) for n in range(procs)]
    for count in per:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(count), "--paths", str(paths)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stdout is not None
        servers.procs.append(proc)
        servers.ports.extend(int(port) for port in proc.stdout.readline().split())
    if len(servers.ports) != ports:
        servers.close()
        raise SystemExit("the health server did not start")
    return servers


def urls(servers: Servers, n: int) -> list[str]:
    """``n`` endpoints, spread round-robin over the ports."""
    ports = servers.ports
    return [f"http://127.0.0.1:{ports[i % len(ports)]}{PATH}{i // len(ports)}"
            for i in range(n)]  # fmt: skip


# -- one sweep each way ------------------------------------------------------------------


@dataclass
class Sweep:
    wall_s: float
    cpu_s: float
    server_cpu_s: float
    healthy: int


class Cronwarden:
    """The watchdog as the daemon wires it, over its own prober."""

    name = "cronwarden"

    def __init__(self, targets: Sequence[str], processes: int = 1) -> None:
        if processes > 1:
            self.name = f"cw {processes} procs"
        self.services = [
            ServiceSpec(slug=f"svc-{i}", health_url=url, timeout_s=10.0,
                        activity_field="last_decision_ms", max_staleness_s=60)
            for i, url in enumerate(targets)
        ]  # fmt: skip
        self.settings = HeartbeatSettings(max_in_flight=MAX_IN_FLIGHT)
        self.loop = asyncio.new_event_loop()
        self.prober: HttpProber | ShardedProber = (
            HttpProber(self.settings.max_in_flight) if processes == 1
            else ShardedProber(processes, self.settings.max_in_flight))  # fmt: skip
        self.heartbeat = HealthHeartbeat(SystemClock(), self.prober, self.registry,
                                         record=_no_record)  # fmt: skip

    def registry(self) -> tuple[Sequence[ServiceSpec], HeartbeatSettings]:
        return self.services, self.settings

    def sweep(self) -> int:
        report = self.loop.run_until_complete(self.heartbeat.sweep())
        healthy: int = report.details["healthy_count"]
        return healthy

    def close(self) -> None:
        self.loop.run_until_complete(self.prober.aclose())
        self.loop.close()


async def _no_record(reports: Sequence[OperationsReport]) -> None:
    return None


class ThreadPool:
    """Spec 002 §21's model: 97 threads, each a blocking GET at a time on its own
    keep-alive ``requests.Session``; every body parsed as JSON."""

    name = "thread pool"

    def __init__(self, targets: Sequence[str], ports: int) -> None:
        self.targets = list(targets)
        self.ports = ports
        self.pool = ThreadPoolExecutor(max_workers=MAX_IN_FLIGHT)
        self.local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self.local, "session", None)
        if session is None:
            session = requests.Session()
            # One pool per port kept (the default keeps 10 and would close the others').
            session.mount("http://", HTTPAdapter(pool_connections=self.ports, pool_maxsize=1))
            self.local.session = session
        return session

    def _poll(self, url: str) -> bool:
        try:
            response = self._session().get(url, timeout=10.0)
            document = json.loads(response.content)
        except (requests.RequestException, ValueError):
            return False
        return (response.status_code == 200 and isinstance(document, dict)
                and str(document.get("status", "")).lower() == "ok")  # fmt: skip

    def sweep(self) -> int:
        return sum(self.pool.map(self._poll, self.targets))

    def close(self) -> None:
        self.pool.shutdown()


def timed(sweep: Callable[[], int], servers: Servers) -> Sweep:
    server_before, cpu_before, started = servers.cpu_s(), time.process_time(), time.perf_counter()
    healthy = sweep()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_before
    return Sweep(wall, cpu, servers.cpu_s() - server_before, healthy)


# -- the run -----------------------------------------------------------------------------


@dataclass
class Result:
    cold: Sweep
    warm: list[Sweep]

    @property
    def p50(self) -> float:
        return statistics.median(s.wall_s for s in self.warm)

    @property
    def max(self) -> float:
        return max(s.wall_s for s in self.warm)

    @property
    def cpu(self) -> float:
        return statistics.median(s.cpu_s for s in self.warm)

    @property
    def server_cpu(self) -> float:
        return statistics.median(s.server_cpu_s for s in self.warm)

    def healthy_everywhere(self, n: int) -> bool:
        return all(s.healthy == n for s in [self.cold, *self.warm])


def measure(n: int, rounds: int, servers: Servers, processes: int) -> dict[str, Result]:
    """Cold sweeps, then ``rounds`` warm sweeps taking turns (load hits all alike). With
    ``processes`` above 1, also the sweep dealt to that many processes
    (``heartbeat.sweep_processes``); its CPU column is the daemon's own, without the
    workers'."""
    targets = urls(servers, n)
    ways: list[Cronwarden | ThreadPool] = [Cronwarden(targets),
                                           ThreadPool(targets, len(servers.ports))]  # fmt: skip
    if processes > 1:
        ways.append(Cronwarden(targets, processes))
    try:
        cold = {way.name: timed(way.sweep, servers) for way in ways}
        warm: dict[str, list[Sweep]] = {way.name: [] for way in ways}
        for round_ in range(rounds):
            for way in ways if round_ % 2 == 0 else ways[::-1]:
                warm[way.name].append(timed(way.sweep, servers))
    finally:
        for way in ways:
            way.close()
    return {name: Result(cold[name], warm[name]) for name in cold}


def daemon_run(servers: Servers, n: int, interval_s: float, intervals: int) -> dict[str, float]:
    """``HealthHeartbeat.run()`` for ``intervals`` intervals of ``interval_s``: this
    process's CPU over the whole stretch (idle included), per sweep made."""
    way = Cronwarden(urls(servers, n))
    way.settings = HeartbeatSettings(max_in_flight=MAX_IN_FLIGHT, heartbeat_interval_s=interval_s)
    way.sweep()  # connections opened, as after the daemon's first sweep

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.ensure_future(way.heartbeat.run(stop))
        await asyncio.sleep(interval_s * (intervals - 0.5))
        stop.set()
        await task

    sweeps_before = way.heartbeat.sweeps
    cpu_before, started = time.process_time(), time.perf_counter()
    way.loop.run_until_complete(run())
    cpu, wall = time.process_time() - cpu_before, time.perf_counter() - started
    sweeps = way.heartbeat.sweeps - sweeps_before
    last = way.heartbeat.last_sweep
    healthy = last.details["healthy_count"] if last else 0
    way.close()
    return {"sweeps": sweeps, "wall_s": wall, "cpu_s": cpu, "cpu_per_sweep_s": cpu / sweeps,
            "healthy": healthy}  # fmt: skip


def _machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{cpu}, {os.cpu_count()} CPUs; Python {platform.python_version()}; "
        f"httpx {httpx.__version__}, requests {requests.__version__}; load average {load}"
    )


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _report(n: int, results: dict[str, Result]) -> list[str]:
    ours, theirs = results["cronwarden"], results["thread pool"]
    lines = []
    for name, r in results.items():
        lines.append(
            f"{n:>7,} {name:<12} {r.cold.wall_s * 1000:7.0f} {r.p50 * 1000:8.0f} "
            f"{r.max * 1000:8.0f} {r.cpu * 1000:8.0f} {r.cold.cpu_s * 1000:8.0f} "
            f"{r.server_cpu * 1000:7.0f} {r.cold.healthy:>6,}/{min(s.healthy for s in r.warm):,}"
        )  # fmt: skip
    lines.append(f"{'':>7} ratio thread pool / cronwarden: warm p50 {theirs.p50 / ours.p50:.2f}×, "
                 f"cold {theirs.cold.wall_s / ours.cold.wall_s:.2f}×, "
                 f"CPU {theirs.cpu / ours.cpu:.2f}×")  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", help="endpoints per sweep (default 1000,10000; --quick 1000)")
    parser.add_argument("--rounds", type=int, default=5, help="warm sweeps per size and way")
    parser.add_argument("--ports", type=int, default=8)
    parser.add_argument("--server-procs", type=int, default=1)
    parser.add_argument("--run-intervals", type=int, default=5,
                        help="run() intervals confirming the daemon CPU; 0 skips")  # fmt: skip
    parser.add_argument("--run-interval-s", type=float, default=2.0)
    parser.add_argument("--sweep-processes", type=int, default=2,
                        help="also sweep from this many processes (1: not)")  # fmt: skip
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1,000 only, 3 warm rounds, 2 run() intervals")  # fmt: skip
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--paths", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.serve, args.paths))
        return
    if args.quick:
        args.rounds, args.run_intervals = 3, 2
    sizes = [
        int(size) for size in (args.sizes or ("1000" if args.quick else "1000,10000")).split(",")
    ]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by the servers
    servers = start_servers(args.ports, args.server_procs, -(-max(sizes) // args.ports))
    print(f"== {_machine()}")
    print(
        f"== health server: {args.ports} ports in {args.server_procs} process(es); "
        f"max in flight {MAX_IN_FLIGHT}; {args.rounds} warm sweeps per size and way"
    )
    print(f"{'size':>7} {'way':<12} {'cold ms':>7} {'warm p50':>8} {'warm max':>8} "
          f"{'CPU ms':>8} {'cold CPU':>8} {'srv CPU':>7} {'healthy (cold/warm min)'}")  # fmt: skip
    valid, results = True, {}
    try:
        for n in sizes:
            results[n] = measure(n, args.rounds, servers, args.sweep_processes)
            for line in _report(n, results[n]):
                print(line, flush=True)
            valid &= all(r.healthy_everywhere(n) for r in results[n].values())
        confirm = None
        if args.run_intervals and 1_000 in results:
            confirm = daemon_run(servers, 1_000, args.run_interval_s, args.run_intervals)
    finally:
        servers.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    print("== targets (this machine)")
    for n, limit in TARGET_S.items():
        for name, r in results.get(n, {}).items():
            if name == "thread pool":
                continue
            print(
                f"{n:>7,} endpoints, {name}: warm p50 {r.p50:.3f} s, max {r.max:.3f} s, cold "
                f"{r.cold.wall_s:.3f} s (target ≤ {limit:g} s): {_verdict(r.max <= limit)}"
            )
    if 1_000 in results:
        share = results[1_000]["cronwarden"].cpu / DAEMON_INTERVAL_S
        print(
            f"daemon CPU at 1,000 endpoints every {DAEMON_INTERVAL_S:g} s: "
            f"{results[1_000]['cronwarden'].cpu * 1000:.0f} ms a sweep = {share:.2%} of one "
            f"core (target < {TARGET_DAEMON_CPU:.0%}): {_verdict(share < TARGET_DAEMON_CPU)}"
        )
    if confirm is not None:
        valid &= confirm["healthy"] == 1_000
        print(
            f"  run(): {confirm['sweeps']:.0f} sweeps in {confirm['wall_s']:.1f} s "
            f"(interval {args.run_interval_s:g} s), {confirm['cpu_s']:.2f} CPU s in all = "
            f"{confirm['cpu_per_sweep_s'] * 1000:.0f} ms per interval = "
            f"{confirm['cpu_per_sweep_s'] / DAEMON_INTERVAL_S:.2%} of one core every "
            f"{DAEMON_INTERVAL_S:g} s; last sweep {confirm['healthy']:.0f} healthy"
        )
    print("== load average at the end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    if not valid:
        print("INVALID RUN: some poll was not healthy")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
