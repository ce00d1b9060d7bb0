"""Bench (#12): the budget planner at the real universe's size, an hour in simulated time.

435 coins at 1,200 requests/min against the fake CoinGlass server enforcing that limit (its
window counted on the same simulated clock): budget use per minute, requests refused (429), the
hot list's refresh gaps, each tier's interval, all compared with the fixed schedule ladder this
replaces (coinglass.budget.plan_tiers at the same budget: its intraday tier, the freshest
anything got, is the baseline for the hot list; its demand the baseline for budget use).

    uv run python -m bench.planner [--minutes 60] [--coins 435] [--limit 1200]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime

from helix_pipelines.coinglass.budget import demand_per_minute, plan_tiers
from helix_pipelines.coinglass.planner import PlannerParams
from helix_pipelines.contracts.heatmaps import UniverseMember
from helix_pipelines.testing.planner_sim import simulate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--coins", type=int, default=435)
    parser.add_argument("--limit", type=int, default=1200)
    args = parser.parse_args()
    members = [UniverseMember("coin", "", f"C{i:03d}", i + 1) for i in range(args.coins)]
    symbols = [m.symbol for m in members]

    def ranking(t: float) -> list[str]:
        shift = int(t // 600) * 5  # the radar's top moves every 10 minutes
        return symbols[shift:] + symbols[:shift]

    params = PlannerParams()
    started = time.perf_counter()
    sim = simulate(
        members,
        limit=args.limit,
        seconds=args.minutes * 60,
        start=datetime(2026, 12, 1, tzinfo=UTC),
        params=params,
        ranking=ranking,
    )
    wall = time.perf_counter() - started
    use = sim.per_minute(args.limit)
    after_first = use[1:]
    refused = sum(status == 429 for _, status in sim.arrivals)
    refused_later = sum(status == 429 and t >= 60 for t, status in sim.arrivals)
    gaps = sim.hot_refresh_gaps()
    ladder = plan_tiers(args.coins, args.limit)
    ladder_hot = ladder[0].interval_minutes * 60
    ladder_use = demand_per_minute(ladder, args.coins) / args.limit
    last = sim.plans[-1][1]

    print(
        f"{args.coins} coins, {args.limit}/min, {args.minutes} simulated minutes ({wall:.0f} s real)"
    )
    print(f"requests {len(sim.arrivals)}; 429s {refused} (after the first minute: {refused_later})")
    print(
        f"max in any 60 s window: {sim.max_in_window(60)} = {sim.max_in_window(60) / args.limit:.3f} of the limit"
    )
    print(
        f"budget use per minute after the first: min {min(after_first):.3f}, "
        f"mean {statistics.fmean(after_first):.3f}, max {max(after_first):.3f}"
    )
    print(
        f"hot list ({params.hot_coins} coins x {'/'.join(params.hot_ranges)} x 3 models): "
        f"refresh gap max {max(gaps):.1f} s, mean {statistics.fmean(gaps):.1f} s over {len(gaps)} "
        f"refreshes (target {params.hot_target_seconds:.0f} s)"
    )
    print(f"keys fetched at least once: {len(sim.fetched)} of {args.coins * 24}")
    print("tier intervals (expected staleness) in the last plan:")
    for tier in last.tiers:
        print(f"  {tier.name:9s} {tier.keys:6d} keys  every {tier.interval_seconds / 60:7.1f} min")
    print(
        f"baseline, the fixed ladder at the same budget: freshest tier every {ladder_hot / 60:.0f} "
        f"min, budget use {ladder_use:.3f}"
    )
    print(
        f"ratios: hot-list staleness planner / ladder = {max(gaps) / ladder_hot:.3f}; "
        f"budget use planner / ladder = {statistics.fmean(after_first) / ladder_use:.2f}"
    )


if __name__ == "__main__":
    main()
