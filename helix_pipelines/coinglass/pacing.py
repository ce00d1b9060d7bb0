"""Spread a cycle's requests evenly over the cycle instead of sending them in one burst.

Why: the rate limiter's window is sliding. A plan sent as a burst at the start of each cycle
fills the window at once, so the next cycle's first requests (the hot list) wait for the old
burst to leave the window and arrive late. Paced at the planned rate, the window always has
room and every request goes out at the same point of its cycle, cycle after cycle.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from helix_pipelines.coinglass.source import HeatmapSource, SourceKind, SourceStats
from helix_pipelines.contracts.heatmaps import HeatmapRequest


class Pacer:
    """At most one go-ahead every `interval_seconds`, in arrival order (an asyncio.Lock is FIFO)."""

    def __init__(
        self,
        interval_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.interval_seconds = interval_seconds
        self._clock = clock
        self._sleep = sleep
        self._next_at = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            now = self._clock()
            if self._next_at > now:
                await self._sleep(self._next_at - now)
                now = self._clock()
            self._next_at = max(self._next_at, now) + self.interval_seconds


class PacedSource:
    """A `HeatmapSource` whose heatmap fetches go through a `Pacer` (universe calls do not)."""

    def __init__(self, source: HeatmapSource, pacer: Pacer) -> None:
        self.source = source
        self.pacer = pacer

    @property
    def kind(self) -> SourceKind:
        return self.source.kind

    @property
    def stats(self) -> SourceStats:
        return self.source.stats

    async def fetch_heatmap(self, request: HeatmapRequest) -> bytes:
        await self.pacer.wait()
        return await self.source.fetch_heatmap(request)

    async def supported_coins(self) -> list[str]:
        return await self.source.supported_coins()

    async def supported_exchange_pairs(self) -> dict[str, list[dict[str, str]]]:
        return await self.source.supported_exchange_pairs()

    async def aclose(self) -> None:
        await self.source.aclose()
