"""The fetch log: one row per heatmap key saying when it was last fetched and how often a fetch
brought a changed payload, and the planner's per-cycle tier rows.

Why not the ledger: an unchanged payload is stored once, so the ledger's newest row of a key
says when its payload last changed, not when it was last asked for. Every ingest upserts the
keys it fetched (one statement per batch); the budget planner reads the whole log (one row per
key: 10,440 for the real universe) to decide what is stalest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from helix_pipelines.warehouse.database import Connection, Database

# The weight of the newest fetch in `change_rate` (an exponentially weighted share).
CHANGE_RATE_WEIGHT = 0.2
_KEY = ("scope", "exchange", "symbol", "model", "range")
UPSERT_FETCHES = f"""
INSERT INTO heatmap_fetch_log
SELECT scope, exchange, symbol, model, "range", last_fetched_at, last_status, fetches, changes,
       change_rate
FROM new_fetches
ON CONFLICT (scope, exchange, symbol, model, "range") DO UPDATE SET
    last_fetched_at = greatest(heatmap_fetch_log.last_fetched_at, excluded.last_fetched_at),
    last_status = excluded.last_status,
    fetches = heatmap_fetch_log.fetches + 1,
    changes = heatmap_fetch_log.changes + excluded.changes,
    change_rate = {1 - CHANGE_RATE_WEIGHT} * heatmap_fetch_log.change_rate
                  + {CHANGE_RATE_WEIGHT} * excluded.change_rate
"""  # noqa: S608 - constants only
SELECT_LOG = """
SELECT scope, exchange, symbol, model, "range", last_fetched_at, last_status, fetches, changes,
       change_rate
FROM heatmap_fetch_log
"""
LATEST_PLAN = """
SELECT * FROM fetch_plan_tiers
WHERE planned_at = (SELECT max(planned_at) FROM fetch_plan_tiers)
ORDER BY CASE tier WHEN 'hot' THEN 0 WHEN 'intraday' THEN 1 WHEN 'short' THEN 2
                   WHEN 'medium' THEN 3 ELSE 4 END
"""
FETCH_LOG_SCHEMA = {
    "scope": pl.String(),
    "exchange": pl.String(),
    "symbol": pl.String(),
    "model": pl.Int16(),
    "range": pl.String(),
    "last_fetched_at": pl.Datetime("us", "UTC"),
    "last_status": pl.String(),
    "fetches": pl.Int64(),
    "changes": pl.Int64(),
    "change_rate": pl.Float64(),
}

PLAN_SCHEMA = {
    "planned_at": pl.Datetime("us", "UTC"),
    "tier": pl.String(),
    "keys": pl.Int32(),
    "skipped_unavailable": pl.Int32(),
    "interval_seconds": pl.Float64(),
    "requests_per_minute": pl.Float64(),
    "planned": pl.Int32(),
    "never_fetched": pl.Int32(),
    "stalest_seconds": pl.Float64(),
    "limit_per_minute": pl.Int32(),
    "budget": pl.Int32(),
}


@dataclass(frozen=True, slots=True)
class FetchRecord:
    """One fetch of one key: when, what the ledger made of it, and whether the payload was new."""

    scope: str
    exchange: str
    symbol: str
    model: int
    range: str
    fetched_at: datetime
    status: str  # loaded | quarantined | unavailable
    changed: bool


def record_in(tx: Connection, fetches: Sequence[FetchRecord]) -> None:
    """Upsert fetches within the caller's transaction (a key fetched twice counts its newest)."""
    if not fetches:
        return
    rows = [
        (f.scope, f.exchange, f.symbol, f.model, f.range, f.fetched_at, f.status, 1,
         int(f.changed), float(f.changed))
        for f in fetches
    ]  # fmt: skip
    frame = pl.DataFrame(rows, schema=FETCH_LOG_SCHEMA, orient="row")
    tx.stage(
        "new_fetches",
        frame.unique(list(_KEY), keep="last", maintain_order=True),
        like="heatmap_fetch_log",
    )
    tx.execute(UPSERT_FETCHES)


class FetchLogStore:
    def __init__(self, database: Database) -> None:
        self.db = database

    def record(self, fetches: Sequence[FetchRecord]) -> None:
        """Upsert one batch of fetches in a transaction of its own (an ingest batch records its
        fetches inside its store transaction instead: `record_in`)."""
        if fetches:
            with self.db.transaction() as tx:
                record_in(tx, fetches)

    def states(self) -> pl.DataFrame:
        """Every key's row (`FETCH_LOG_SCHEMA`)."""
        with self.db.connect() as conn:
            return conn.frame(SELECT_LOG, schema=FETCH_LOG_SCHEMA)

    def save_plan(self, rows: Sequence[dict[str, object]]) -> None:
        """One planning cycle's tier rows (`fetch_plan_tiers`); a replayed cycle is stored once."""
        if not rows:
            return
        with self.db.transaction() as tx:
            frame = pl.DataFrame(list(rows), schema=PLAN_SCHEMA)
            tx.stage("new_plan", frame, like="fetch_plan_tiers")
            tx.execute(
                "INSERT INTO fetch_plan_tiers SELECT * FROM new_plan "
                "ON CONFLICT (planned_at, tier) DO NOTHING"
            )

    def latest_plan(self) -> pl.DataFrame:
        with self.db.connect() as conn:
            return conn.frame(LATEST_PLAN, schema=PLAN_SCHEMA)
