"""Contracts of the analytics tables, as polars schemas (the same names in DuckDB and PostgreSQL).

One row per thing, with provenance columns and UTC times (DESIGN.md section 4):
  liquidation_clusters  one cluster of one snapshot's profile (cumulative or live)
  consensus_zones       one zone of agreeing clusters per symbol, per computation
  trade_signals         one planned trade; `signal_id` is deterministic, the schema versioned
  cluster_outcomes      one past cluster or signal scored against the candles that followed
"""

from __future__ import annotations

import polars as pl

from helix_pipelines.heatmaps.contracts import UTC_TIME

SIGNAL_SCHEMA_VERSION = 1

CLUSTERS_SCHEMA: dict[str, pl.DataType] = {
    "cluster_id": pl.String(), "snapshot_id": pl.String(), "fetched_at": UTC_TIME,
    "scope": pl.String(), "exchange": pl.String(), "symbol": pl.String(), "model": pl.Int16(),
    "range": pl.String(), "profile": pl.String(), "side": pl.String(),
    "price_lo": pl.Float64(), "price_hi": pl.Float64(), "peak_price": pl.Float64(),
    "share": pl.Float64(), "z_score": pl.Float64(), "distance_pct": pl.Float64(),
    "distance_atr": pl.Float64(), "is_magnet": pl.Boolean(), "is_swept": pl.Boolean(),
    "last_close": pl.Float64(), "atr": pl.Float64(), "consensus_score": pl.Float64(),
}  # fmt: skip

ZONES_SCHEMA: dict[str, pl.DataType] = {
    "zone_id": pl.String(), "computed_at": UTC_TIME, "symbol": pl.String(), "side": pl.String(),
    "price_lo": pl.Float64(), "price_hi": pl.Float64(), "peak_price": pl.Float64(),
    "models": pl.String(), "ranges": pl.String(), "n_clusters": pl.Int32(),
    "mean_share": pl.Float64(), "consensus_score": pl.Float64(), "has_magnet": pl.Boolean(),
    "distance_pct": pl.Float64(), "last_close": pl.Float64(),
}  # fmt: skip

SIGNALS_SCHEMA: dict[str, pl.DataType] = {
    "signal_id": pl.String(), "schema_version": pl.Int16(), "strategy_version": pl.String(),
    "created_at": UTC_TIME, "as_of": UTC_TIME, "symbol": pl.String(), "side": pl.String(),
    "entry": pl.Float64(), "stop_loss": pl.Float64(), "take_profit": pl.Float64(),
    "reward_to_risk": pl.Float64(), "qty": pl.Float64(), "notional_usd": pl.Float64(),
    "leverage": pl.Int16(), "risk_usd": pl.Float64(), "risk_fraction": pl.Float64(),
    "liquidation_price": pl.Float64(), "consensus_score": pl.Float64(),
    "target_zone_id": pl.String(), "stop_zone_id": pl.String(),
}  # fmt: skip

OUTCOMES_SCHEMA: dict[str, pl.DataType] = {
    "subject_kind": pl.String(), "subject_id": pl.String(), "symbol": pl.String(),
    "model": pl.Int16(), "range": pl.String(), "consensus_bucket": pl.String(),
    "level_price": pl.Float64(), "observed_from": UTC_TIME, "horizon_hours": pl.Float64(),
    "touched": pl.Boolean(), "hours_to_touch": pl.Float64(), "max_adverse_pct": pl.Float64(),
    "evaluated_at": UTC_TIME,
}  # fmt: skip

ANALYTICS_TABLES: dict[str, tuple[dict[str, pl.DataType], tuple[str, ...]]] = {
    "liquidation_clusters": (CLUSTERS_SCHEMA, ("cluster_id",)),
    "consensus_zones": (ZONES_SCHEMA, ("zone_id",)),
    "trade_signals": (SIGNALS_SCHEMA, ("signal_id",)),
    "cluster_outcomes": (OUTCOMES_SCHEMA, ("subject_kind", "subject_id")),
}
"""Table -> (schema, primary key). Writes are upserts on the key, so recomputing is idempotent."""
