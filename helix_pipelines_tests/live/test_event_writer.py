"""The bounded write path: batches by size or time, backpressure bounded by the queue, a failing
store retried until the batch is stored (nothing lost), everything held flushed on stop, and the
received-to-stored latency."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from helix_pipelines.contracts.live import LiquidationEvent
from helix_pipelines.live.event_writer import EventWriter, LatencyReservoir, LatencySummary

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def event(i: int, received_at: datetime = T0) -> LiquidationEvent:
    return LiquidationEvent(
        event_time=T0 + timedelta(milliseconds=i), received_at=received_at, base_asset="BTC",
        exchange="Binance", symbol="BTCUSDT", price=50_000.0 + i, side_code=1 + i % 2, usd=10.0,
    )  # fmt: skip


class Store:
    """A store function that records every batch it was called with (in its worker thread)."""

    def __init__(self, fail_first: int = 0) -> None:
        self.calls: list[list[LiquidationEvent]] = []
        self.stored: list[LiquidationEvent] = []
        self.fail_first = fail_first
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, batch: Sequence[LiquidationEvent]) -> int:
        self.calls.append(list(batch))
        self.gate.wait(timeout=10)
        if len(self.calls) <= self.fail_first:
            raise ConnectionError(f"database down (call {len(self.calls)})")
        self.stored.extend(batch)
        return len(batch)


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), timeout=30))


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        await asyncio.sleep(0.002)


def test_full_batches_go_at_once_and_the_rest_after_flush_seconds() -> None:
    store = Store()
    writer = EventWriter(store, maxsize=100, batch_size=10, flush_seconds=0.2)
    events = [event(i) for i in range(25)]
    timings: dict[str, float] = {}

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(writer.run(stop))
        started = time.monotonic()
        await writer.put_many(events)
        await eventually(lambda: len(store.calls) == 2)
        timings["two full batches"] = time.monotonic() - started
        await eventually(lambda: len(store.calls) == 3)
        timings["the rest"] = time.monotonic() - started
        stop.set()
        await task

    run(scenario)
    assert [len(c) for c in store.calls] == [10, 10, 5]
    assert store.stored == events  # in order, each once
    assert timings["two full batches"] < 0.15  # without waiting for the flush time
    assert 0.18 <= timings["the rest"] < 1.0  # waited for flush_seconds, not for more events
    assert (writer.stats.batches, writer.stats.written, writer.stats.inserted) == (3, 25, 25)
    assert writer.stats.put_waits == 0


def test_a_slow_store_holds_the_producer_back_within_the_bound() -> None:
    store = Store()
    store.gate.clear()  # the store hangs until the test opens the gate
    writer = EventWriter(store, maxsize=10, batch_size=4, flush_seconds=0.01)
    events = [event(i) for i in range(60)]
    held: list[int] = []

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(writer.run(stop))
        producer = asyncio.create_task(writer.put_many(events))
        await eventually(lambda: writer.queue.full() and len(store.calls) == 1)
        await asyncio.sleep(0.05)
        assert not producer.done()  # waiting on the full queue, not piling up events
        held.append(writer.pending)
        store.gate.set()
        while not producer.done():
            held.append(writer.pending)
            await asyncio.sleep(0)
        stop.set()
        await task

    run(scenario)
    assert held[0] == 14  # maxsize queued + the batch in the hung store call
    assert max(held) <= writer.maxsize + writer.batch_size
    assert writer.stats.put_waits > 0
    assert store.stored == events
    assert writer.pending == 0


def test_a_failing_store_is_retried_with_the_same_batch_and_nothing_is_lost() -> None:
    store = Store(fail_first=3)
    writer = EventWriter(store, batch_size=50, flush_seconds=0.01, retry_base=0.01, retry_cap=0.05,
                         rng=random.Random(3))  # fmt: skip
    events = [event(i) for i in range(30)]

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(writer.run(stop))
        await writer.put_many(events)
        await eventually(lambda: len(store.stored) == 30)
        stop.set()
        await task

    run(scenario)
    assert [c == events for c in store.calls] == [True, True, True, True]  # the same batch
    assert store.stored == events
    assert (writer.stats.failures, writer.stats.batches, writer.stats.written) == (3, 1, 30)
    assert writer.stats.last_error == "ConnectionError: database down (call 3)"
    assert writer.stats.abandoned == 0


def test_retry_delays_double_with_jitter_up_to_the_cap() -> None:
    writer = EventWriter(Store(), retry_base=0.2, retry_cap=1.0, rng=random.Random(5))
    delays = [writer.retry_delay(attempt) for attempt in (1, 2, 3, 4, 5)]
    ceilings = [0.2, 0.4, 0.8, 1.0, 1.0]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))


def test_stop_flushes_everything_held_without_waiting_for_the_flush_time() -> None:
    store = Store()
    writer = EventWriter(store, batch_size=4, flush_seconds=30.0)
    events = [event(i) for i in range(10)]
    took: list[float] = []

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(writer.run(stop))
        await writer.put_many(events)
        await asyncio.sleep(0.02)  # the writer now holds a partial batch, waiting for more
        started = time.monotonic()
        stop.set()
        await task
        took.append(time.monotonic() - started)

    run(scenario)
    assert store.stored == events
    assert [len(c) for c in store.calls] == [4, 4, 2]
    assert took[0] < 1.0


def test_a_store_still_failing_at_shutdown_is_given_up_after_the_timeout() -> None:
    store = Store(fail_first=10**6)
    writer = EventWriter(store, batch_size=100, flush_seconds=0.01, retry_base=0.01,
                         retry_cap=0.02, shutdown_timeout=0.2)  # fmt: skip

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(writer.run(stop))
        await writer.put_many([event(i) for i in range(5)])
        await eventually(lambda: writer.stats.failures >= 2)
        stop.set()
        await asyncio.wait_for(task, timeout=3)

    run(scenario)
    assert writer.stats.abandoned == 5
    assert writer.stats.written == 0


def test_latency_is_measured_from_received_to_stored() -> None:
    stored_at = T0 + timedelta(seconds=2)
    writer = EventWriter(Store(), batch_size=10, flush_seconds=0.01, clock=lambda: stored_at)
    # Received 0.0 .. 0.9 s after T0, all stored at T0 + 2 s: latencies 2.0 .. 1.1 s.
    events = [event(i, received_at=T0 + timedelta(seconds=i / 10)) for i in range(10)]

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(writer.run(stop))
        await writer.put_many(events)
        stop.set()
        await task

    run(scenario)
    assert writer.latency.summary() == LatencySummary(count=10, p50=1.5, p95=2.0, max=2.0)


def test_the_reservoir_stays_bounded_and_its_percentiles_unbiased() -> None:
    reservoir = LatencyReservoir(size=2_000, rng=random.Random(11))
    assert reservoir.summary() == LatencySummary(0, None, None, None)
    for value in range(1, 100_001):
        reservoir.add(float(value))
    summary = reservoir.summary()
    assert (summary.count, summary.max) == (100_000, 100_000.0)
    assert reservoir.sampled == 2_000
    assert summary.p50 == pytest.approx(50_000, rel=0.05)
    assert summary.p95 == pytest.approx(95_000, rel=0.02)
