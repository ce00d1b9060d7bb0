"""The data contracts of DESIGN.md section 4 as polars schemas, shared by frames and tables.

One name per concept everywhere: these column names are the DuckDB and PostgreSQL column names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Literal

import polars as pl

UTC_TIME = pl.Datetime("us", "UTC")

CELLS_SCHEMA: dict[str, pl.DataType] = {
    "snapshot_id": pl.String(),
    "fetched_at": UTC_TIME,
    "scope": pl.String(),
    "exchange": pl.String(),
    "symbol": pl.String(),
    "model": pl.Int16(),
    "range": pl.String(),
    "candle_ts": UTC_TIME,
    "price": pl.Float64(),
    "liq_usd": pl.Float64(),
    "x_index": pl.Int32(),
}
"""One row per heatmap cell. `x_index` is the column as served; `candle_ts` is the start of the
candle it names, or null for every cell of a snapshot whose x axis runs past its candle list
(REAL_API_FACTS: real Model 3 payloads may; then x is not a candle index and no time is guessed)."""

CANDLES_SCHEMA: dict[str, pl.DataType] = {
    "scope": pl.String(),
    "exchange": pl.String(),
    "symbol": pl.String(),
    "range": pl.String(),
    "ts": UTC_TIME,
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume_usd": pl.Float64(),
}

LEDGER_SCHEMA: dict[str, pl.DataType] = {
    "snapshot_id": pl.String(),
    "fetched_at": UTC_TIME,
    "scope": pl.String(),
    "exchange": pl.String(),
    "symbol": pl.String(),
    "model": pl.Int16(),
    "range": pl.String(),
    "schema_variant": pl.String(),
    "n_levels": pl.Int32(),
    "n_candles": pl.Int32(),
    "n_cells": pl.Int32(),
    "payload_sha256": pl.String(),
    "source_update_time": UTC_TIME,
    "status": pl.String(),
    "reason": pl.String(),
    "x_columns": pl.Int32(),
    "x_axis": pl.String(),
    "candle_ts_unit": pl.String(),
    "first_candle_ts": UTC_TIME,
    "last_candle_ts": UTC_TIME,
    "source_extra": pl.String(),
}

SnapshotStatus = Literal["loaded", "quarantined", "unavailable"]
SchemaVariant = Literal["v4", "v3"]
XAxis = Literal["candles", "beyond_candles"]
"""How a snapshot's x indexes relate to its candles: each x names a candle, or x runs past the
candle list (so x is some other column index, and cells get no candle time)."""
TimeUnit = Literal["s", "ms"]


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One row of `heatmap_snapshots`: what was fetched, its identity, and whether it was usable.

    `snapshot_id` is derived from the heatmap key and the payload hash, so an unchanged payload
    fetched again has the same id and is stored once. Status `unavailable` records that
    CoinGlass has no data for this key (it answers code 500 to young coins on ranges longer
    than their history); such rows have no cells and are not failures.

    What the payload itself said, kept so nothing served is lost: `x_columns` (largest x + 1),
    `x_axis`, the unit its candle timestamps came in, the candle span, and `source_extra`, the
    keys of `data` outside the contract as JSON (Model 2's legacy `precision`, `rangeLow`,
    `rangeHigh`, `instrument`).
    """

    snapshot_id: str
    fetched_at: datetime
    scope: str
    exchange: str
    symbol: str
    model: int
    range: str
    schema_variant: SchemaVariant | None
    n_levels: int | None
    n_candles: int | None
    n_cells: int | None
    payload_sha256: str
    source_update_time: datetime | None
    status: SnapshotStatus
    reason: str | None
    x_columns: int | None = None
    x_axis: XAxis | None = None
    candle_ts_unit: TimeUnit | None = None
    first_candle_ts: datetime | None = None
    last_candle_ts: datetime | None = None
    source_extra: str | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def to_frame(self) -> pl.DataFrame:
        return pl.DataFrame([self.as_dict()], schema=LEDGER_SCHEMA)


def empty_cells() -> pl.DataFrame:
    return pl.DataFrame(schema=CELLS_SCHEMA)


def empty_candles() -> pl.DataFrame:
    return pl.DataFrame(schema=CANDLES_SCHEMA)
