"""Bench (#3): warehouse loader throughput as a ratio to `psql \\copy` of the same rows.

Same rows, same table, same database, measured side by side:
  - baseline: `psql -c "\\copy liquidation_data_raw FROM file CSV"` of every cell;
  - ours: `HeatmapStore.store_snapshots` on PostgreSQL of the same snapshots (ledger + cells + candles,
    one transaction per batch of 25), including building its COPY buffers;
  - replay: the same call again (every snapshot known): its cost as a ratio of the first load;
  - COPY variants for the cells, to justify the loader's choice: psycopg `write_row` in text and
    binary format, a polars-built CSV buffer, and the numpy-built binary buffer the loader uses.

    uv run python -m bench.loader_vs_psql_copy [--symbols 12]
"""

from __future__ import annotations

import argparse
import io
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import psycopg

from bench.pg import scratch_database
from helix_pipelines.coinglass.sandbox import SandboxHeatmaps
from helix_pipelines.coinglass.synthetic import SYNTHETIC_COINS
from helix_pipelines.contracts.heatmaps import CELLS_SCHEMA, HeatmapRequest, NormalizedSnapshot
from helix_pipelines.contracts.vocabulary import MODELS, RANGES
from helix_pipelines.heatmaps.normalize import normalize_payload
from helix_pipelines.warehouse.cells_policy import CellsPolicy
from helix_pipelines.warehouse.copy_binary import HEADER, TRAILER, rows_buffer
from helix_pipelines.warehouse.heatmap_store import HeatmapStore
from helix_pipelines.warehouse.postgres_db import PostgresDatabase

COLUMNS = ", ".join(f'"{c}"' for c in CELLS_SCHEMA)
BATCH = 25


def snapshots(n_symbols: int) -> list[NormalizedSnapshot]:
    at = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    sandbox = SandboxHeatmaps(clock=lambda: at)
    result = []
    for symbol in SYNTHETIC_COINS[:n_symbols]:
        for model in MODELS:
            for range_ in RANGES:
                request = HeatmapRequest("coin", symbol, model, range_)
                result.append(normalize_payload(sandbox.payload(request), request, at))
    return result


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def truncate(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE liquidation_data_raw, liquidation_price_levels, heatmap_snapshots, "
            "heatmap_candles"
        )
        conn.execute("VACUUM liquidation_data_raw")


def copy_variant(dsn: str, name: str, cells: list[pl.DataFrame]) -> float:
    statement = f"COPY liquidation_data_raw ({COLUMNS}) FROM STDIN"
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        start = time.perf_counter()
        if name == "write_row_text":
            with cur.copy(statement) as copy:
                for frame in cells:
                    for row in frame.iter_rows():
                        copy.write_row(row)
        elif name == "write_row_binary":
            with cur.copy(statement + " (FORMAT BINARY)") as copy:
                copy.set_types(["text", "timestamptz", "text", "text", "text", "int2", "text",
                                "timestamptz", "float8", "float8", "int4"])  # fmt: skip
                for frame in cells:
                    for row in frame.iter_rows():
                        copy.write_row(row)
        elif name == "polars_csv_buffer":
            with cur.copy(statement + " (FORMAT CSV)") as copy:
                for frame in cells:
                    buffer = io.BytesIO()
                    frame.write_csv(buffer, include_header=False)
                    copy.write(buffer.getvalue())
        else:
            with cur.copy(statement + " (FORMAT BINARY)") as copy:
                copy.write(HEADER)
                for frame in cells:
                    copy.write(rows_buffer(frame))
                copy.write(TRAILER)
        conn.commit()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--symbols", type=int, default=12)
    args = parser.parse_args()
    batch = snapshots(args.symbols)
    rows = sum(s.cells.height for s in batch)
    print(f"loader_vs_psql_copy snapshots={len(batch)} cells={rows:,}")
    with scratch_database() as dsn, tempfile.TemporaryDirectory() as tmp:
        database = PostgresDatabase(dsn)
        database.migrate()
        # The cells path (the largest COPY Helix makes): every series keeps its cells here.
        store = HeatmapStore(database, CellsPolicy.parse("all", retention_days=None))
        csv_path = Path(tmp) / "cells.csv"
        pl.concat([s.keyed(s.cells) for s in batch]).write_csv(csv_path)
        copy_command = (
            f"\\copy liquidation_data_raw ({COLUMNS}) FROM '{csv_path}' WITH (FORMAT csv, HEADER)"
        )
        psql = ["psql", dsn, "-v", "ON_ERROR_STOP=1", "-q", "-c", copy_command]

        def load_all() -> int:
            """Store every batch; returns the cells added."""
            return sum(
                store.store_snapshots(batch[i : i + BATCH]).cells_added
                for i in range(0, len(batch), BATCH)
            )

        results: dict[str, list[float]] = {"psql": [], "ours": [], "replay": []}
        for _ in range(3):
            truncate(dsn)
            results["psql"].append(timed(lambda: subprocess.run(psql, check=True)))
            truncate(dsn)
            results["ours"].append(timed(load_all))
            start = time.perf_counter()
            replay_added = load_all()
            results["replay"].append(time.perf_counter() - start)
            assert replay_added == 0, "a replay must add no rows"
        psql_s, ours_s, replay_s = (min(results[k]) for k in ("psql", "ours", "replay"))
        print(
            f"loader_vs_psql_copy psql_copy_rows_per_s={rows / psql_s:,.0f} "
            f"loader_rows_per_s={rows / ours_s:,.0f} ratio={psql_s / ours_s:.2f}"
        )
        print(
            f"loader_vs_psql_copy replay_seconds={replay_s:.3f} first_load_seconds={ours_s:.3f} "
            f"replay_ratio={replay_s / ours_s:.4f} rows_added_on_replay=0"
        )
        cells = [s.keyed(s.cells) for s in batch]
        subset = cells[: max(1, len(cells) // 4)]  # the slow variants would take minutes on all
        subset_rows = sum(f.height for f in subset)
        for name in (
            "write_row_text",
            "write_row_binary",
            "polars_csv_buffer",
            "numpy_binary_buffer",
        ):
            truncate(dsn)
            seconds = min(copy_variant(dsn, name, subset) for _ in range(2))
            print(
                f"loader_vs_psql_copy variant={name} rows={subset_rows:,} rows_per_s={subset_rows / seconds:,.0f}"
            )
        database.close()


if __name__ == "__main__":
    main()
