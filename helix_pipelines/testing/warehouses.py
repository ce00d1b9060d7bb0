"""Warehouses for tests: opened and migrated in one call, and whole tables read back for
inspection (the product never reads a whole table on a hot path; a test may)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from helix_pipelines.contracts.heatmaps import (
    CANDLES_SCHEMA,
    CELLS_SCHEMA,
    LEDGER_SCHEMA,
    PRICE_LEVELS_SCHEMA,
)
from helix_pipelines.contracts.tables import TABLES
from helix_pipelines.warehouse import Warehouse, open_warehouse
from helix_pipelines.warehouse.cells_policy import CellsPolicy
from helix_pipelines.warehouse.fetch_log import FETCH_LOG_SCHEMA, PLAN_SCHEMA
from helix_pipelines.warehouse.ingest_runs import INGEST_RUNS_SCHEMA
from helix_pipelines.warehouse.live_store import EVENTS_SCHEMA

KEEP_ALL_CELLS = CellsPolicy.parse("all", retention_days=None)
"""For tests that inspect the cells in the warehouse: every series keeps them, for ever."""

SCHEMAS = {
    **{table: schema for table, (schema, _) in TABLES.items()},
    "heatmap_snapshots": LEDGER_SCHEMA,
    "liquidation_data_raw": CELLS_SCHEMA,
    "liquidation_price_levels": PRICE_LEVELS_SCHEMA,
    "heatmap_candles": CANDLES_SCHEMA,
    "liquidation_events": EVENTS_SCHEMA,
    "heatmap_fetch_log": FETCH_LOG_SCHEMA,
    "fetch_plan_tiers": PLAN_SCHEMA,
    "heatmap_ingest_runs": INGEST_RUNS_SCHEMA,
}


def duckdb_warehouse(path: Path, cells: CellsPolicy | None = None) -> Warehouse:
    return open_warehouse(pg_dsn=None, duckdb_path=path, cells=cells)


def postgres_warehouse(
    dsn: str, max_connections: int = 4, cells: CellsPolicy | None = None
) -> Warehouse:
    return open_warehouse(
        pg_dsn=dsn, duckdb_path=Path("unused.duckdb"), max_connections=max_connections, cells=cells
    )


def read_table(warehouse: Warehouse, table: str) -> pl.DataFrame:
    """Every row of a contract table, in its contract schema (JSON columns as text)."""
    schema = SCHEMAS[table]
    columns = ", ".join(
        f'CAST("{c}" AS TEXT) AS "{c}"' if c == "source_extra" else f'"{c}"' for c in schema
    )
    with warehouse.database.connect() as conn:
        return conn.frame(f"SELECT {columns} FROM {table}", (), schema)


def rows(warehouse: Warehouse, sql: str, params: list | None = None) -> list[tuple]:
    """Raw SQL on either backend (`?` placeholders), for inspection."""
    with warehouse.database.connect() as conn:
        return conn.rows(sql, params or [])


def execute(warehouse: Warehouse, sql: str, params: list | None = None) -> int:
    """A statement that returns no rows (a test's UPDATE or DELETE)."""
    with warehouse.database.connect() as conn:  # committed when the block ends
        return conn.execute(sql, params or [])
