"""The heatmap contracts: the key of one heatmap, the frames a snapshot normalizes into, its
ledger row, and the universe member; polars schemas whose names are the table and column names
in DuckDB and PostgreSQL alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

import polars as pl

from helix_pipelines.contracts.columns import UTC_TIME
from helix_pipelines.contracts.vocabulary import (
    MODELS,
    RANGES,
    SchemaVariant,
    Scope,
    SnapshotStatus,
    TimeUnit,
    XAxis,
)


@dataclass(frozen=True, slots=True)
class HeatmapRequest:
    """One heatmap: coin scope aggregates all exchanges (exchange is ''), pair scope is one venue."""

    scope: Scope
    symbol: str
    model: int
    range: str
    exchange: str = ""

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.range not in RANGES:
            raise ValueError(f"range must be one of {RANGES}, got {self.range!r}")
        if self.scope not in ("coin", "pair"):
            raise ValueError(f"scope must be 'coin' or 'pair', got {self.scope!r}")
        if not self.symbol:
            raise ValueError("symbol must not be empty")
        if self.scope == "pair" and not self.exchange:
            raise ValueError(f"pair-scope heatmap for {self.symbol} needs an exchange")
        if self.scope == "coin" and self.exchange:
            raise ValueError(f"coin-scope heatmap for {self.symbol} must not name an exchange")

    @property
    def path(self) -> str:
        """The CoinGlass v4 path: a request names its heatmap the way CoinGlass addresses it, so
        the client, the replay files and the fake server agree on one naming."""
        return f"{HEATMAP_PATH_PREFIX[self.scope]}{self.model}"

    @property
    def params(self) -> dict[str, str]:
        params = {"symbol": self.symbol, "range": self.range}
        if self.scope == "pair":
            params["exchange"] = self.exchange
        return params

    @property
    def label(self) -> str:
        """Short human name used in logs and metadata, e.g. 'BTC m2 3d' or 'Binance:BTCUSDT m1 1y'."""
        who = f"{self.exchange}:{self.symbol}" if self.scope == "pair" else self.symbol
        return f"{who} m{self.model} {self.range}"

    @property
    def capture_name(self) -> str:
        """File name of this request in a capture/replay directory (one JSON file per request)."""
        kind = "aggregated-heatmap" if self.scope == "coin" else f"heatmap_{self.exchange}"
        return f"{kind}_model{self.model}_{self.symbol}_{self.range}.json"


HEATMAP_PATH_PREFIX: dict[str, str] = {
    "coin": "/api/futures/liquidation/aggregated-heatmap/model",
    "pair": "/api/futures/liquidation/heatmap/model",
}
"""Scope -> the CoinGlass path of its heatmaps, up to the model number."""

SNAPSHOT_KEY_SCHEMA: dict[str, pl.DataType] = {
    "snapshot_id": pl.String(),
    "fetched_at": UTC_TIME,
    "scope": pl.String(),
    "exchange": pl.String(),
    "symbol": pl.String(),
    "model": pl.Int16(),
    "range": pl.String(),
}
"""The columns that say which snapshot a row of cells or price levels belongs to: constant
within a snapshot, so a snapshot's frames in memory leave them out and the warehouse and the
archive add them when they write (`keyed`)."""

GRID_SCHEMA: dict[str, pl.DataType] = {
    "candle_ts": UTC_TIME,
    "price": pl.Float64(),
    "liq_usd": pl.Float64(),
    "x_index": pl.Int32(),
}
"""One snapshot's cells, one row per heatmap cell. `x_index` is the column as served;
`candle_ts` is the start of the candle it names, or null for every cell of a snapshot whose x
axis runs past its candle list (docs/real-apis.md: real Model 3 payloads may; then x is not a
candle index and no time is guessed)."""

CELLS_SCHEMA: dict[str, pl.DataType] = {**SNAPSHOT_KEY_SCHEMA, **GRID_SCHEMA}
"""`liquidation_data_raw` and the Parquet archive: the grid with its snapshot key."""

PROFILE_SCHEMA: dict[str, pl.DataType] = {
    "price": pl.Float64(),
    "cells": pl.Int32(),
    "cumulative_usd": pl.Float64(),
    "live_usd": pl.Float64(),
}
"""One snapshot's price-level profile, one row per price level that holds at least one cell,
ascending: how many cells the level has, their USD summed over every column (`cumulative_usd`)
and in the latest column only (`live_usd`, the highest `x_index`, which every snapshot has even
where x is no candle index). What the analytics, the checks and Grafana read; a few hundred rows
where the grid has tens of thousands."""

PRICE_LEVELS_SCHEMA: dict[str, pl.DataType] = {**SNAPSHOT_KEY_SCHEMA, **PROFILE_SCHEMA}
"""`liquidation_price_levels`: the profile with its snapshot key."""

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
    "cells_in_warehouse": pl.Boolean(),
}


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

    `cells_in_warehouse`: whether its cells went to `liquidation_data_raw` as well as to the
    archive (set by the store, from its `CellsPolicy`).
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
    cells_in_warehouse: bool | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def to_frame(self) -> pl.DataFrame:
        return pl.DataFrame([self.as_dict()], schema=LEDGER_SCHEMA)


def empty_cells() -> pl.DataFrame:
    return pl.DataFrame(schema=GRID_SCHEMA)


def empty_profile() -> pl.DataFrame:
    return pl.DataFrame(schema=PROFILE_SCHEMA)


def empty_candles() -> pl.DataFrame:
    return pl.DataFrame(schema=CANDLES_SCHEMA)


@dataclass(frozen=True, slots=True)
class NormalizedSnapshot:
    """One fetched heatmap: its ledger row and, when loaded, its cells (`GRID_SCHEMA`), its
    price-level profile (`PROFILE_SCHEMA`) and its candles."""

    ledger: LedgerRow
    cells: pl.DataFrame
    levels: pl.DataFrame
    candles: pl.DataFrame

    def keyed(self, frame: pl.DataFrame) -> pl.DataFrame:
        """`frame` (the cells or the levels) with this snapshot's key columns in front."""
        ledger = self.ledger
        return frame.select(
            pl.lit(ledger.snapshot_id, pl.String).alias("snapshot_id"),
            pl.lit(ledger.fetched_at, UTC_TIME).alias("fetched_at"),
            pl.lit(ledger.scope, pl.String).alias("scope"),
            pl.lit(ledger.exchange, pl.String).alias("exchange"),
            pl.lit(ledger.symbol, pl.String).alias("symbol"),
            pl.lit(ledger.model, pl.Int16).alias("model"),
            pl.lit(ledger.range, pl.String).alias("range"),
            pl.all(),
        )

    @property
    def quarantined(self) -> bool:
        return self.ledger.status == "quarantined"

    @property
    def loaded(self) -> bool:
        return self.ledger.status == "loaded"


@dataclass(frozen=True, slots=True)
class UniverseMember:
    """One symbol the pipeline follows: coin scope (exchange '') or one exchange's pair.

    In the Bybit universe a member also names the perpetual that trades it and its multiplier
    (`PEPE` is traded as `1000PEPEUSDT`, 1,000 coins a contract); elsewhere they stay empty.
    """

    scope: str
    exchange: str
    symbol: str
    rank: int
    venue_symbol: str = ""
    multiplier: int = 1
