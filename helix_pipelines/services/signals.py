"""Refresh the liquidation analytics from the newest heatmaps: clusters, zones, trade signals.

One use case for the `analyze_liquidations` asset and the CLI. Idempotent: the same heatmaps
give the same cluster, zone and signal ids; rows are upserted, and a signal already published
is never published again. The rule that protects the executor: if any signal breaks a risk cap,
every signal of the refresh is withheld (stored nowhere, published nowhere) and the report says
why, because the executor reads both the table and the stream.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import polars as pl

from helix_pipelines.analytics.clusters import ClusterParams
from helix_pipelines.analytics.pipeline import AnalyticsResult, analyze
from helix_pipelines.analytics.quality import cluster_violations, signal_violations
from helix_pipelines.analytics.risk import RiskLimits
from helix_pipelines.analytics.trades import SignalParams
from helix_pipelines.bus.publisher import SignalPublisher
from helix_pipelines.contracts.signals import TradeSignal
from helix_pipelines.warehouse import Warehouse

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
    published: int | None = None  # None: no bus configured
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
    publisher: SignalPublisher | None = None,
) -> SignalsReport | None:
    """Analyze the two newest snapshots of every key; None when nothing is loaded yet."""
    latest = warehouse.heatmaps.latest_snapshots(2)
    if latest.height == 0:
        return None
    candles = warehouse.heatmaps.candles_since(latest["fetched_at"].min() - CANDLE_LOOKBACK)
    result = analyze(
        latest,
        warehouse.heatmaps.snapshot_levels,
        candles,
        now=now,
        limits=limits,
        cluster_params=cluster_params,
        signal_params=signal_params,
    )
    warehouse.analytics.save_clusters_and_zones(result.clusters, result.zones)
    risk = signal_violations(result, limits)
    tradable = [] if risk else result.signals
    known = warehouse.analytics.existing_signal_ids([s.signal_id for s in tradable])
    new = [s for s in tradable if s.signal_id not in known]
    warehouse.analytics.save_signals(new)
    report = SignalsReport(result, candles, tradable, new, risk, cluster_violations(result))
    if risk:
        log.error("signals withheld, risk caps broken: %s", risk)
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
