"""The ingest-run log: one row per `run_ingest` call (one model x range over the universe), with
what it cost against the CoinGlass budget and what it brought.

Why a table of its own: the request counts (requests sent, retries, 429s) lived only in a run's
Dagster metadata, and the ledger cannot stand in for them (an unchanged payload is stored once,
a failed request stores nothing). Grafana's scanner-health dashboard charts this table.

Grain and idempotency: one row per (model, range, started_at); recording the same run twice
stores it once (`ON CONFLICT DO NOTHING`). Written once, when the run has finished.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from datetime import datetime

import polars as pl

from helix_pipelines.warehouse.database import Database, quoted

INGEST_RUNS_SCHEMA: dict[str, pl.DataType] = {
    "started_at": pl.Datetime("us", "UTC"),
    "finished_at": pl.Datetime("us", "UTC"),
    "model": pl.Int16(),
    "range": pl.String(),
    "source": pl.String(),
    "universe_size": pl.Int32(),
    "requests_sent": pl.Int32(),
    "retries": pl.Int32(),
    "http_429_received": pl.Int32(),
    "snapshots_new": pl.Int32(),
    "snapshots_unchanged": pl.Int32(),
    "quarantined": pl.Int32(),
    "unavailable": pl.Int32(),
    "skipped_unavailable": pl.Int32(),
    "failed_requests": pl.Int32(),
    "duration_seconds": pl.Float64(),
}
"""`heatmap_ingest_runs` as a contract: the table's columns, in order, in their types (the
fields of `IngestRun`, in the same order)."""

_COLUMNS = quoted(list(INGEST_RUNS_SCHEMA))
INSERT_RUN = f"""
INSERT INTO heatmap_ingest_runs ({_COLUMNS})
VALUES ({", ".join("?" for _ in INGEST_RUNS_SCHEMA)})
ON CONFLICT (model, "range", started_at) DO NOTHING
"""  # noqa: S608 - column names from the contract


@dataclass(frozen=True, slots=True)
class IngestRun:
    """One finished ingest of one (model, range): the run metadata's counts, by their names."""

    started_at: datetime
    finished_at: datetime
    model: int
    range: str
    source: str  # coinglass | sandbox | replay
    universe_size: int  # members asked for
    requests_sent: int
    retries: int
    http_429_received: int
    snapshots_new: int
    snapshots_unchanged: int
    quarantined: int
    unavailable: int  # answered "no data" in this run
    skipped_unavailable: int  # not asked: "no data" earlier within the skip window
    failed_requests: int
    duration_seconds: float


class IngestRunStore:
    def __init__(self, database: Database) -> None:
        self.db = database

    def record(self, run: IngestRun) -> None:
        """Store one finished run (a run already recorded is left as it is)."""
        with self.db.transaction() as tx:
            tx.execute(INSERT_RUN, astuple(run))
