"""From stored heatmaps to clusters, consensus zones and trade signals, in one pure pass.

Inputs are read from the warehouse: the two newest loaded snapshots of every heatmap key, the
candles, and the snapshots' price-level profiles through a reader the caller passes, asked a few
symbols at a time so memory holds one slice of the universe's profiles, never all of them.
Outputs are frames in the analytics contracts and the trade signals. Deterministic: the same
inputs give the same cluster, zone and signal ids.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime

import polars as pl

from helix_pipelines.analytics.caps import apply_exposure_caps
from helix_pipelines.analytics.clusters import Cluster, ClusterParams, find_clusters, flag_swept
from helix_pipelines.analytics.consensus import ConsensusZone, SourcedCluster, build_zones
from helix_pipelines.analytics.profiles import snapshot_profile
from helix_pipelines.analytics.risk import RiskLimits, TradePlan
from helix_pipelines.analytics.trades import PlannedTrade, SignalParams, plan_symbol, to_signal
from helix_pipelines.analytics.volatility import atr
from helix_pipelines.contracts.signals import TradeSignal
from helix_pipelines.contracts.tables import CLUSTERS_SCHEMA, ZONES_SCHEMA
from helix_pipelines.contracts.vocabulary import RANGES

PROFILES = ("cumulative", "live")
_KEY = ["scope", "exchange", "symbol", "range"]
SYMBOLS_PER_READ = 20
"""Symbols whose profiles are read and analyzed together (about 20 x 48 snapshots x a few
hundred levels: some 300k rows in memory at a time)."""

LevelsReader = Callable[[Sequence[str]], pl.DataFrame]
"""snapshot ids -> their profiles (snapshot_id, price, cumulative_usd, live_usd)."""


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

    @property
    def key(self) -> tuple[str, str, str, int, str]:
        return (self.scope, self.exchange, self.symbol, self.model, self.range)


@dataclass
class AnalyticsResult:
    clusters: pl.DataFrame
    zones: pl.DataFrame
    signals: list[TradeSignal]
    plans: list[TradePlan]
    rejected: dict[str, str]  # symbol -> why no trade was planned
    plan_atr: dict[str, float]  # symbol -> the ATR its plan was sized with
    snapshots_analyzed: int
    views: dict[str, SnapshotView]


def analyze(
    latest: pl.DataFrame,
    levels_of: LevelsReader,
    candles: pl.DataFrame,
    *,
    now: datetime,
    cluster_params: ClusterParams | None = None,
    signal_params: SignalParams | None = None,
    limits: RiskLimits | None = None,
) -> AnalyticsResult:
    """Clusters for the newest snapshot of every key (swept against the previous one), consensus
    zones per symbol, and risk-checked trade signals."""
    cluster_params = cluster_params or ClusterParams()
    signal_params = signal_params or SignalParams()
    limits = limits or RiskLimits()
    candles_by_key = candles.sort("ts").partition_by(_KEY, as_dict=True, include_key=False)
    views = _snapshot_views(latest, levels_of, candles_by_key, cluster_params)
    current = _mark_swept(latest, views, candles_by_key)
    by_symbol: dict[str, list[SnapshotView]] = defaultdict(list)
    for view in current:
        by_symbol[view.symbol].append(view)
    zones: list[ConsensusZone] = []
    zone_of_cluster: dict[str, ConsensusZone] = {}
    planned: dict[str, tuple[PlannedTrade, list[str]]] = {}
    rejected: dict[str, str] = {}
    closes: dict[str, float] = {}
    plan_atr: dict[str, float] = {}
    for symbol, symbol_views in sorted(by_symbol.items()):
        symbol_zones, price_view = _symbol_zones(symbol, symbol_views, zone_of_cluster)
        zones.extend(symbol_zones)
        closes[symbol] = price_view.last_close
        risk_view = next(
            (v for v in symbol_views if v.range == signal_params.risk_range), price_view
        )
        risk_candles = candles_by_key[
            (risk_view.scope, risk_view.exchange, symbol, risk_view.range)
        ]
        outcome = plan_symbol(
            symbol,
            symbol_zones,
            price_view.last_close,
            risk_view.atr,
            risk_candles,
            signal_params,
            limits,
        )
        if isinstance(outcome, str):
            rejected[symbol] = outcome
            continue
        planned[symbol] = (outcome, sorted(v.snapshot_id for v in symbol_views))
        plan_atr[symbol] = risk_view.atr
    capped = apply_exposure_caps([trade.plan for trade, _ in planned.values()], limits)
    for symbol in planned.keys() - {p.symbol for p in capped}:
        rejected[symbol] = "dropped by the exposure caps (max open positions / one per symbol)"
    as_of = max((v.fetched_at for v in current), default=now)
    signals = [
        to_signal(
            PlannedTrade(plan, trade.target, trade.stop), snapshot_ids, created_at=now, as_of=as_of
        )
        for plan in capped
        for trade, snapshot_ids in [planned[plan.symbol]]
    ]
    return AnalyticsResult(
        clusters=_clusters_frame(current, zone_of_cluster),
        zones=_zones_frame(zones, now, closes),
        signals=signals,
        plans=capped,
        rejected=rejected,
        plan_atr=plan_atr,
        snapshots_analyzed=len(current),
        views=views,
    )


def _snapshot_views(
    latest: pl.DataFrame,
    levels_of: LevelsReader,
    candles_by_key: dict[tuple[object, ...], pl.DataFrame],
    params: ClusterParams,
) -> dict[str, SnapshotView]:
    views: dict[str, SnapshotView] = {}
    symbols = latest["symbol"].unique(maintain_order=True).to_list()
    for start in range(0, len(symbols), SYMBOLS_PER_READ):
        chunk = latest.filter(pl.col("symbol").is_in(symbols[start : start + SYMBOLS_PER_READ]))
        levels = levels_of(chunk["snapshot_id"].to_list())
        by_snapshot = levels.partition_by("snapshot_id", as_dict=True, include_key=False)
        for row in chunk.iter_rows(named=True):
            snapshot_levels = by_snapshot.get((row["snapshot_id"],))
            key_candles = candles_by_key.get(
                (row["scope"], row["exchange"], row["symbol"], row["range"])
            )
            if snapshot_levels is None or key_candles is None or snapshot_levels.height == 0:
                continue
            view = _view(row, snapshot_levels, key_candles, params)
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

    previous = {v.key: v for v in by_recency(2)}
    current = by_recency(1)
    for view in current:
        before = previous.get(view.key)
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
        symbol,
        sourced,
        last_close=price_view.last_close,
        atr=price_view.atr,
        models_available=len({v.model for v in views}),
        ranges_available=len({v.range for v in views}),
        tolerance_atr=0.0,
    )
    for zone in zones:
        for item in sourced:
            if zone.price_lo <= item.cluster.price_lo and item.cluster.price_hi <= zone.price_hi:
                zone_of_cluster[item.cluster.cluster_id] = zone
    return zones, price_view


def _view(
    row: dict[str, object], levels: pl.DataFrame, candles: pl.DataFrame, params: ClusterParams
) -> SnapshotView | None:
    span = (row["first_candle_ts"], row["last_candle_ts"])
    if None in span:
        return None
    window = candles.filter(pl.col("ts").is_between(*span))
    if window.height == 0:
        return None
    high, low, close = (window[c].to_numpy() for c in ("high", "low", "close"))
    atr_value = atr(high, low, close)
    profile = snapshot_profile(levels)
    view = SnapshotView(
        snapshot_id=str(row["snapshot_id"]),
        fetched_at=row["fetched_at"],  # type: ignore[arg-type]
        scope=str(row["scope"]),
        exchange=str(row["exchange"]),
        symbol=str(row["symbol"]),
        model=int(row["model"]),  # type: ignore[call-overload]
        range=str(row["range"]),
        level_lo=float(profile.prices.min()),
        level_hi=float(profile.prices.max()),
        last_close=float(close[-1]),
        atr=atr_value,
        first_candle_ts=window["ts"].min(),  # type: ignore[arg-type]
        last_candle_ts=window["ts"].max(),  # type: ignore[arg-type]
    )
    for kind in PROFILES:
        view.clusters[kind] = find_clusters(
            profile.prices,
            profile.values(kind),
            last_close=view.last_close,
            atr=atr_value,
            snapshot_id=f"{view.snapshot_id}|{kind}",
            params=params,
        )
    return view


def _clusters_frame(views: list[SnapshotView], zone_of: dict[str, ConsensusZone]) -> pl.DataFrame:
    rows = []
    for view in views:
        provenance = {
            "snapshot_id": view.snapshot_id,
            "fetched_at": view.fetched_at,
            "scope": view.scope,
            "exchange": view.exchange,
            "symbol": view.symbol,
            "model": view.model,
            "range": view.range,
            "last_close": view.last_close,
            "atr": view.atr,
        }
        for profile, clusters in view.clusters.items():
            for cluster in clusters:
                zone = zone_of.get(cluster.cluster_id)
                rows.append(
                    {
                        **asdict(cluster),
                        **provenance,
                        "profile": profile,
                        "consensus_score": zone.consensus_score if zone else None,
                    }
                )
    return pl.DataFrame(rows, schema=CLUSTERS_SCHEMA)


def _zones_frame(
    zones: list[ConsensusZone], now: datetime, closes: dict[str, float]
) -> pl.DataFrame:
    rows = [
        {
            **asdict(z),
            "models": ",".join(map(str, z.models)),
            "ranges": ",".join(z.ranges),
            "computed_at": now,
            "last_close": closes[z.symbol],
        }
        for z in zones
    ]
    return pl.DataFrame(rows, schema=ZONES_SCHEMA)
