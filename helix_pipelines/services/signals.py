"""Refresh the liquidation analytics from the newest heatmaps: clusters, zones, imbalance,
baselines, the radar and trade signals.

One use case for the `analyze_liquidations` asset and the CLI. Idempotent: the same heatmaps
give the same cluster, zone and signal ids and the same imbalance rows (a snapshot is folded
into its baseline once); rows are upserted, and a signal already published is never published
again. Each refresh adds one radar entry per universe symbol, keyed by its refresh time.

The rule that protects the executor: if any signal breaks a risk cap, every signal of the
refresh is withheld (stored nowhere, published nowhere) and the report says why, because the
executor reads both the table and the stream.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import polars as pl

from helix_pipelines.analytics.baselines import Baseline
from helix_pipelines.analytics.clusters import ClusterParams
from helix_pipelines.analytics.imbalance import SnapshotImbalance
from helix_pipelines.analytics.outcomes import win_rates
from helix_pipelines.analytics.pipeline import AnalyticsResult, History, analyze
from helix_pipelines.analytics.quality import (
    cluster_violations,
    radar_violations,
    signal_violations,
)
from helix_pipelines.analytics.radar import RadarParams
from helix_pipelines.analytics.risk import RiskLimits
from helix_pipelines.analytics.trades import SignalParams
from helix_pipelines.bus.publisher import SignalPublisher
from helix_pipelines.bus.radar import RadarPublisher
from helix_pipelines.contracts.signals import TradeSignal
from helix_pipelines.contracts.tables import BASELINES_SCHEMA, IMBALANCE_SCHEMA, RADAR_SCHEMA
from helix_pipelines.warehouse import Warehouse
from helix_pipelines.warehouse.analytics_store import RefreshFrames

log = logging.getLogger(__name__)

# Candles older than the longest range plus a margin never matter to the analytics.
CANDLE_LOOKBACK = timedelta(days=370)


@dataclass
class SignalsReport:
    """What one refresh computed, kept, withheld and published."""

    result: AnalyticsResult
    candles: pl.DataFrame
    tradable: list[TradeSignal]
    new: list[TradeSignal]
    risk_violations: list[str]
    cluster_violations: dict[str, int]
    radar_violations: dict[str, int]
    published: int | None = None  # None: no bus configured
    radar_stream_id: str | None = None  # the radar's stream entry (None: no bus configured)
    notes: list[str] = field(default_factory=list)

    @property
    def withheld(self) -> int:
        return len(self.result.signals) - len(self.tradable)


def refresh_signals(
    warehouse: Warehouse,
    *,
    now: datetime,
    limits: RiskLimits,
    cluster_params: ClusterParams | None = None,
    signal_params: SignalParams | None = None,
    radar_params: RadarParams | None = None,
    publisher: SignalPublisher | None = None,
    radar_publisher: RadarPublisher | None = None,
) -> SignalsReport | None:
    """Analyze the two newest snapshots of every key; None when nothing is loaded yet."""
    latest = warehouse.heatmaps.latest_snapshots(2, as_of=now)
    if latest.height == 0:
        return None
    candles = warehouse.heatmaps.candles_since(latest["fetched_at"].min() - CANDLE_LOOKBACK)
    history = read_history(warehouse, latest, now)
    result = analyze(
        latest,
        warehouse.heatmaps.snapshot_levels,
        candles,
        now=now,
        limits=limits,
        cluster_params=cluster_params,
        signal_params=signal_params,
        radar_params=radar_params,
        history=history,
    )
    warehouse.analytics.save_refresh(refresh_frames(result))
    risk = signal_violations(result, limits)
    tradable = [] if risk else result.signals
    known = warehouse.analytics.existing_signal_ids([s.signal_id for s in tradable])
    new = [s for s in tradable if s.signal_id not in known]
    warehouse.analytics.save_signals(new)
    report = SignalsReport(
        result,
        candles,
        tradable,
        new,
        risk,
        cluster_violations(result),
        radar_violations(result, history.universe),
    )
    if risk:
        log.error("signals withheld, risk caps broken: %s", risk)
    if radar_publisher is not None:
        report.radar_stream_id = radar_publisher.publish(result.radar)
    if publisher is None:
        report.notes.append(
            f"HELIX_REDIS_URL is not set: {len(tradable)} signals stored, not published"
        )
    elif tradable:
        # All of them, not only the new ones: a publish that failed last time is retried, and
        # the bus drops ids it already published.
        report.published = publisher.publish(tradable).published
    else:
        report.published = 0
    log.info(
        "%d snapshots -> %d clusters, %d zones, %d signals (%d new)",
        result.snapshots_analyzed,
        result.clusters.height,
        result.zones.height,
        len(tradable),
        len(new),
    )
    return report


def read_history(warehouse: Warehouse, latest: pl.DataFrame, now: datetime) -> History:
    """What earlier refreshes stored that this one needs: bounded reads (baselines, one row per
    key; imbalances of the current snapshots; signal outcomes decided by `now`)."""
    current_ids = latest.filter(pl.col("recency") == 1)["snapshot_id"].to_list()
    baselines = [
        Baseline.from_row(r) for r in warehouse.analytics.baselines().iter_rows(named=True)
    ]
    imbalances = [
        SnapshotImbalance.from_row(r)
        for r in warehouse.analytics.imbalances(current_ids).iter_rows(named=True)
    ]
    return History(
        baselines={b.key: b for b in baselines},
        imbalances={i.snapshot_id: i for i in imbalances},
        win_rates=win_rates(warehouse.analytics.signal_outcomes_before(now)),
        universe=[m.symbol for m in warehouse.heatmaps.load_universe()],
    )


def refresh_frames(result: AnalyticsResult) -> RefreshFrames:
    return RefreshFrames(
        clusters=result.clusters,
        zones=result.zones,
        imbalances=pl.DataFrame([i.as_row() for i in result.imbalances], schema=IMBALANCE_SCHEMA),
        baselines=pl.DataFrame([b.as_row() for b in result.baselines], schema=BASELINES_SCHEMA),
        radar=pl.DataFrame([e.as_row() for e in result.radar], schema=RADAR_SCHEMA),
    )
