"""The analytics and executor tables as polars schemas: the same names in DuckDB and PostgreSQL
(sql/ creates them; a test holds the two to each other), one row per thing, UTC times.

  liquidation_clusters  one cluster of one snapshot's profile (cumulative or live)
  consensus_zones       one zone of agreeing clusters per symbol, per computation
  trade_signals         one planned trade (contracts.signals.TradeSignal)
  cluster_outcomes      one past cluster, signal or radar entry scored against the candles that
                        followed (radar entries and signals carry the rank, decile and tier
                        they had when they were made)
  liquidation_imbalance one snapshot's USD above / below its close, its major clusters, and how
                        they compare with the key's baseline before the snapshot was folded in
  cluster_baselines     one (symbol, model, range): running mean and spread of its major
                        clusters' size and distance
  liquidation_radar     one symbol per radar refresh: rank, score, components, or why excluded
  executor_orders       one row per signal the executor decided on, keyed by orderLinkId
  executor_decisions    every decision with its reason
  executor_state        key/value: the persisted halt, the day's starting equity
  paper_positions       the paper book's open positions (a flat symbol has no row)
  paper_fills           the paper book's fills, fees and realized PnL
"""

from __future__ import annotations

import polars as pl

from helix_pipelines.contracts.columns import UTC_TIME, schema_of
from helix_pipelines.contracts.radar import RadarEntry
from helix_pipelines.contracts.records import OrderRecord, PaperFill, PaperPosition
from helix_pipelines.contracts.signals import SIGNALS_SCHEMA

TEXT, FLOAT, FLAG = pl.String(), pl.Float64(), pl.Boolean()

CLUSTERS_SCHEMA: dict[str, pl.DataType] = {
    "cluster_id": TEXT,
    "snapshot_id": TEXT,
    "fetched_at": UTC_TIME,
    "scope": TEXT,
    "exchange": TEXT,
    "symbol": TEXT,
    "model": pl.Int16(),
    "range": TEXT,
    "profile": TEXT,
    "liquidated_side": TEXT,
    "price_lo": FLOAT,
    "price_hi": FLOAT,
    "peak_price": FLOAT,
    "share": FLOAT,
    "z_score": FLOAT,
    "distance_pct": FLOAT,
    "distance_atr": FLOAT,
    "is_magnet": FLAG,
    "is_swept": FLAG,
    "last_close": FLOAT,
    "atr": FLOAT,
    "consensus_score": FLOAT,
    "usd": FLOAT,
}

ZONES_SCHEMA: dict[str, pl.DataType] = {
    "zone_id": TEXT,
    "computed_at": UTC_TIME,
    "symbol": TEXT,
    "liquidated_side": TEXT,
    "price_lo": FLOAT,
    "price_hi": FLOAT,
    "peak_price": FLOAT,
    "models": TEXT,
    "ranges": TEXT,
    "n_clusters": pl.Int32(),
    "mean_share": FLOAT,
    "consensus_score": FLOAT,
    "has_magnet": FLAG,
    "distance_pct": FLOAT,
    "last_close": FLOAT,
}

OUTCOMES_SCHEMA: dict[str, pl.DataType] = {
    "subject_kind": TEXT,
    "subject_id": TEXT,
    "symbol": TEXT,
    "model": pl.Int16(),
    "range": TEXT,
    "consensus_bucket": TEXT,
    "level_price": FLOAT,
    "observed_from": UTC_TIME,
    "horizon_hours": FLOAT,
    "touched": FLAG,
    "hours_to_touch": FLOAT,
    "max_adverse_pct": FLOAT,
    "evaluated_at": UTC_TIME,
    "radar_rank": pl.Int16(),
    "radar_decile": pl.Int16(),
    "radar_tier": TEXT,
    "confirmed_liq_usd": FLOAT,  # realized liquidations near a touched level (analytics.sweeps)
    "confirmed_liq_events": pl.Int64(),
}

IMBALANCE_SCHEMA: dict[str, pl.DataType] = {
    "snapshot_id": TEXT,
    "fetched_at": UTC_TIME,
    "scope": TEXT,
    "exchange": TEXT,
    "symbol": TEXT,
    "model": pl.Int16(),
    "range": TEXT,
    "last_close": FLOAT,
    "cumulative_usd_above": FLOAT,
    "cumulative_usd_below": FLOAT,
    "cumulative_imbalance": FLOAT,
    "live_usd_above": FLOAT,
    "live_usd_below": FLOAT,
    "live_imbalance": FLOAT,
    "major_above_usd": FLOAT,
    "major_above_distance_pct": FLOAT,
    "major_below_usd": FLOAT,
    "major_below_distance_pct": FLOAT,
    "size_z_above": FLOAT,
    "size_z_below": FLOAT,
    "distance_z_above": FLOAT,
    "distance_z_below": FLOAT,
    "baseline_samples": pl.Int64(),
}

BASELINES_SCHEMA: dict[str, pl.DataType] = {
    "scope": TEXT,
    "exchange": TEXT,
    "symbol": TEXT,
    "model": pl.Int16(),
    "range": TEXT,
    "samples": pl.Int64(),
    "size_mean": FLOAT,
    "size_m2": FLOAT,
    "distance_mean": FLOAT,
    "distance_m2": FLOAT,
    "folded_through": UTC_TIME,
}

RADAR_SCHEMA = schema_of(RadarEntry)
"""`liquidation_radar`: one row per symbol per refresh, the fields of RadarEntry in order."""

_ORDER_COLUMNS = list(schema_of(OrderRecord).items())
ORDERS_SCHEMA: dict[str, pl.DataType] = dict(
    [*_ORDER_COLUMNS[:2], ("mode", TEXT), *_ORDER_COLUMNS[2:]]
)
"""`executor_orders`: an OrderRecord and, after its `signal_id`, the executor mode it belongs to."""

DECISIONS_SCHEMA: dict[str, pl.DataType] = {
    "decision_id": TEXT,
    "signal_id": TEXT,
    "mode": TEXT,
    "symbol": TEXT,
    "action": TEXT,
    "reason": TEXT,
    "order_link_id": TEXT,
    "decided_at": UTC_TIME,
}

STATE_SCHEMA: dict[str, pl.DataType] = {"key": TEXT, "value": TEXT, "updated_at": UTC_TIME}

PAPER_POSITIONS_SCHEMA = schema_of(PaperPosition)
PAPER_FILLS_SCHEMA = schema_of(PaperFill)

TABLES: dict[str, tuple[dict[str, pl.DataType], tuple[str, ...]]] = {
    "liquidation_clusters": (CLUSTERS_SCHEMA, ("cluster_id",)),
    "consensus_zones": (ZONES_SCHEMA, ("zone_id",)),
    "trade_signals": (SIGNALS_SCHEMA, ("signal_id",)),
    "cluster_outcomes": (OUTCOMES_SCHEMA, ("subject_kind", "subject_id")),
    "liquidation_imbalance": (IMBALANCE_SCHEMA, ("snapshot_id",)),
    "cluster_baselines": (BASELINES_SCHEMA, ("scope", "exchange", "symbol", "model", "range")),
    "liquidation_radar": (RADAR_SCHEMA, ("refreshed_at", "symbol")),
    "executor_orders": (ORDERS_SCHEMA, ("mode", "order_link_id")),
    "executor_decisions": (DECISIONS_SCHEMA, ("decision_id",)),
    "executor_state": (STATE_SCHEMA, ("key",)),
    "paper_positions": (PAPER_POSITIONS_SCHEMA, ("symbol",)),
    "paper_fills": (PAPER_FILLS_SCHEMA, ("fill_id",)),
}
"""Table -> (schema, primary key) of every table written as frames (upserts on the key)."""
