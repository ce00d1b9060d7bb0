"""Simulated time for tests that must cover an hour in seconds: one clock that the rate limiter,
the pacer, the planner loop and the fake CoinGlass server all read, advanced only by `sleep`.

Exact only while nothing is in flight when time jumps: drive requests one at a time (a client
with `max_concurrency=1`), so every send and its arrival happen at the same simulated instant.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta


class SimulatedClock:
    def __init__(self, start: datetime) -> None:
        self.start = start
        self.elapsed = 0.0

    def monotonic(self) -> float:
        return self.elapsed

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed)

    async def sleep(self, seconds: float) -> None:
        self.elapsed += max(0.0, seconds)
        await asyncio.sleep(0)
