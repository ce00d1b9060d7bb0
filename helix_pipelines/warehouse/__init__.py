"""The warehouse: PostgreSQL/TimescaleDB in production, an embedded DuckDB file by default,
behind one port (`database`) with one schema (`sql/`, one migration runner) and a repository
per domain. `open_warehouse` picks the backend; everything above talks to the repositories.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from helix_pipelines.warehouse.analytics_store import AnalyticsStore
from helix_pipelines.warehouse.cells_policy import CellsPolicy
from helix_pipelines.warehouse.database import Database
from helix_pipelines.warehouse.duckdb_db import DuckDBDatabase
from helix_pipelines.warehouse.execution_store import WarehouseExecutorStore, WarehousePaperBook
from helix_pipelines.warehouse.heatmap_store import HeatmapStore
from helix_pipelines.warehouse.live_store import LiveStore
from helix_pipelines.warehouse.postgres_db import PostgresDatabase, TimescalePolicies


@dataclass(frozen=True)
class Warehouse:
    """One database and its repositories."""

    database: Database
    heatmaps: HeatmapStore
    analytics: AnalyticsStore
    live: LiveStore

    @classmethod
    def on(cls, database: Database, cells: CellsPolicy | None = None) -> Warehouse:
        return cls(
            database, HeatmapStore(database, cells), AnalyticsStore(database), LiveStore(database)
        )

    @property
    def description(self) -> str:
        """Where the data lives, safe to show (no password)."""
        return self.database.description

    def executor_store(self, mode: str) -> WarehouseExecutorStore:
        return WarehouseExecutorStore(self.database, mode)

    def paper_book(self) -> WarehousePaperBook:
        return WarehousePaperBook(self.database)

    def close(self) -> None:
        self.database.close()


def open_warehouse(
    *,
    pg_dsn: str | None,
    duckdb_path: Path,
    max_connections: int = 4,
    policies: TimescalePolicies | None = None,
    cells: CellsPolicy | None = None,
    duckdb_memory_limit: str | None = None,
) -> Warehouse:
    """PostgreSQL when a DSN is given, else the DuckDB file; migrations applied. `cells` says
    which series keep their cells in the warehouse; its retention is TimescaleDB's too."""
    cells = cells or CellsPolicy()
    database: Database = (
        PostgresDatabase(
            pg_dsn,
            max_connections=max_connections,
            policies=policies,
            cells_retention_days=cells.retention_days,
        )
        if pg_dsn
        else DuckDBDatabase(duckdb_path, memory_limit=duckdb_memory_limit)
    )
    database.migrate()
    return Warehouse.on(database, cells)
