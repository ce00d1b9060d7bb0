"""SQL both warehouses share: the ledger summary, the analytics layer's reads of heatmaps, and
upserts of whole result frames (analytics and executor tables).

Statements are written with `?` placeholders (DuckDB's); the PostgreSQL warehouse converts them
to `%s`. Table and column names only ever come from the FRAME_TABLES allowlist.
"""

from __future__ import annotations

import polars as pl

from helix_pipelines.analytics.tables import ANALYTICS_TABLES
from helix_pipelines.execution.tables import EXECUTION_TABLES
from helix_pipelines.heatmaps.contracts import UTC_TIME

FRAME_TABLES = {**ANALYTICS_TABLES, **EXECUTION_TABLES}
"""Tables written and read as whole frames: table -> (schema, primary key)."""

LATEST_SNAPSHOTS = """
SELECT snapshot_id, fetched_at, scope, exchange, symbol, model, "range", x_axis,
       first_candle_ts, last_candle_ts, recency
FROM (
    SELECT snapshot_id, fetched_at, scope, exchange, symbol, model, "range", x_axis,
           first_candle_ts, last_candle_ts,
           row_number() OVER (PARTITION BY scope, exchange, symbol, model, "range"
                              ORDER BY fetched_at DESC) AS recency
    FROM heatmap_snapshots WHERE status = 'loaded'
) ranked
WHERE recency <= ?
ORDER BY symbol, model, "range", recency
"""
LATEST_SNAPSHOTS_SCHEMA: dict[str, pl.DataType] = {
    "snapshot_id": pl.String(), "fetched_at": UTC_TIME, "scope": pl.String(),
    "exchange": pl.String(), "symbol": pl.String(), "model": pl.Int16(), "range": pl.String(),
    "x_axis": pl.String(), "first_candle_ts": UTC_TIME, "last_candle_ts": UTC_TIME,
    "recency": pl.Int64(),
}  # fmt: skip
SNAPSHOT_CELLS_SCHEMA: dict[str, pl.DataType] = {
    "snapshot_id": pl.String(), "x_index": pl.Int32(), "candle_ts": UTC_TIME,
    "price": pl.Float64(), "liq_usd": pl.Float64(),
}  # fmt: skip
# Keys of one range whose newest answer in the window said "no data": skipped by ingest.
RECENTLY_UNAVAILABLE = """
SELECT scope, exchange, symbol FROM (
    SELECT scope, exchange, symbol, status,
           row_number() OVER (PARTITION BY scope, exchange, symbol ORDER BY fetched_at DESC) AS r
    FROM heatmap_snapshots
    WHERE "range" = ? AND fetched_at >= ? AND status IN ('loaded', 'unavailable')
) newest
WHERE r = 1 AND status = 'unavailable'
"""
LEDGER_SUMMARY = """
SELECT model, "range",
       count(*) FILTER (WHERE status = 'loaded') AS loaded,
       count(*) FILTER (WHERE status = 'quarantined') AS quarantined,
       count(*) FILTER (WHERE status = 'unavailable') AS unavailable,
       coalesce(sum(n_cells), 0) AS cells,
       max(fetched_at) AS latest_fetch
FROM heatmap_snapshots GROUP BY model, "range" ORDER BY model, "range"
"""
CANDLES_SINCE = """
SELECT scope, exchange, symbol, "range", ts, open, high, low, close, volume_usd
FROM heatmap_candles WHERE ts >= ? ORDER BY scope, exchange, symbol, "range", ts
"""


def table_spec(table: str) -> tuple[list[str], list[str]]:
    """(columns, key columns) of a frame table; ValueError for anything else."""
    if table not in FRAME_TABLES:
        raise ValueError(f"{table!r} is not a frame table ({', '.join(FRAME_TABLES)})")
    schema, key = FRAME_TABLES[table]
    return list(schema), list(key)


def quoted(names: list[str]) -> str:
    """Comma-separated double-quoted identifiers (allowlisted names only)."""
    return ", ".join(f'"{n}"' for n in names)


def _upsert_statements(table: str) -> tuple[str, str, str]:
    columns, key = table_spec(table)
    # Built once from the allowlist above, never from input: these are named constants.
    delete = f"DELETE FROM {table} WHERE ({quoted(key)}) IN (SELECT {quoted(key)} FROM incoming)"  # noqa: S608
    insert = f"INSERT INTO {table} ({quoted(columns)}) SELECT {quoted(columns)} FROM incoming"  # noqa: S608
    select = f"SELECT {quoted(columns)} FROM {table}"  # noqa: S608
    return delete, insert, select


UPSERT_SQL: dict[str, tuple[str, str, str]] = {t: _upsert_statements(t) for t in FRAME_TABLES}
"""table -> (delete rows whose key is in `incoming`, insert `incoming`, select all columns)."""
