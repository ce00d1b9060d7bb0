"""From stored heatmaps to clusters, consensus zones and trade signals, in one pure pass.

Inputs are frames read from the warehouse (the two newest loaded snapshots of every heatmap key,
their cells, and the candles); outputs are frames in the analytics contracts plus the trade
plans. Deterministic: the same inputs give the same cluster, zone and signal ids.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime

import numpy as np
import polars as pl

from helix_pipelines.analytics.clusters import Cluster, ClusterParams, find_clusters, flag_swept
from helix_pipelines.analytics.consensus import ConsensusZone, SourcedCluster, build_zones
from helix_pipelines.analytics.profiles import snapshot_profile
from helix_pipelines.analytics.risk import (
    RiskLimits,
    TradePlan,
    apply_exposure_caps,
    atr,
    plan_trade,
    wick_overshoot_atr,
)
from helix_pipelines.analytics.tables import (
    CLUSTERS_SCHEMA,
    SIGNAL_SCHEMA_VERSION,
    SIGNALS_SCHEMA,
    ZONES_SCHEMA,
)
from helix_pipelines.coinglass.endpoints import RANGES

STRATEGY_VERSION = "magnet-reversion-1"
PROFILES = ("cumulative", "live")
_KEY = ["scope", "exchange", "symbol", "range"]


@dataclass(frozen=True, slots=True)
class SignalParams:
    min_consensus: float = 0.5  # zones scoring below this neither set stops nor targets
    risk_range: str = "24h"  # whose candles give the ATR and wick statistics of a trade
    win_rate: float = 0.5  # prior for the Kelly bound until outcomes say otherwise


@dataclass
class SnapshotView:
    """One snapshot with what the analytics need of it."""

    snapshot_id: str
    fetched_at: datetime
    scope: str
    exchange: str
    symbol: str
    model: int
    range: str
    level_lo: float
    level_hi: float
    last_close: float
    atr: float
    first_candle_ts: datetime
    last_candle_ts: datetime
    clusters: dict[str, list[Cluster]] = field(default_factory=dict)


@dataclass
class AnalyticsResult:
    clusters: pl.DataFrame
    zones: pl.DataFrame
    signals: pl.DataFrame
    plans: list[TradePlan]
    rejected: dict[str, str]  # symbol -> why no trade was planned
    plan_atr: dict[str, float]  # symbol -> the ATR its plan was sized with
    snapshots_analyzed: int
    views: dict[str, SnapshotView]


def analyze(
    latest: pl.DataFrame,
    cells: pl.DataFrame,
    candles: pl.DataFrame,
    *,
    now: datetime,
    cluster_params: ClusterParams | None = None,
    signal_params: SignalParams | None = None,
    limits: RiskLimits | None = None,
) -> AnalyticsResult:
    """Clusters for the newest snapshot of every key (swept against the previous one), consensus
    zones per symbol, and risk-checked trade plans."""
    cluster_params = cluster_params or ClusterParams()
    signal_params = signal_params or SignalParams()
    limits = limits or RiskLimits()
    candles_by_key = candles.sort("ts").partition_by(_KEY, as_dict=True, include_key=False)
    views = _snapshot_views(latest, cells, candles_by_key, cluster_params)
    current = _mark_swept(latest, views, candles_by_key)
    by_symbol: dict[str, list[SnapshotView]] = defaultdict(list)
    for view in current:
        by_symbol[view.symbol].append(view)
    zones: list[ConsensusZone] = []
    zone_of_cluster: dict[str, ConsensusZone] = {}
    plans: list[TradePlan] = []
    rejected: dict[str, str] = {}
    sources: dict[str, tuple[ConsensusZone, ConsensusZone, list[str]]] = {}
    closes: dict[str, float] = {}
    plan_atr: dict[str, float] = {}
    for symbol, symbol_views in sorted(by_symbol.items()):
        symbol_zones, price_view = _symbol_zones(symbol, symbol_views, zone_of_cluster)
        zones.extend(symbol_zones)
        closes[symbol] = price_view.last_close
        risk_view = next(
            (v for v in symbol_views if v.range == signal_params.risk_range), price_view
        )
        key = (risk_view.scope, risk_view.exchange, risk_view.symbol, risk_view.range)
        outcome = _plan_symbol(
            symbol, symbol_zones, price_view.last_close, risk_view.atr, candles_by_key[key],
            signal_params, limits,
        )  # fmt: skip
        if isinstance(outcome, str):
            rejected[symbol] = outcome
            continue
        plan, target, stop = outcome
        plans.append(plan)
        plan_atr[symbol] = risk_view.atr
        sources[symbol] = (target, stop, sorted(v.snapshot_id for v in symbol_views))
    capped = apply_exposure_caps(plans, limits)
    kept = {p.symbol for p in capped}
    for plan in plans:
        if plan.symbol not in kept:
            rejected[plan.symbol] = (
                "dropped by the exposure caps (max open signals / one per symbol)"
            )
    as_of = max((v.fetched_at for v in current), default=now)
    return AnalyticsResult(
        clusters=_clusters_frame(current, zone_of_cluster),
        zones=_zones_frame(zones, now, closes),
        signals=_signals_frame(capped, sources, now, as_of),
        plans=capped,
        rejected=rejected,
        plan_atr=plan_atr,
        snapshots_analyzed=len(current),
        views=views,
    )


def _snapshot_views(
    latest: pl.DataFrame,
    cells: pl.DataFrame,
    candles_by_key: dict[tuple[object, ...], pl.DataFrame],
    params: ClusterParams,
) -> dict[str, SnapshotView]:
    cells_by_snapshot = cells.partition_by("snapshot_id", as_dict=True, include_key=False)
    views: dict[str, SnapshotView] = {}
    for row in latest.iter_rows(named=True):
        snapshot_cells = cells_by_snapshot.get((row["snapshot_id"],))
        key_candles = candles_by_key.get(
            (row["scope"], row["exchange"], row["symbol"], row["range"])
        )
        if snapshot_cells is None or key_candles is None or snapshot_cells.height == 0:
            continue
        view = _view(row, snapshot_cells, key_candles, params)
        if view is not None:
            views[view.snapshot_id] = view
    return views


def _mark_swept(
    latest: pl.DataFrame,
    views: dict[str, SnapshotView],
    candles_by_key: dict[tuple[object, ...], pl.DataFrame],
) -> list[SnapshotView]:
    """The newest view of every key, its clusters flagged swept against the previous view."""

    def by_recency(recency: int) -> list[SnapshotView]:
        ids = latest.filter(pl.col("recency") == recency)["snapshot_id"].to_list()
        return [views[i] for i in ids if i in views]

    previous = {(v.scope, v.exchange, v.symbol, v.model, v.range): v for v in by_recency(2)}
    current = by_recency(1)
    for view in current:
        before = previous.get((view.scope, view.exchange, view.symbol, view.model, view.range))
        if before is None:
            continue
        since = candles_by_key[(view.scope, view.exchange, view.symbol, view.range)].filter(
            pl.col("ts") > before.last_candle_ts
        )
        lows, highs = since["low"].to_numpy(), since["high"].to_numpy()
        for profile in PROFILES:
            view.clusters[profile] = flag_swept(
                view.clusters[profile], before.clusters[profile], lows, highs
            )
    return current


def _symbol_zones(
    symbol: str, views: list[SnapshotView], zone_of_cluster: dict[str, ConsensusZone]
) -> tuple[list[ConsensusZone], SnapshotView]:
    """Zones of one symbol, and the view whose candles give its current price (shortest range)."""
    price_view = min(views, key=lambda v: RANGES.index(v.range))
    sourced = [SourcedCluster(v.model, v.range, c) for v in views for c in v.clusters["cumulative"]]
    zones = build_zones(
        symbol, sourced, last_close=price_view.last_close, atr=price_view.atr,
        models_available=len({v.model for v in views}),
        ranges_available=len({v.range for v in views}), tolerance_atr=0.0,
    )  # fmt: skip
    for zone in zones:
        for item in sourced:
            if zone.price_lo <= item.cluster.price_lo and item.cluster.price_hi <= zone.price_hi:
                zone_of_cluster[item.cluster.cluster_id] = zone
    return zones, price_view


def _view(
    row: dict[str, object], cells: pl.DataFrame, candles: pl.DataFrame, params: ClusterParams
) -> SnapshotView | None:
    window = candles.filter(pl.col("ts").is_between(*snapshot_span(row, cells)))
    if window.height == 0:
        return None
    high, low, close = (window[c].to_numpy() for c in ("high", "low", "close"))
    atr_value = atr(high, low, close)
    profile = snapshot_profile(cells)
    view = SnapshotView(
        snapshot_id=str(row["snapshot_id"]), fetched_at=row["fetched_at"],  # type: ignore[arg-type]
        scope=str(row["scope"]), exchange=str(row["exchange"]), symbol=str(row["symbol"]),
        model=int(row["model"]), range=str(row["range"]),  # type: ignore[call-overload]
        level_lo=float(profile.prices.min()), level_hi=float(profile.prices.max()),
        last_close=float(close[-1]), atr=atr_value, first_candle_ts=window["ts"].min(),  # type: ignore[arg-type]
        last_candle_ts=window["ts"].max(),  # type: ignore[arg-type]
    )  # fmt: skip
    for kind in PROFILES:
        view.clusters[kind] = find_clusters(
            profile.prices, profile.values(kind), last_close=view.last_close, atr=atr_value,
            snapshot_id=f"{view.snapshot_id}|{kind}", params=params,
        )  # fmt: skip
    return view


def snapshot_span(row: dict[str, object], cells: pl.DataFrame) -> tuple[object, object]:
    """First and last candle time of a snapshot: from its ledger row (every snapshot since the
    ledger kept them), else from its cells' candle times (older rows, whose x named candles)."""
    first, last = row.get("first_candle_ts"), row.get("last_candle_ts")
    if first is not None and last is not None:
        return first, last
    return cells["candle_ts"].min(), cells["candle_ts"].max()


def _plan_symbol(
    symbol: str,
    zones: list[ConsensusZone],
    last_close: float,
    atr_value: float,
    candles: pl.DataFrame,
    params: SignalParams,
    limits: RiskLimits,
) -> tuple[TradePlan, ConsensusZone, ConsensusZone] | str:
    """The better of a long toward the strongest zone above and a short toward the one below.

    Liquidation clusters act as magnets: price tends to run into stacked stops. A long targets
    (just ahead of) the strongest agreed zone above, with its stop beyond the nearest agreed zone
    below plus the typical wick overshoot; a short mirrors it.
    """
    agreed = [z for z in zones if z.consensus_score >= params.min_consensus]
    above = [z for z in agreed if z.price_lo > last_close]
    below = [z for z in agreed if z.price_hi < last_close]
    if not above or not below:
        return f"needs agreed zones on both sides of {last_close:.6g} (above {len(above)}, below {len(below)})"
    edges = np.array([z.price_lo for z in above] + [z.price_hi for z in below])
    high, low, close = (candles[c].to_numpy() for c in ("high", "low", "close"))
    wick_buffer = wick_overshoot_atr(high, low, close, edges, atr_value)
    strongest_above = max(above, key=lambda z: (z.consensus_score, z.mean_share))
    strongest_below = max(below, key=lambda z: (z.consensus_score, z.mean_share))
    nearest_above = min(above, key=lambda z: z.price_lo)
    nearest_below = max(below, key=lambda z: z.price_hi)
    candidates = []
    reasons = []
    for side, target, stop, stop_edge, target_edge in (
        ("long", strongest_above, nearest_below, nearest_below.price_lo, strongest_above.price_lo),
        ("short", strongest_below, nearest_above, nearest_above.price_hi, strongest_below.price_hi),
    ):
        plan = plan_trade(
            symbol=symbol, side=side, entry=last_close, same_side_cluster_edge=stop_edge,
            opposite_magnet_edge=target_edge, atr_value=atr_value, wick_buffer_atr=wick_buffer,
            limits=limits, win_rate=params.win_rate,
        )  # fmt: skip
        if isinstance(plan, str):
            reasons.append(f"{side}: {plan}")
        else:
            candidates.append((plan, target, stop))
    if not candidates:
        return "; ".join(reasons)
    return max(candidates, key=lambda c: c[0].reward_to_risk)


def signal_id_for(symbol: str, side: str, snapshot_ids: list[str]) -> str:
    """Same strategy, symbol, side and input snapshots: same id (so re-runs never duplicate)."""
    key = "|".join([STRATEGY_VERSION, symbol, side, *sorted(snapshot_ids)])
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _clusters_frame(views: list[SnapshotView], zone_of: dict[str, ConsensusZone]) -> pl.DataFrame:
    rows = []
    for view in views:
        for profile, clusters in view.clusters.items():
            for c in clusters:
                zone = zone_of.get(c.cluster_id)
                rows.append(
                    {
                        "cluster_id": c.cluster_id, "snapshot_id": view.snapshot_id,
                        "fetched_at": view.fetched_at, "scope": view.scope,
                        "exchange": view.exchange, "symbol": view.symbol, "model": view.model,
                        "range": view.range, "profile": profile, "side": c.side,
                        "price_lo": c.price_lo, "price_hi": c.price_hi, "peak_price": c.peak_price,
                        "share": c.share, "z_score": c.z_score, "distance_pct": c.distance_pct,
                        "distance_atr": c.distance_atr, "is_magnet": c.is_magnet,
                        "is_swept": c.is_swept, "last_close": view.last_close, "atr": view.atr,
                        "consensus_score": zone.consensus_score if zone else None,
                    }
                )  # fmt: skip
    return pl.DataFrame(rows, schema=CLUSTERS_SCHEMA)


def _zones_frame(
    zones: list[ConsensusZone], now: datetime, closes: dict[str, float]
) -> pl.DataFrame:
    rows = []
    for z in zones:
        row = asdict(z)
        row["models"] = ",".join(map(str, z.models))
        row["ranges"] = ",".join(z.ranges)
        row["computed_at"] = now
        row["last_close"] = closes[z.symbol]
        rows.append({k: row[k] for k in ZONES_SCHEMA})
    return pl.DataFrame(rows, schema=ZONES_SCHEMA)


def _signals_frame(
    plans: list[TradePlan],
    sources: dict[str, tuple[ConsensusZone, ConsensusZone, list[str]]],
    now: datetime,
    as_of: datetime,
) -> pl.DataFrame:
    rows = []
    for plan in plans:
        target, stop, snapshot_ids = sources[plan.symbol]
        rows.append(
            {
                "signal_id": signal_id_for(plan.symbol, plan.side, snapshot_ids),
                "schema_version": SIGNAL_SCHEMA_VERSION, "strategy_version": STRATEGY_VERSION,
                "created_at": now, "as_of": as_of, "symbol": plan.symbol, "side": plan.side,
                "entry": plan.entry, "stop_loss": plan.stop_loss, "take_profit": plan.take_profit,
                "reward_to_risk": plan.reward_to_risk, "qty": plan.qty,
                "notional_usd": plan.notional_usd, "leverage": plan.leverage,
                "risk_usd": plan.risk_usd, "risk_fraction": plan.risk_fraction,
                "liquidation_price": plan.liquidation_price,
                "consensus_score": min(target.consensus_score, stop.consensus_score),
                "target_zone_id": target.zone_id, "stop_zone_id": stop.zone_id,
            }
        )  # fmt: skip
    return pl.DataFrame(rows, schema=SIGNALS_SCHEMA)
