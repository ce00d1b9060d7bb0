"""The live repository: realized liquidations from CoinGlass's websocket (`liquidation_events`).

Grain: one row per liquidation order an exchange reported, keyed by (exchange, symbol,
event_time, side_code, price, usd) (sql/018). Writes are idempotent: a batch is staged (one
binary COPY into a temporary table on PostgreSQL, a registered frame on DuckDB) and inserted with
ON CONFLICT DO NOTHING, so an order seen again after a reconnect, or a batch retried after a
failed write, is stored once, and a batch costs the same few statements whatever its size.
Reads are bounded by event time (the `(base_asset, event_time)` index), never whole tables.
Time ranges are half-open, `since <= event_time < until`, so adjacent windows never count an
order twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import polars as pl

from helix_pipelines.contracts.columns import schema_of
from helix_pipelines.contracts.live import LiquidationEvent
from helix_pipelines.warehouse.database import Database, quoted

EVENTS_SCHEMA = schema_of(LiquidationEvent)
"""`liquidation_events`: the fields of LiquidationEvent, in order, as polars types."""

_COLUMNS = quoted(list(EVENTS_SCHEMA))
_STAGED = "incoming_liquidation_events"
# No conflict target: the table's one unique key (liquidation_events_once) decides, and both
# dialects accept the bare form.
INSERT_NEW = (
    f"INSERT INTO liquidation_events ({_COLUMNS}) SELECT {_COLUMNS} FROM {_STAGED} "  # noqa: S608
    "ON CONFLICT DO NOTHING"
)
REALIZED_BY_COIN = """
SELECT base_asset, sum(usd), count(*) FROM liquidation_events
WHERE event_time >= ? AND event_time < ?
GROUP BY base_asset
"""
EVENTS_OF_SINCE = f"""
SELECT {_COLUMNS} FROM liquidation_events
WHERE base_asset = ANY(?) AND event_time >= ? AND event_time < ?
"""  # noqa: S608 - column names from the contract


def events_frame(events: Sequence[LiquidationEvent]) -> pl.DataFrame:
    """The events as a `liquidation_events` frame (built by column: a batch is thousands)."""
    return pl.DataFrame(
        {name: [getattr(e, name) for e in events] for name in EVENTS_SCHEMA},
        schema=EVENTS_SCHEMA,
    )


class LiveStore:
    def __init__(self, database: Database) -> None:
        self.db = database

    def events(self, base_assets: Sequence[str], since: datetime, until: datetime) -> pl.DataFrame:
        """The events of these coins in [since, until) (`EVENTS_SCHEMA`)."""
        with self.db.connect() as conn:
            return conn.frame(EVENTS_OF_SINCE, [list(base_assets), since, until], EVENTS_SCHEMA)

    def add_liquidation_events(self, events: Sequence[LiquidationEvent]) -> int:
        """Store a batch in one transaction; returns how many rows were new (orders already
        stored, and repeats within the batch, are skipped, not errors)."""
        if not events:
            return 0
        with self.db.transaction() as tx:
            tx.stage(_STAGED, events_frame(events), like="liquidation_events")
            return tx.execute(INSERT_NEW)

    def realized_by_coin(self, since: datetime, until: datetime) -> dict[str, tuple[float, int]]:
        """Base asset -> (liquidated USD, orders) for orders with `since <= event_time < until`;
        coins without any are absent."""
        with self.db.connect() as conn:
            found = conn.rows(REALIZED_BY_COIN, [since, until])
        return {asset: (float(usd), int(n)) for asset, usd, n in found}
