"""Bench (#11): the radar's own cost (imbalance + baselines + ranking) against ingest.

Sandbox snapshots at real sizes for `--symbols` coins x 24 model/range (two per key) are
normalized (timed: the baseline, the part of ingest that is pure CPU, measured in this run), then
`analyze` runs over them with its imbalance/baseline step (`assess`) and its ranking
(`build_radar`) timed separately, in CPU seconds. Both are linear in coins, so the numbers are
also given for the 435-coin universe, and against the API floor of a full sweep (10,368 requests
at 1,200 a minute: 518 s), the least any ingest of the universe can take.

    uv run python -m bench.radar [--symbols 20]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any

import polars as pl

from bench.analytics_throughput import NOW, inputs
from helix_pipelines.analytics import pipeline
from helix_pipelines.coinglass.synthetic import SYNTHETIC_COINS

UNIVERSE = 435
API_FLOOR_SECONDS = 10_368 / 1_200 * 60  # a full sweep at the plan limit


def timed(function: Callable[..., Any], spent: list[float]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            spent.append(time.process_time() - start)

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--symbols", type=int, default=20)
    args = parser.parse_args()
    start = time.process_time()
    latest, levels, candles, cells = inputs(list(SYNTHETIC_COINS[: args.symbols]))
    normalize_seconds = time.process_time() - start

    def levels_of(snapshot_ids: Sequence[str]) -> pl.DataFrame:
        return levels.filter(pl.col("snapshot_id").is_in(list(snapshot_ids)))

    assess_spent: list[float] = []
    rank_spent: list[float] = []
    pipeline.assess = timed(pipeline.assess, assess_spent)  # type: ignore[assignment]
    pipeline.build_radar = timed(pipeline.build_radar, rank_spent)  # type: ignore[assignment]
    start = time.process_time()
    result = pipeline.analyze(latest, levels_of, candles, now=NOW)
    analyze_seconds = time.process_time() - start
    radar_seconds = assess_spent[0] + rank_spent[0]
    scale = UNIVERSE / args.symbols
    ranked = sum(1 for e in result.radar if e.rank is not None)
    print(
        f"radar symbols={args.symbols} snapshots={latest.height} cells={cells:,} ranked={ranked} "
        f"imbalance_rows={len(result.imbalances)}"
    )
    print(
        f"radar cpu_seconds assess={assess_spent[0]:.3f} rank={rank_spent[0]:.3f} "
        f"analyze_total={analyze_seconds:.2f} normalize_baseline={normalize_seconds:.2f}"
    )
    print(
        f"radar ratio radar/normalize={radar_seconds / normalize_seconds:.5f} "
        f"radar/analyze={radar_seconds / analyze_seconds:.4f}"
    )
    print(
        f"radar universe={UNIVERSE} estimated radar_seconds={radar_seconds * scale:.2f} "
        f"vs api_floor={API_FLOOR_SECONDS:.0f}s ratio={radar_seconds * scale / API_FLOOR_SECONDS:.5f}"
    )


if __name__ == "__main__":
    main()
