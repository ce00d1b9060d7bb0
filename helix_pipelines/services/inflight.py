"""Backpressure for one ingest run: how many payloads, and how many of their bytes, may be held
between the request that fetches them and the transaction that stores them.

Fetching is paced by the API budget, normalizing and storing by the machine; whenever storing
falls behind, fetched payloads would pile up in memory, so peak memory would grow with the
universe and the payload size. Here a fetch starts only while both counts are under their
bounds, so memory stays flat however many symbols a partition has. Single event loop: no lock.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass
class InFlightStats:
    peak_payloads: int = 0
    peak_bytes: int = 0
    waits: int = 0
    """Fetches that had to wait for room: storing was the bottleneck that often."""


class InFlight:
    def __init__(self, max_payloads: int, max_bytes: int) -> None:
        if max_payloads < 1 or max_bytes < 1:
            raise ValueError(
                f"in-flight bounds must be positive, got {max_payloads} payloads, {max_bytes} bytes"
            )
        self.max_payloads = max_payloads
        self.max_bytes = max_bytes
        self.payloads = 0
        self.bytes = 0
        self.stats = InFlightStats()
        self._changed = asyncio.Event()

    def _full(self) -> bool:
        return self.payloads >= self.max_payloads or self.bytes >= self.max_bytes

    async def enter(self) -> None:
        """Wait for room, then count one payload in flight (its bytes once they arrive)."""
        if self._full():
            self.stats.waits += 1
        while self._full():
            self._changed.clear()
            await self._changed.wait()
        self.payloads += 1
        self.stats.peak_payloads = max(self.stats.peak_payloads, self.payloads)

    def hold(self, nbytes: int) -> None:
        """A payload in flight arrived with `nbytes`."""
        self.bytes += nbytes
        self.stats.peak_bytes = max(self.stats.peak_bytes, self.bytes)

    def release(self, payloads: int, nbytes: int) -> None:
        """Payloads stored (or dropped) with their bytes: room for new fetches."""
        self.payloads -= payloads
        self.bytes -= nbytes
        self._changed.set()
