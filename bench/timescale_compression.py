"""Bench (#10): what TimescaleDB compression would make of `liquidation_price_levels`, measured
on this machine without TimescaleDB.

TimescaleDB cannot be installed here, so its columnar compression is reproduced on the real
rows: profiles of real-size synthetic snapshots (several successive moments per series, so a
series' batches hold a run of snapshots) are loaded into plain PostgreSQL, whose heap and index
size is the "before". The "after" applies, per candidate `segmentby` / `orderby`, what the
TimescaleDB 2.x docs say it stores: rows grouped by the segmentby columns into batches of up to
1,000 in orderby order; segmentby values once per batch; integers and timestamps as
delta-of-delta, zigzag and Simple-8b; floats with Gorilla XOR encoding; other text as a
dictionary. The bit counts are computed value by value, so the estimate rests on the data and on
those algorithms, not on a guessed ratio. Batch and TOAST overheads are charged at 32 bytes per
column per batch.

    uv run python -m bench.timescale_compression [--coins 12] [--moments 3]
"""

from __future__ import annotations

import argparse
import math
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import psycopg

from bench.pg import scratch_database
from helix_pipelines.coinglass.synthetic import SHAPES, SYNTHETIC_COINS, heatmap_payload
from helix_pipelines.contracts.heatmaps import HeatmapRequest
from helix_pipelines.contracts.vocabulary import MODELS, RANGES
from helix_pipelines.heatmaps.normalize import normalize_payload
from helix_pipelines.warehouse import open_warehouse

BATCH_ROWS = 1000
OVERHEAD_BYTES_PER_COLUMN_BATCH = 32
SIMPLE8B_WIDTHS = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 15, 20, 30, 60)
CANDIDATES = {
    "segmentby symbol, model, range; orderby fetched_at, price (chosen)": (
        ["symbol", "model", "range"],
        ["fetched_at", "price"],
    ),
    "segmentby symbol, model, range; orderby price, fetched_at": (
        ["symbol", "model", "range"],
        ["price", "fetched_at"],
    ),
    "segmentby snapshot_id; orderby price": (["snapshot_id"], ["price"]),
    "no segmentby; orderby fetched_at, price": ([], ["fetched_at", "price"]),
}
INTEGER_COLUMNS = ("model", "cells", "fetched_at")
FLOAT_COLUMNS = ("price", "cumulative_usd", "live_usd")


def _width(value: int) -> int:
    bits = max(int(value).bit_length(), 1)
    return next(w for w in SIMPLE8B_WIDTHS if w >= bits)


def delta_of_delta_bits(values: np.ndarray) -> int:
    if len(values) == 0:
        return 0
    deltas = np.diff(values.astype(np.int64), prepend=values[:1].astype(np.int64))
    dod = np.diff(deltas, prepend=deltas[:1])
    zigzag = (dod << 1) ^ (dod >> 63)
    if not zigzag[1:].any():  # Simple-8b run-length: one word for the whole run
        return 64 + 64
    return 64 + sum(_width(v) for v in zigzag[1:].tolist())


def gorilla_bits(values: np.ndarray) -> int:
    words = values.astype(np.float64).view(np.uint64).tolist()
    bits, prev, window = 64, words[0], None
    for word in words[1:]:
        xor = word ^ prev
        prev = word
        if xor == 0:
            bits += 1
            continue
        lead = 64 - xor.bit_length()
        trail = (xor & -xor).bit_length() - 1
        if window and lead >= window[0] and trail >= window[1]:
            bits += 2 + 64 - window[0] - window[1]
        else:
            bits += 2 + 5 + 6 + 64 - lead - trail
            window = (lead, trail)
    return bits


def dictionary_bits(values: list[str]) -> int:
    distinct = set(values)
    index_bits = max(math.ceil(math.log2(len(distinct))), 1) if len(distinct) > 1 else 0
    return 8 * sum(len(v) + 4 for v in distinct) + (index_bits * len(values) or 64)


def column_bytes(
    rows: pl.DataFrame,
    segmentby: list[str],
    orderby: list[str],
    integers: tuple[str, ...] = INTEGER_COLUMNS,
) -> dict[str, int]:
    """Estimated compressed bytes per column (batch overheads included)."""
    frame = rows.with_columns(pl.col("fetched_at").dt.epoch("us"))
    groups = frame.partition_by(segmentby, maintain_order=True) if segmentby else [frame]
    bits = dict.fromkeys(frame.columns, 0)
    for group in groups:
        ordered = group.sort(orderby)
        for start in range(0, ordered.height, BATCH_ROWS):
            batch = ordered.slice(start, BATCH_ROWS)
            for column in batch.columns:
                bits[column] += 8 * OVERHEAD_BYTES_PER_COLUMN_BATCH
                if column in segmentby:
                    bits[column] += 8 * 16  # one value per batch
                elif column in integers:
                    bits[column] += delta_of_delta_bits(batch[column].to_numpy())
                elif column in FLOAT_COLUMNS:
                    bits[column] += gorilla_bits(batch[column].to_numpy())
                else:
                    bits[column] += dictionary_bits(batch[column].to_list())
    return {column: b // 8 for column, b in bits.items()}


def compressed_bytes(
    rows: pl.DataFrame,
    segmentby: list[str],
    orderby: list[str],
    integers: tuple[str, ...] = INTEGER_COLUMNS,
) -> int:
    return sum(column_bytes(rows, segmentby, orderby, integers).values())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--coins", type=int, default=12)
    parser.add_argument("--moments", type=int, default=3, help="successive snapshots per series")
    args = parser.parse_args()
    started = time.perf_counter()
    snapshots = []
    for coin in SYNTHETIC_COINS[: args.coins]:
        for model in MODELS:
            for range_ in RANGES:
                request = HeatmapRequest("coin", coin, model, range_)
                period = SHAPES[model, range_].candle_seconds
                for moment in range(args.moments):
                    end = 1_750_000_000 - 1_750_000_000 % period + moment * period
                    fetched = datetime.fromtimestamp(end + 30, UTC)
                    raw = heatmap_payload(request, end)
                    snapshots.append(normalize_payload(raw, request, fetched))
    cells = sum(s.cells.height for s in snapshots)
    with scratch_database() as dsn:
        warehouse = open_warehouse(pg_dsn=dsn, duckdb_path=Path("unused.duckdb"))
        for i in range(0, len(snapshots), 8):
            warehouse.heatmaps.store_snapshots(snapshots[i : i + 8])
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("VACUUM ANALYZE liquidation_price_levels")
        with warehouse.database.connect() as conn:
            heap, total = conn.rows(
                "SELECT pg_relation_size('liquidation_price_levels'), "
                "pg_total_relation_size('liquidation_price_levels')"
            )[0]
            rows = conn.frame("SELECT * FROM liquidation_price_levels")
        warehouse.close()
    print(
        f"timescale_compression snapshots={len(snapshots)} cells={cells:,} "
        f"profile_rows={rows.height:,} rows_per_snapshot={rows.height / len(snapshots):.0f} "
        f"postgres_heap_bytes={heap:,} postgres_total_bytes={total:,} "
        f"bytes_per_row={total / rows.height:.1f} seconds={time.perf_counter() - started:.0f}"
    )
    for name, (segmentby, orderby) in CANDIDATES.items():
        after = compressed_bytes(rows, segmentby, orderby)
        print(
            f"timescale_compression candidate={name!r} estimated_bytes={after:,} "
            f"bytes_per_row={after / rows.height:.2f} ratio_to_postgres_total={after / total:.3f}"
        )
    # Not the schema: what integer columns would buy (prices in ticks of 1e-8 of the coin's
    # price scale, USD in cents), which delta-of-delta encodes where Gorilla cannot.
    as_integers = rows.with_columns(
        (pl.col("price") * 1e8).round().cast(pl.Int64).alias("price"),
        (pl.col("cumulative_usd") * 100).round().cast(pl.Int64).alias("cumulative_usd"),
        (pl.col("live_usd") * 100).round().cast(pl.Int64).alias("live_usd"),
    )
    segmentby, orderby = next(iter(CANDIDATES.values()))
    after = compressed_bytes(
        as_integers, segmentby, orderby, integers=INTEGER_COLUMNS + FLOAT_COLUMNS
    )
    print(
        "timescale_compression candidate='chosen, if price and USD were integer columns' "
        f"estimated_bytes={after:,} bytes_per_row={after / rows.height:.2f} "
        f"ratio_to_postgres_total={after / total:.3f}"
    )
    per_column = column_bytes(rows, segmentby, orderby)
    print(
        "timescale_compression chosen_bytes_per_row_by_column "
        + " ".join(f"{c}={b / rows.height:.2f}" for c, b in per_column.items())
    )


if __name__ == "__main__":
    main()
