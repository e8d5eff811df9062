"""The :class:`~cronwarden.ports.Prober` over HTTP: httpx, connections kept open between
sweeps, every poll bounded by its own deadline."""

from __future__ import annotations

import asyncio
import time

import httpx

from cronwarden._version import __version__
from cronwarden.core.liveness import MAX_BODY_BYTES
from cronwarden.ports import Poll

USER_AGENT = f"cronwarden/{__version__} (health-heartbeat)"


class HttpProber:
    """Polls with one pooled client; at most ``max_connections`` open at once (the
    watchdog's ``max_in_flight``)."""

    def __init__(self, max_connections: int = 97) -> None:
        limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=120.0,
        )
        self._client = httpx.AsyncClient(
            limits=limits, follow_redirects=False, headers={"User-Agent": USER_AGENT}
        )

    async def poll(self, url: str, timeout_s: float) -> Poll:
        started = time.perf_counter()
        try:
            # One deadline for the whole poll: httpx's timeouts are per phase, and a
            # server that trickles its body a byte at a time would outlast them.
            async with asyncio.timeout(timeout_s):
                status, body = await self._get(url, timeout_s)
        except TimeoutError:
            return Poll(None, latency_ms=_ms_since(started), timed_out=True,
                        error=f"no answer in {timeout_s:g} s")  # fmt: skip
        except httpx.TimeoutException as err:
            return Poll(None, latency_ms=_ms_since(started), timed_out=True,
                        error=f"{type(err).__name__}: {err or 'timed out'}")  # fmt: skip
        except (httpx.HTTPError, OSError) as err:
            return Poll(None, latency_ms=_ms_since(started), error=_why(err))
        return Poll(status, body, latency_ms=_ms_since(started))

    async def _get(self, url: str, timeout_s: float) -> tuple[int, bytes]:
        async with self._client.stream("GET", url, timeout=timeout_s) as response:
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_BODY_BYTES:  # the judge refuses it; no need to read on
                    break
            return response.status_code, b"".join(chunks)

    async def aclose(self) -> None:
        await self._client.aclose()


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _why(err: Exception) -> str:
    text = str(err) or repr(err)
    return f"{type(err).__name__}: {text}"
