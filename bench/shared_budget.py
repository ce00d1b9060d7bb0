"""Bench (#12): two processes with one CoinGlass key, with and without the budget shared in Redis.

Run: `.venv/bin/python -m bench.shared_budget` (150 s per scenario at 1,200/min, 60 s window), or
`--quick` for a 30 s run with a 10 s window and the budget scaled to it.

Two OS processes each run a real `CoinGlassClient` (16 slots, limiter at the plan's limit) that
sends heatmap requests as fast as it is let, against one local fake CoinGlass server enforcing
the plan's limit per sliding window by arrival time (0.1-0.3 s latency, as in
`bench.fetch_throughput`). The same run is made twice: with every limiter sharing one window in
Redis (`SharedWindow`), and without (each process paces itself, learning about the other only
from `API-KEY-USE-LIMIT` and 429s): the baseline, measured in the same run. Every number is
measured at the server.

What the printed numbers mean:
- `max_sends_per_window_over_limit`: the most requests (admitted or refused) that arrived in any
  window (t - window, t], over the limit. Above 1.0 the processes together overdrew the budget.
- `max_admitted_per_window_over_limit`: the same for admitted requests (the server caps it at 1.0).
- `http_429_total` / `http_429_after_first_minute`: refusals, over the run and after the first
  window (when a limiter that learns from headers should have caught up).
- `sustained_ratio_to_limit`: the admitted rate after the first window over the limit (see
  `bench.fetch_throughput.sustained_rate`); a limiter reusing every slot at once reaches
  window / (window + safety margin), 0.984 for 60 s + 1 s.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import multiprocessing
import multiprocessing.queues
import multiprocessing.synchronize
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from bench.fetch_throughput import Settings, parse_args, saturate, sustained_rate
from helix_pipelines.coinglass.client import CoinGlassClient
from helix_pipelines.coinglass.ratelimit import RateLimiter
from helix_pipelines.coinglass.shared_window import SharedWindow
from helix_pipelines.testing.coinglass_server import DEFAULT_API_KEY, FakeCoinGlassServer
from helix_pipelines.testing.coinglass_wire import RecordedRequest
from helix_pipelines.testing.local_services import REDIS_URL

PROCESSES = 2


@dataclass(frozen=True)
class Job:
    """What one process runs: the server, the settings, and the shared window's prefix (None:
    the per-process baseline)."""

    base_url: str
    settings: Settings
    key_prefix: str | None


@dataclass(frozen=True)
class Sent:
    requests_sent: int
    completed: int
    failed: int


@dataclass(frozen=True)
class Scenario:
    name: str
    sent: list[Sent]
    records: list[RecordedRequest]
    t0: float


def process_main(
    job: Job,
    start: multiprocessing.synchronize.Barrier,
    results: multiprocessing.queues.Queue[Sent],
) -> None:
    # One retry warning per 429 would bury the results (the server counts them all); the
    # limiter's own warnings, a Redis failure among them, still show.
    logging.getLogger("helix_pipelines.coinglass.client").setLevel(logging.ERROR)
    results.put(asyncio.run(drive(job, start)))


async def drive(job: Job, start: multiprocessing.synchronize.Barrier) -> Sent:
    """Keep every client slot busy from when both processes are ready until the deadline."""
    settings = job.settings
    shared = (
        SharedWindow(REDIS_URL, DEFAULT_API_KEY, key_prefix=job.key_prefix)
        if job.key_prefix is not None
        else None
    )
    limiter = RateLimiter(
        settings.limit_per_window,
        window_seconds=settings.window_seconds,
        safety_seconds=settings.safety_seconds,
        shared=shared,
    )
    async with CoinGlassClient(
        DEFAULT_API_KEY,
        job.base_url,
        limiter=limiter,
        max_concurrency=settings.concurrency,
        timeout_seconds=10.0,
    ) as client:
        await asyncio.to_thread(start.wait, 120)
        completed, failed = await saturate(client, settings.concurrency, settings.seconds)
        return Sent(client.stats.requests_sent, completed, failed)


def run_scenario(name: str, settings: Settings, key_prefix: str | None) -> Scenario:
    context = multiprocessing.get_context("spawn")
    with FakeCoinGlassServer(
        limit_per_minute=settings.limit_per_window,
        window_seconds=settings.window_seconds,
        min_latency=settings.min_latency,
        max_latency=settings.max_latency,
        record_bodies=False,
    ) as server:
        # One more party than processes: this one, to note when sending starts.
        start = context.Barrier(PROCESSES + 1)
        results: multiprocessing.queues.Queue[Sent] = context.Queue()
        job = Job(server.base_url, settings, key_prefix)
        processes = [
            context.Process(target=process_main, args=(job, start, results))
            for _ in range(PROCESSES)
        ]
        for process in processes:
            process.start()
        start.wait(120)
        t0 = time.monotonic()
        sent = [results.get(timeout=settings.seconds + 120) for _ in processes]
        for process in processes:
            process.join(timeout=60)
        records = server.recorded()
    return Scenario(name, sent, records, t0)


def max_in_window(arrivals: list[float], window: float) -> int:
    """Most arrivals in any half-open window (t - window, t], as the server counts them."""
    return max(
        (i + 1 - bisect.bisect_right(arrivals, t - window) for i, t in enumerate(arrivals)),
        default=0,
    )


@dataclass(frozen=True)
class Measured:
    max_sends_ratio: float
    max_admitted_ratio: float
    http_429_total: int
    http_429_after_first_minute: int
    sustained_ratio: float


def measure(scenario: Scenario, settings: Settings) -> Measured:
    window = settings.window_seconds
    limit = settings.limit_per_window
    arrivals = sorted(r.arrival - scenario.t0 for r in scenario.records)
    admitted = sorted(r.arrival - scenario.t0 for r in scenario.records if r.status == 200)
    refused = [r.arrival - scenario.t0 for r in scenario.records if r.status == 429]
    rate = sustained_rate(admitted, limit, after=window)
    return Measured(
        max_sends_ratio=max_in_window(arrivals, window) / limit,
        max_admitted_ratio=max_in_window(admitted, window) / limit,
        http_429_total=len(refused),
        http_429_after_first_minute=sum(1 for t in refused if t >= window),
        sustained_ratio=rate * window / limit,
    )


def report(scenario: Scenario, measured: Measured) -> None:
    per_process = " ".join(
        f"p{i}_sent={s.requests_sent} p{i}_completed={s.completed} p{i}_failed={s.failed}"
        for i, s in enumerate(scenario.sent)
    )
    lines = [
        f"requests_at_server={len(scenario.records)} {per_process}",
        f"max_sends_per_window_over_limit={measured.max_sends_ratio:.3f} "
        f"max_admitted_per_window_over_limit={measured.max_admitted_ratio:.3f}",
        f"http_429_total={measured.http_429_total} "
        f"http_429_after_first_minute={measured.http_429_after_first_minute}",
        f"sustained_ratio_to_limit={measured.sustained_ratio:.3f}",
    ]
    for line in lines:
        print(f"shared_budget {scenario.name} {line}", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    settings = parse_args(argv, description=__doc__.splitlines()[0])
    window = settings.window_seconds
    print(
        f"shared_budget processes={PROCESSES} limit_per_minute={settings.limit_per_minute} "
        f"window_seconds={window:g} limit_per_window={settings.limit_per_window} "
        f"seconds={settings.seconds:g} concurrency={settings.concurrency} "
        f"latency={settings.min_latency:g}-{settings.max_latency:g}s "
        f"safety_seconds={settings.safety_seconds:g} "
        f"ceiling_ratio={window / (window + settings.safety_seconds):.3f}",
        flush=True,
    )
    prefix = f"helix-bench:{uuid.uuid4().hex}:"
    try:
        shared = run_scenario("shared", settings, prefix)
    finally:
        conn = redis.Redis.from_url(REDIS_URL)
        keys = list(conn.scan_iter(match=f"{prefix}*"))
        if keys:
            conn.delete(*keys)
        conn.close()
    measured_shared = measure(shared, settings)
    report(shared, measured_shared)
    baseline = run_scenario("baseline", settings, None)
    measured_baseline = measure(baseline, settings)
    report(baseline, measured_baseline)
    print(
        "shared_budget ratio_shared_to_baseline "
        f"max_sends_per_window={measured_shared.max_sends_ratio / measured_baseline.max_sends_ratio:.3f} "
        f"http_429={measured_shared.http_429_total}/{measured_baseline.http_429_total} "
        f"sustained_rate={measured_shared.sustained_ratio / max(measured_baseline.sustained_ratio, 1e-9):.3f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
