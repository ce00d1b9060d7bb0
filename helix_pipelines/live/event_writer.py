"""The bounded write path from a live feed to the warehouse.

The feed awaits `put`/`put_many`; a bounded asyncio.Queue sits between it and one writer task,
so a slow or failing database holds the feed back (its socket read waits, TCP flow control does
the rest) instead of growing memory: at most `maxsize` events queued plus the one batch being
written. The writer drains batches of up to `batch_size` events, or whatever arrived within
`flush_seconds` of a batch's first event, and hands each to the store function in a thread
(`asyncio.to_thread`: a database round trip never blocks the event loop, so the feed keeps
reading its socket and its keepalive keeps pinging). A failed write is retried with capped,
jittered backoff, the same batch again, so nothing is dropped and nothing is stored twice (the
store's writes are idempotent). On stop, the writer flushes everything it holds; only a store
still failing `shutdown_timeout` after the stop makes it give up, and it says how many events
it abandoned.

Latency is measured per event from `received_at` (read off the socket) to the end of the store
call that wrote it: a count, the maximum, and percentiles of a bounded uniform sample.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from helix_pipelines.clock import utc_now
from helix_pipelines.contracts.live import LiquidationEvent

log = logging.getLogger(__name__)

StoreFn = Callable[[Sequence[LiquidationEvent]], int]
"""Writes one batch and returns how many rows were new (e.g. `LiveStore.add_liquidation_events`);
called from a worker thread, one call at a time."""


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Seconds from received to stored over `count` events (None before the first)."""

    count: int
    p50: float | None
    p95: float | None
    max: float | None


class LatencyReservoir:
    """Every latency counted and the maximum kept, percentiles from a uniform sample of at most
    `size` of them (Vitter's algorithm R): memory stays bounded however long the feed runs."""

    def __init__(self, size: int = 10_000, rng: random.Random | None = None) -> None:
        if size < 1:
            raise ValueError("a reservoir holds at least one value")
        self.size = size
        self.count = 0
        self.max: float | None = None
        self._sample: list[float] = []
        self._rng = rng or random.Random()

    def add(self, seconds: float) -> None:
        self.count += 1
        self.max = seconds if self.max is None else max(self.max, seconds)
        if len(self._sample) < self.size:
            self._sample.append(seconds)
            return
        slot = self._rng.randrange(self.count)
        if slot < self.size:
            self._sample[slot] = seconds

    @property
    def sampled(self) -> int:
        """How many values the sample holds (at most `size`)."""
        return len(self._sample)

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile (q in (0, 1]) of the sample."""
        if not self._sample:
            return None
        ordered = sorted(self._sample)
        return ordered[min(len(ordered), max(1, math.ceil(q * len(ordered)))) - 1]

    def summary(self) -> LatencySummary:
        return LatencySummary(self.count, self.percentile(0.5), self.percentile(0.95), self.max)


@dataclass(slots=True)
class WriterStats:
    put_waits: int = 0  # puts that found the queue full and waited (backpressure)
    batches: int = 0  # store calls that succeeded
    written: int = 0  # events in those batches
    inserted: int = 0  # rows the store reported new (a replayed event is written, not new)
    failures: int = 0  # store calls that raised (the batch was tried again)
    abandoned: int = 0  # events given up on at shutdown, the store still failing
    last_error: str | None = None


class EventWriter:
    """Queue events from a feed and write them in batches with `store`, until stopped."""

    def __init__(
        self,
        store: StoreFn,
        *,
        maxsize: int = 10_000,
        batch_size: int = 1_000,
        flush_seconds: float = 0.25,
        retry_base: float = 0.2,
        retry_cap: float = 10.0,
        shutdown_timeout: float = 30.0,
        reservoir_size: int = 10_000,
        clock: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        if maxsize < 1 or batch_size < 1:
            raise ValueError("maxsize and batch_size must be positive")
        self._store = store
        self.maxsize = maxsize
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.shutdown_timeout = shutdown_timeout
        self._clock = clock
        self._rng = rng or random.Random()
        self.queue: asyncio.Queue[LiquidationEvent] = asyncio.Queue(maxsize)
        self.stats = WriterStats()
        self.latency = LatencyReservoir(reservoir_size, self._rng)
        self._in_flight = 0
        self._give_up_at: float | None = None

    @property
    def pending(self) -> int:
        """Events held and not yet stored: queued plus the batch being written (at most
        `maxsize + batch_size`)."""
        return self.queue.qsize() + self._in_flight

    def retry_delay(self, attempt: int) -> float:
        """Seconds before retry `attempt` (1, 2, ...): doubling from `retry_base` up to
        `retry_cap`, with jitter in its upper half. One writer retries against one database, so
        there is no herd to scatter with full jitter; a floor keeps a down database from being
        hammered by near-zero delays."""
        ceiling = min(self.retry_cap, self.retry_base * 2 ** min(attempt - 1, 32))
        return self._rng.uniform(0.5 * ceiling, ceiling)

    async def put(self, event: LiquidationEvent) -> None:
        """Queue one event, waiting while the queue is full."""
        if self.queue.full():
            self.stats.put_waits += 1
        await self.queue.put(event)

    async def put_many(self, events: Sequence[LiquidationEvent]) -> None:
        """Queue events in order (the feed's sink)."""
        for event in events:
            await self.put(event)

    async def run(self, stop: asyncio.Event) -> None:
        """Write batches until `stop` is set and everything queued is stored. Stop the
        producers first: an event put after this returns stays in the queue."""
        stopping = asyncio.create_task(stop.wait())
        try:
            while True:
                batch = await self._next_batch(stop, stopping)
                if batch:
                    await self._write(batch, stop)
                elif stop.is_set():
                    return
        finally:
            stopping.cancel()

    async def _next_batch(
        self, stop: asyncio.Event, stopping: asyncio.Task[bool]
    ) -> list[LiquidationEvent]:
        """Up to `batch_size` events: the first as soon as there is one, the rest as they come
        within `flush_seconds` of it. Once stopping, only what is queued, without waiting."""
        loop = asyncio.get_running_loop()
        batch: list[LiquidationEvent] = []
        deadline = math.inf  # flush_seconds after the first event, once there is one
        while len(batch) < self.batch_size:
            try:
                event = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                if stop.is_set():
                    break
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                found = await self._get(remaining if batch else None, stopping)
                if found is None:
                    continue  # the time is up or we are stopping: the checks above end it
                event = found
            if not batch:
                deadline = loop.time() + self.flush_seconds
            batch.append(event)
        return batch

    async def _get(
        self, timeout: float | None, stopping: asyncio.Task[bool]
    ) -> LiquidationEvent | None:
        """The next event, or None after `timeout` or once stopping. A get that is cancelled
        leaves its event in the queue (asyncio.Queue guarantees it), so none is lost here."""
        getter = asyncio.create_task(self.queue.get())
        await asyncio.wait((getter, stopping), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            return getter.result()
        getter.cancel()
        await asyncio.wait((getter,))
        return None

    async def _write(self, batch: list[LiquidationEvent], stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        self._in_flight = len(batch)
        attempt = 0
        try:
            while True:
                try:
                    inserted = await asyncio.to_thread(self._store, batch)
                    break
                except Exception as exc:  # any failure of the store: the batch is kept
                    attempt += 1
                    self.stats.failures += 1
                    self.stats.last_error = f"{type(exc).__name__}: {exc}"
                    if stop.is_set():
                        if self._give_up_at is None:
                            self._give_up_at = loop.time() + self.shutdown_timeout
                        if loop.time() >= self._give_up_at:
                            self.stats.abandoned += len(batch)
                            log.error(
                                "gave up storing %d liquidation events at shutdown: %s",
                                len(batch),
                                self.stats.last_error,
                            )
                            return
                    delay = self.retry_delay(attempt)
                    log.warning(
                        "storing %d liquidation events failed (%s); attempt %d in %.2f s",
                        len(batch),
                        self.stats.last_error,
                        attempt + 1,
                        delay,
                    )
                    await asyncio.sleep(delay)
        finally:
            self._in_flight = 0
        stored_at = self._clock()
        for event in batch:
            self.latency.add((stored_at - event.received_at).total_seconds())
        self.stats.batches += 1
        self.stats.written += len(batch)
        self.stats.inserted += inserted
