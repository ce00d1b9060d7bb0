"""From stored heatmaps to clusters, consensus zones, imbalance, the radar and trade signals, in
one pure pass.

Inputs are read from the warehouse: the two newest loaded snapshots of every heatmap key, the
candles, the snapshots' price-level profiles through a reader the caller passes (`views`), and
what history the radar and sizing need (`History`: baselines, imbalances already computed, hit
rates). Outputs are frames in the analytics contracts, the radar and the trade signals.
Deterministic: the same inputs give the same cluster, zone and signal ids.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime

import polars as pl

from helix_pipelines.analytics.baselines import Baseline, BaselineKey, Comparison, compare_sides
from helix_pipelines.analytics.caps import apply_exposure_caps
from helix_pipelines.analytics.clusters import ClusterParams
from helix_pipelines.analytics.consensus import ConsensusZone, SourcedCluster, build_zones
from helix_pipelines.analytics.imbalance import MajorCluster, SnapshotImbalance, major_clusters
from helix_pipelines.analytics.outcomes import WinRates, win_rate_for
from helix_pipelines.analytics.radar import RadarParams, SymbolInputs, build_radar
from helix_pipelines.analytics.risk import RiskLimits, TradePlan
from helix_pipelines.analytics.trades import PlannedTrade, SignalParams, plan_symbol, to_signal
from helix_pipelines.analytics.views import (
    LevelsReader,
    SnapshotView,
    current_views,
    snapshot_views,
)
from helix_pipelines.contracts.radar import RadarEntry
from helix_pipelines.contracts.signals import TradeSignal
from helix_pipelines.contracts.tables import CLUSTERS_SCHEMA, ZONES_SCHEMA
from helix_pipelines.contracts.vocabulary import RANGES, LiquidatedSide

_KEY = ["scope", "exchange", "symbol", "range"]


@dataclass(frozen=True)
class History:
    """What earlier refreshes left that this one builds on (all empty on a new warehouse)."""

    baselines: Mapping[BaselineKey, Baseline] = field(default_factory=dict)
    imbalances: Mapping[str, SnapshotImbalance] = field(default_factory=dict)  # by snapshot id
    win_rates: WinRates = field(default_factory=dict)
    universe: Sequence[str] = ()  # symbols the radar must list even without a heatmap


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
    imbalances: list[SnapshotImbalance] = field(default_factory=list)
    baselines: list[Baseline] = field(default_factory=list)  # the ones this refresh advanced
    radar: list[RadarEntry] = field(default_factory=list)
    radar_inputs: list[SymbolInputs] = field(default_factory=list)  # what the radar ranked
    win_rates_used: dict[str, str] = field(default_factory=dict)  # symbol -> where p came from


def analyze(
    latest: pl.DataFrame,
    levels_of: LevelsReader,
    candles: pl.DataFrame,
    *,
    now: datetime,
    cluster_params: ClusterParams | None = None,
    signal_params: SignalParams | None = None,
    radar_params: RadarParams | None = None,
    limits: RiskLimits | None = None,
    history: History | None = None,
) -> AnalyticsResult:
    """Clusters for the newest snapshot of every key (swept against the previous one), consensus
    zones per symbol, imbalance and the radar, and risk-checked trade signals for the radar's
    top coins."""
    cluster_params = cluster_params or ClusterParams()
    signal_params = signal_params or SignalParams()
    limits = limits or RiskLimits()
    history = history or History()
    candles_by_key = candles.sort("ts").partition_by(_KEY, as_dict=True, include_key=False)
    state = _assess_symbols(latest, levels_of, candles_by_key, cluster_params, history)
    current, by_symbol, symbol_zones = state.current, state.by_symbol, state.symbol_zones
    radar = build_radar(state.inputs, history.universe, now=now, params=radar_params)
    radar_of = {entry.symbol: entry for entry in radar}
    planned: dict[str, tuple[PlannedTrade, list[str]]] = {}
    rejected: dict[str, str] = {}
    plan_atr: dict[str, float] = {}
    win_rates_used: dict[str, str] = {}
    for symbol, (own_zones, price_view) in symbol_zones.items():
        entry = radar_of[symbol]
        outside = _outside_top(entry, signal_params.radar_top_k)
        if outside:
            rejected[symbol] = outside
            continue
        symbol_views = by_symbol[symbol]
        risk_view = next(
            (v for v in symbol_views if v.range == signal_params.risk_range), price_view
        )
        risk_candles = candles_by_key[
            (risk_view.scope, risk_view.exchange, symbol, risk_view.range)
        ]
        win_rate, source = win_rate_for(
            entry.tier, history.win_rates, signal_params.win_rate, signal_params.min_outcomes
        )
        win_rates_used[symbol] = source
        outcome = plan_symbol(
            symbol,
            own_zones,
            price_view.last_close,
            risk_view.atr,
            risk_candles,
            signal_params,
            limits,
            win_rate=win_rate,
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
            PlannedTrade(plan, trade.target, trade.stop),
            snapshot_ids,
            created_at=now,
            as_of=as_of,
            radar=radar_of[plan.symbol],
        )
        for plan in capped
        for trade, snapshot_ids in [planned[plan.symbol]]
    ]
    closes = {symbol: view.last_close for symbol, (_, view) in symbol_zones.items()}
    return AnalyticsResult(
        clusters=_clusters_frame(current, state.zone_of_cluster),
        zones=_zones_frame(state.zones, now, closes),
        signals=signals,
        plans=capped,
        rejected=rejected,
        plan_atr=plan_atr,
        snapshots_analyzed=len(current),
        views=state.views,
        imbalances=state.imbalances,
        baselines=state.baselines,
        radar=radar,
        radar_inputs=state.inputs,
        win_rates_used=win_rates_used,
    )


@dataclass
class _SymbolState:
    """Everything per symbol the radar and the trade planning start from."""

    views: dict[str, SnapshotView]
    current: list[SnapshotView]
    imbalances: list[SnapshotImbalance]
    baselines: list[Baseline]
    by_symbol: dict[str, list[SnapshotView]]
    symbol_zones: dict[str, tuple[list[ConsensusZone], SnapshotView]]
    zones: list[ConsensusZone]
    zone_of_cluster: dict[str, ConsensusZone]
    inputs: list[SymbolInputs]


def _assess_symbols(
    latest: pl.DataFrame,
    levels_of: LevelsReader,
    candles_by_key: Mapping[tuple[object, ...], pl.DataFrame],
    cluster_params: ClusterParams,
    history: History,
) -> _SymbolState:
    views = snapshot_views(latest, levels_of, candles_by_key, cluster_params)
    current = current_views(latest, views, candles_by_key)
    imbalances, baselines = assess(current, history)
    imbalance_of = {i.snapshot_id: i for i in imbalances}
    by_symbol: dict[str, list[SnapshotView]] = defaultdict(list)
    for view in current:
        by_symbol[view.symbol].append(view)
    zones: list[ConsensusZone] = []
    zone_of_cluster: dict[str, ConsensusZone] = {}
    symbol_zones: dict[str, tuple[list[ConsensusZone], SnapshotView]] = {}
    for symbol, symbol_views in sorted(by_symbol.items()):
        symbol_zones[symbol] = _symbol_zones(symbol, symbol_views, zone_of_cluster)
        zones.extend(symbol_zones[symbol][0])
    inputs = [
        SymbolInputs(
            symbol,
            [imbalance_of[v.snapshot_id] for v in by_symbol[symbol]],
            own_zones,
            price_view.last_close,
            price_view.atr,
        )
        for symbol, (own_zones, price_view) in symbol_zones.items()
    ]
    return _SymbolState(
        views,
        current,
        imbalances,
        baselines,
        by_symbol,
        symbol_zones,
        zones,
        zone_of_cluster,
        inputs,
    )


def radar_inputs(
    latest: pl.DataFrame,
    levels_of: LevelsReader,
    candles: pl.DataFrame,
    *,
    cluster_params: ClusterParams | None = None,
    history: History | None = None,
) -> list[SymbolInputs]:
    """What the radar ranks, per symbol of `latest`, without planning any trade: the live radar
    re-ranks these against live prices and refreshes only the symbols whose heatmaps changed."""
    candles_by_key = candles.sort("ts").partition_by(_KEY, as_dict=True, include_key=False)
    state = _assess_symbols(
        latest, levels_of, candles_by_key, cluster_params or ClusterParams(), history or History()
    )
    return state.inputs


def _outside_top(entry: RadarEntry, top_k: int | None) -> str | None:
    """Why a symbol gets no signal because of its radar entry, or None."""
    if entry.rank is None:
        return f"not on the radar: {entry.excluded_reason}"
    if top_k is not None and entry.rank > top_k:
        return f"radar rank {entry.rank} is outside the top {top_k}"
    return None


def assess(
    current: Sequence[SnapshotView], history: History
) -> tuple[list[SnapshotImbalance], list[Baseline]]:
    """The imbalance row of every current snapshot and the baselines advanced by them.

    A snapshot seen by an earlier refresh keeps its stored row (its z-scores were taken against
    the baseline before it, and the baseline holds it now); a new one is compared with its key's
    baseline, then folded in.
    """
    rows: list[SnapshotImbalance] = []
    advanced: dict[BaselineKey, Baseline] = {}
    for view in current:
        known = history.imbalances.get(view.snapshot_id)
        if known is not None:
            rows.append(known)
            continue
        baseline = advanced.get(view.key) or history.baselines.get(view.key) or Baseline(view.key)
        majors = major_clusters(view.clusters["cumulative"])
        comparisons = compare_sides(baseline, majors)
        rows.append(_imbalance_row(view, majors, comparisons, baseline.samples))
        folded = baseline.fold(view.fetched_at, majors.values())
        if folded is not baseline:
            advanced[view.key] = folded
    return rows, list(advanced.values())


def _imbalance_row(
    view: SnapshotView,
    majors: dict[LiquidatedSide, MajorCluster],
    comparisons: dict[LiquidatedSide, Comparison],
    samples: int,
) -> SnapshotImbalance:
    cumulative, live = view.totals["cumulative"], view.totals["live"]
    above, below = majors.get("short"), majors.get("long")
    above_z, below_z = comparisons.get("short"), comparisons.get("long")
    return SnapshotImbalance(
        snapshot_id=view.snapshot_id,
        fetched_at=view.fetched_at,
        scope=view.scope,
        exchange=view.exchange,
        symbol=view.symbol,
        model=view.model,
        range=view.range,
        last_close=view.last_close,
        cumulative_usd_above=cumulative.usd_above,
        cumulative_usd_below=cumulative.usd_below,
        cumulative_imbalance=cumulative.imbalance,
        live_usd_above=live.usd_above,
        live_usd_below=live.usd_below,
        live_imbalance=live.imbalance,
        major_above_usd=above.usd if above else None,
        major_above_distance_pct=above.distance_pct if above else None,
        major_below_usd=below.usd if below else None,
        major_below_distance_pct=below.distance_pct if below else None,
        size_z_above=above_z.size_z if above_z else None,
        size_z_below=below_z.size_z if below_z else None,
        distance_z_above=above_z.distance_z if above_z else None,
        distance_z_below=below_z.distance_z if below_z else None,
        baseline_samples=samples,
    )


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
