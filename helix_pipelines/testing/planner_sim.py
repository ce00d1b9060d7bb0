"""A simulated stretch of planning against the fake CoinGlass server: the planner, the pacer, the
rate limiter and the server's window all on one `SimulatedClock`, requests one at a time, so an
hour at 1,200 requests a minute runs in about a minute of real time.

The test suite runs it scaled down; bench/planner.py at the real universe's size.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from helix_pipelines.coinglass.client import CoinGlassClient
from helix_pipelines.coinglass.pacing import Pacer
from helix_pipelines.coinglass.planner import (
    FetchKey,
    FetchPlan,
    KeyState,
    PlannerParams,
    plan_fetches,
)
from helix_pipelines.coinglass.ratelimit import RateLimiter
from helix_pipelines.contracts.heatmaps import UniverseMember
from helix_pipelines.services.planner import plan_loop
from helix_pipelines.testing.coinglass_server import DEFAULT_API_KEY, FakeCoinGlassServer
from helix_pipelines.testing.sim_clock import SimulatedClock

# The planner never reads payloads: a small fixed body keeps tens of thousands of requests fast.
SMALL_BODY = b'{"code":"0","msg":"success","data":{"y_axis":[],"liquidation_leverage_data":[]}}'


@dataclass
class Simulation:
    """Every arrival at the server (simulated seconds, HTTP status), every fetch per key, and
    every plan with the simulated second it was made."""

    arrivals: list[tuple[float, int | None]] = field(default_factory=list)
    fetched: dict[FetchKey, list[float]] = field(default_factory=lambda: defaultdict(list))
    plans: list[tuple[float, FetchPlan]] = field(default_factory=list)

    def per_minute(self, limit: int) -> list[float]:
        """Each whole simulated minute's arrivals over the limit."""
        minutes = int(max((t for t, _ in self.arrivals), default=0) // 60)
        counts = [0] * (minutes + 1)
        for t, _ in self.arrivals:
            counts[int(t // 60)] += 1
        return [c / limit for c in counts[:minutes]]

    def max_in_window(self, window: float = 60.0) -> int:
        times = sorted(t for t, _ in self.arrivals)
        start, most = 0, 0
        for end, t in enumerate(times):
            while times[start] <= t - window:
                start += 1
            most = max(most, end - start + 1)
        return most

    def hot_refresh_gaps(self) -> list[float]:
        """For every hot key of every plan whose coin was hot the cycle before too: seconds
        between its previous fetch and the one this plan made."""
        gaps = []
        for (_, previous), (at, current) in zip(self.plans, self.plans[1:], strict=False):
            still_hot = set(previous.hot_coins) & set(current.hot_coins)
            for key in current.keys:
                if key.symbol in still_hot and key.range in current.hot_ranges:
                    times = self.fetched[key]
                    # The plan's first request goes out at the very instant it is made.
                    before = [t for t in times if t < at]
                    after = [t for t in times if t >= at]
                    if before and after:
                        gaps.append(min(after) - max(before))
        return gaps


def simulate(
    members: Sequence[UniverseMember],
    *,
    limit: int,
    seconds: float,
    start: datetime,
    params: PlannerParams,
    ranking: Callable[[float], list[str]] | None = None,
) -> Simulation:
    """Plan and fetch for `seconds` of simulated time; `ranking(t)` is the radar's order at t."""
    sim = SimulatedClock(start)
    result = Simulation()
    states: dict[FetchKey, KeyState] = {}
    with FakeCoinGlassServer(
        limit_per_minute=limit,
        clock=sim.monotonic,
        payload_factory=lambda path, query: SMALL_BODY,
        record_bodies=False,
    ) as server:

        async def run() -> None:
            limiter = RateLimiter(limit, clock=sim.monotonic, sleep=sim.sleep)
            pacer = Pacer(1.0, clock=sim.monotonic, sleep=sim.sleep)
            stop = asyncio.Event()
            async with CoinGlassClient(
                DEFAULT_API_KEY, server.base_url, max_concurrency=1, limiter=limiter
            ) as client:

                def plan() -> FetchPlan:
                    order = ranking(sim.monotonic()) if ranking else []
                    current = plan_fetches(
                        members,
                        order,
                        states,
                        limit_per_minute=client.limiter.limit,
                        now=sim.now(),
                        params=params,
                    )
                    result.plans.append((sim.monotonic(), current))
                    return current

                async def execute(current: FetchPlan) -> None:
                    pacer.interval_seconds = current.cycle_seconds / current.budget
                    for key in current.keys:
                        await pacer.wait()
                        await client.fetch_heatmap(key.request())
                        states[key] = KeyState(sim.now())
                        result.fetched[key].append(sim.monotonic())
                    if sim.monotonic() >= seconds:
                        stop.set()

                await plan_loop(plan, execute, stop, clock=sim.monotonic, sleep=sim.sleep)

        asyncio.run(run())
        result.arrivals = [(r.arrival, r.status) for r in server.recorded()]
    return result
