"""Benchmark (b): how close the real CoinGlassClient runs to the plan's rate limit, without 429s.

Run: `.venv/bin/python -m bench.fetch_throughput` (150 s at 1,200/min), or `--quick` for a 30 s
smoke run with a 10 s window and the budget scaled to it.

A local fake CoinGlass server enforces `limit` requests per sliding window counted by arrival time
and answers after 0.1-0.3 s. The client starts with its limiter at the plan's limit and enough
concurrency (16 slots, ~50-80 requests/s) that the budget, not concurrency, is what binds. Every
number is measured at the server (arrival times, statuses), which is where a plan is enforced.

What the printed numbers mean:
- `rate_per_min_whole_run`: completed requests / run time. With a sliding window the first window's
  whole budget is spent at once, so a run of a few windows legitimately shows more than the limit.
- `rate_per_min_after_first_minute`: the sustained rate of the requests that arrived after the first
  window. Each of them reuses the budget slot of the request `limit` places earlier, so the rate is
  `limit / mean(arrival[j] - arrival[j - limit])`. Unlike counting arrivals between two instants,
  this does not depend on where the limiter's bursts fall relative to the end of the run.
- `ratio_to_limit`: that rate divided by the limit. A limiter that reuses every slot the moment it
  frees reaches window / (window + safety margin) (`ceiling_ratio`): 0.984 for 60 s + 1 s.
- `mean_window_count_after_first_minute` / `max_in_any_window_after_first_minute`: admitted
  arrivals in windows [t, t + window) starting after the first window (every 0.1 s). The maximum
  must not exceed the limit; the 429 counts show whether the server ever had to refuse.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from helix_pipelines.coinglass.client import CoinGlassClient
from helix_pipelines.coinglass.errors import CoinGlassError
from helix_pipelines.coinglass.ratelimit import RateLimiter
from helix_pipelines.contracts.heatmaps import HeatmapRequest
from helix_pipelines.contracts.vocabulary import MODELS, RANGES
from helix_pipelines.testing.coinglass_server import (
    DEFAULT_API_KEY,
    DEFAULT_COINS,
    FakeCoinGlassServer,
)
from helix_pipelines.testing.coinglass_wire import RecordedRequest

QUICK_WINDOW_SECONDS = 10.0
QUICK_RUN_SECONDS = 30.0


@dataclass(frozen=True)
class Settings:
    limit_per_minute: int
    seconds: float
    window_seconds: float
    safety_seconds: float
    concurrency: int
    min_latency: float
    max_latency: float

    @property
    def limit_per_window(self) -> int:
        """The budget per window: the plan's per-minute limit scaled to a shortened window."""
        return max(1, round(self.limit_per_minute * self.window_seconds / 60.0))


@dataclass
class Outcome:
    completed: int
    failed: int
    elapsed: float
    requests_sent: int
    retries: int
    http_429_seen_by_client: int
    limiter_limit: int


def parse_args(argv: Sequence[str] | None = None, description: str | None = None) -> Settings:
    """The load's settings (bench/shared_budget.py runs the same load in two processes)."""
    parser = argparse.ArgumentParser(description=description or __doc__.splitlines()[0])
    parser.add_argument("--limit-per-minute", type=int, default=1200)
    parser.add_argument("--seconds", type=float, default=None, help="run time (default 150)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--min-latency", type=float, default=0.1)
    parser.add_argument("--max-latency", type=float, default=0.3)
    parser.add_argument(
        "--safety-seconds", type=float, default=1.0, help="client limiter safety margin"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_WINDOW_SECONDS:g} s window, {QUICK_RUN_SECONDS:g} s run, budget scaled",
    )
    args = parser.parse_args(argv)
    window = QUICK_WINDOW_SECONDS if args.quick else 60.0
    seconds = args.seconds if args.seconds is not None else (30.0 if args.quick else 150.0)
    return Settings(
        limit_per_minute=args.limit_per_minute,
        seconds=seconds,
        window_seconds=window,
        safety_seconds=args.safety_seconds,
        concurrency=args.concurrency,
        min_latency=args.min_latency,
        max_latency=args.max_latency,
    )


def request_cycle() -> Iterator[HeatmapRequest]:
    """Coin-scope heatmaps over every symbol, model and range, round and round."""
    return itertools.cycle(
        [
            HeatmapRequest("coin", symbol, model, rng)
            for rng in RANGES
            for model in MODELS
            for symbol in DEFAULT_COINS
        ]
    )


async def saturate(client: CoinGlassClient, concurrency: int, seconds: float) -> tuple[int, int]:
    """Keep every client slot busy for `seconds` (twice as many workers as slots, so a slot is
    never idle for want of work), then cancel what still waits; (completed, failed)."""
    requests = request_cycle()
    completed = failed = 0

    async def worker() -> None:
        nonlocal completed, failed
        while True:
            try:
                await client.fetch_heatmap(next(requests))
                completed += 1
            except CoinGlassError:
                failed += 1

    tasks = [asyncio.create_task(worker()) for _ in range(2 * concurrency)]
    await asyncio.sleep(seconds)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return completed, failed


async def drive(server: FakeCoinGlassServer, settings: Settings) -> Outcome:
    """Keep every client slot busy until the deadline, then cancel whatever is still waiting."""
    limiter = RateLimiter(
        settings.limit_per_window,
        window_seconds=settings.window_seconds,
        safety_seconds=settings.safety_seconds,
    )
    async with CoinGlassClient(
        DEFAULT_API_KEY,
        server.base_url,
        limiter=limiter,
        max_concurrency=settings.concurrency,
        timeout_seconds=10.0,
    ) as client:
        started = time.monotonic()
        completed, failed = await saturate(client, settings.concurrency, settings.seconds)
        return Outcome(
            completed=completed,
            failed=failed,
            elapsed=time.monotonic() - started,
            requests_sent=client.stats.requests_sent,
            retries=client.stats.retries,
            http_429_seen_by_client=client.stats.rate_limited,
            limiter_limit=limiter.limit,
        )


def window_counts(arrivals: list[float], window: float, start: float, stop: float) -> list[int]:
    """Admitted arrivals in [t, t + window) for t from `start` to `stop` every 0.1 s."""
    counts = []
    t = start
    while t <= stop + 1e-9:
        counts.append(bisect.bisect_left(arrivals, t + window) - bisect.bisect_left(arrivals, t))
        t += 0.1
    return counts


def sustained_rate(arrivals: list[float], limit: int, *, after: float) -> float:
    """Requests per second implied by how fast budget slots were reused after time `after`.

    Under a binding per-window budget, request j can only go once request j - limit has left the
    window, so `arrival[j] - arrival[j - limit]` is how long one slot took to recycle.
    """
    gaps = [
        arrivals[j] - arrivals[j - limit]
        for j in range(limit, len(arrivals))
        if arrivals[j] >= after
    ]
    if not gaps:
        return 0.0
    return limit / (sum(gaps) / len(gaps))


def report(settings: Settings, outcome: Outcome, records: list[RecordedRequest], t0: float) -> None:
    window = settings.window_seconds
    limit = settings.limit_per_window
    per_minute = 60.0 / window
    admitted = sorted(r.arrival - t0 for r in records if r.status == 200)
    rejected = [r.arrival - t0 for r in records if r.status == 429]
    end = outcome.elapsed
    counts = window_counts(admitted, window, window, max(window, end - window))
    mean_window = sum(counts) / len(counts) if counts else 0.0
    rate_after = sustained_rate(admitted, limit, after=window) * 60.0
    limit_per_minute = limit * per_minute
    ceiling = window / (window + settings.safety_seconds)
    lines = [
        f"limit_per_minute={limit_per_minute:g} window_seconds={window:g} "
        f"limit_per_window={limit} seconds={end:.1f} concurrency={settings.concurrency} "
        f"latency={settings.min_latency:g}-{settings.max_latency:g}s "
        f"safety_seconds={settings.safety_seconds:g}",
        f"requests_completed={outcome.completed} requests_failed={outcome.failed} "
        f"requests_sent={outcome.requests_sent} retries={outcome.retries} "
        f"client_limit_after_run={outcome.limiter_limit}",
        f"rate_per_min_whole_run={outcome.completed / end * 60:.1f} "
        f"rate_per_min_after_first_minute={rate_after:.1f}",
        f"ratio_to_limit={rate_after / limit_per_minute:.3f} ceiling_ratio={ceiling:.3f}",
        f"mean_window_count_after_first_minute={mean_window:.1f} "
        f"max_in_any_window_after_first_minute={max(counts, default=0)} "
        f"windows_sampled={len(counts)}",
        f"http_429_first_minute={sum(1 for t in rejected if t < window)} "
        f"http_429_after_first_minute={sum(1 for t in rejected if t >= window)} "
        f"http_429_seen_by_client={outcome.http_429_seen_by_client}",
    ]
    for line in lines:
        print(f"fetch_throughput {line}", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    settings = parse_args(argv)
    with FakeCoinGlassServer(
        limit_per_minute=settings.limit_per_window,
        window_seconds=settings.window_seconds,
        min_latency=settings.min_latency,
        max_latency=settings.max_latency,
        record_bodies=False,
    ) as server:
        t0 = time.monotonic()
        outcome = asyncio.run(drive(server, settings))
        records = server.recorded()
    report(settings, outcome, records, t0)


if __name__ == "__main__":
    main()
