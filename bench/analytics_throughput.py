"""Bench (#4): clusters + consensus + risk for the whole universe, as snapshots per CPU-second.

Sandbox snapshots for every symbol x model x range (two per key, so swept detection runs too)
are normalized up front, and their price-level profiles (what the warehouse keeps) kept in
memory; `analyze` then runs over all of them, reading the profiles through the same reader
interface the warehouse serves, and is timed in CPU seconds of this process. It must exceed
the ingest rate (bench/full_sweep.py) by a wide margin for analytics never to limit the
pipeline.

    uv run python -m bench.analytics_throughput [--symbols 20]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import polars as pl

from helix_pipelines.analytics.pipeline import analyze
from helix_pipelines.coinglass.sandbox import SandboxHeatmaps
from helix_pipelines.coinglass.synthetic import SYNTHETIC_COINS
from helix_pipelines.contracts.heatmaps import HeatmapRequest
from helix_pipelines.contracts.vocabulary import MODELS, RANGES
from helix_pipelines.heatmaps.normalize import normalize_payload

NOW = datetime(2026, 11, 25, 12, 7, tzinfo=UTC)


def inputs(symbols: list[str]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, int]:
    ledger, levels, candles = [], [], []
    cells = 0
    for recency, moment in ((2, NOW - timedelta(hours=1)), (1, NOW)):
        sandbox = SandboxHeatmaps(clock=lambda moment=moment: moment)
        for symbol in symbols:
            for model in MODELS:
                for range_ in RANGES:
                    request = HeatmapRequest("coin", symbol, model, range_)
                    snapshot = normalize_payload(sandbox.payload(request), request, moment)
                    if snapshot.ledger.status != "loaded":
                        continue  # a young coin's "no data": nothing to analyse, as in the store
                    ledger.append({**snapshot.ledger.as_dict(), "recency": recency})
                    levels.append(
                        snapshot.levels.select(
                            pl.lit(snapshot.ledger.snapshot_id).alias("snapshot_id"), pl.all()
                        )
                    )
                    cells += snapshot.cells.height
                    candles.append(snapshot.candles)
    latest = pl.DataFrame(ledger).select(
        "snapshot_id",
        "fetched_at",
        "scope",
        "exchange",
        "symbol",
        "model",
        "range",
        "x_axis",
        "first_candle_ts",
        "last_candle_ts",
        "recency",
    )
    all_candles = pl.concat(candles).unique(
        ["scope", "exchange", "symbol", "range", "ts"], keep="last"
    )
    return latest, pl.concat(levels), all_candles, cells


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    latest, levels, candles, cells = inputs(list(SYNTHETIC_COINS[: args.symbols]))

    def levels_of(snapshot_ids: Sequence[str]) -> pl.DataFrame:
        return levels.filter(pl.col("snapshot_id").is_in(list(snapshot_ids)))

    best = float("inf")
    for _ in range(args.repeats):
        start = time.process_time()
        result = analyze(latest, levels_of, candles, now=NOW)
        best = min(best, time.process_time() - start)
    snapshots = latest.height
    print(
        f"analytics_throughput symbols={args.symbols} snapshots={snapshots} (current + previous) "
        f"cells={cells:,} profile_rows={levels.height:,} clusters={result.clusters.height} "
        f"zones={result.zones.height} signals={len(result.signals)}"
    )
    print(
        f"analytics_throughput cpu_seconds={best:.2f} snapshots_per_cpu_second={snapshots / best:.1f} "
        f"current_snapshots_per_cpu_second={result.snapshots_analyzed / best:.1f}"
    )


if __name__ == "__main__":
    main()
