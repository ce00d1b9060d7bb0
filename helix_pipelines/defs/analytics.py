"""Liquidation analytics assets: clusters -> consensus zones, imbalance -> the radar -> trade
signals, and outcomes.

They refresh themselves after new heatmaps land (automation conditions, evaluated by a sensor
that is on by default), read the warehouse, and write their results back; signals and the radar
also go to Redis when HELIX_REDIS_URL is set.
"""

from collections.abc import Iterator

import dagster as dg
import polars as pl
from pydantic import Field

from helix_pipelines.analytics.baselines import MIN_SAMPLES
from helix_pipelines.analytics.clusters import ClusterParams
from helix_pipelines.analytics.radar import RadarParams
from helix_pipelines.analytics.trades import SignalParams
from helix_pipelines.clock import utc_now
from helix_pipelines.contracts.radar import TIERS
from helix_pipelines.defs.analytics_pictures import previews, radar_chart
from helix_pipelines.defs.analytics_tables import (
    radar_rates_table,
    radar_table,
    rates_table,
    signals_table,
    zones_table,
)
from helix_pipelines.defs.heatmap_ingest import LOADED
from helix_pipelines.defs.resources import (
    ArchiveResource,
    CoinGlassResource,
    RiskResource,
    SignalBusResource,
    WarehouseResource,
)
from helix_pipelines.heatmaps.archive import ParquetArchive
from helix_pipelines.services.outcomes import refresh_outcomes
from helix_pipelines.services.signals import SignalsReport, refresh_signals

CLUSTERS = dg.AssetKey("liquidation_clusters")
ZONES = dg.AssetKey("consensus_zones")
IMBALANCE = dg.AssetKey("liquidation_imbalance")
RADAR = dg.AssetKey("liquidation_radar")
SIGNALS = dg.AssetKey("trade_signals")
OUTCOMES = dg.AssetKey("cluster_outcomes")
CHECK_CLUSTERS = "clusters_inside_levels_shares_valid"
CHECK_SIGNALS = "signals_within_risk_caps"
CHECK_RADAR = "radar_lists_every_universe_coin"
# Like eager(), but not held back by missing heatmap partitions: with 24 partitions, some are
# always missing or failed, and the analytics should still follow every one that lands.
AFTER_NEW_HEATMAPS = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("after new heatmaps")


class AnalyticsConfig(dg.Config):
    min_prominence: float = Field(default=3.0, description="Peak prominence, in robust spreads.")
    merge_atr: float = Field(default=0.25, description="Bands closer than this many ATR merge.")
    magnet_max_distance_pct: float = 15.0
    min_consensus: float = Field(default=0.5, description="Zones below this set no stop/target.")
    risk_range: str = Field(default="24h", description="Range whose candles give ATR and wicks.")
    win_rate: float = Field(default=0.5, description="Prior win rate for the Kelly bound.")
    min_outcomes: int = Field(
        default=30, description="Signal outcomes a radar tier needs before its hit rate is used."
    )
    radar_top_k: int | None = Field(
        default=None, description="Plan signals only for the radar's top K coins (None: all)."
    )
    hot_pct: float = Field(default=0.5, description="HOT: a major zone closer than this, in %.")
    watch_pct: float = Field(default=1.0, description="WATCH: closer than this, in %.")
    safe_pct: float = Field(default=2.0, description="WARM below this, SAFE beyond, in %.")
    radar_max_age_hours: float = Field(
        default=6.0, description="Coins whose newest heatmap is older are excluded."
    )
    weight_imbalance: float = 0.35
    weight_proximity: float = 0.35
    weight_size: float = 0.15
    weight_consensus: float = 0.15
    radar_top_n: int = Field(default=20, description="Coins in the radar's table and chart.")
    preview_symbols: int = Field(default=3, description="Symbols rendered in the metadata.")

    def radar_params(self) -> RadarParams:
        return RadarParams(
            weight_imbalance=self.weight_imbalance,
            weight_proximity=self.weight_proximity,
            weight_size=self.weight_size,
            weight_consensus=self.weight_consensus,
            major_consensus=self.min_consensus,
            hot_pct=self.hot_pct,
            watch_pct=self.watch_pct,
            safe_pct=self.safe_pct,
            max_age_hours=self.radar_max_age_hours,
        )

    def signal_params(self) -> SignalParams:
        return SignalParams(
            self.min_consensus,
            self.risk_range,
            self.win_rate,
            self.min_outcomes,
            self.radar_top_k,
        )


def _spec(key: dg.AssetKey, deps: list[object], description: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        key,
        deps=deps,
        group_name="analytics",
        kinds={"polars", "python"},
        automation_condition=AFTER_NEW_HEATMAPS,
        description=description,
    )


@dg.multi_asset(
    name="analyze_liquidations",
    specs=[
        _spec(
            CLUSTERS,
            [LOADED],
            "Clusters of the newest snapshot of every symbol x model x "
            "range, cumulative and live profiles, with magnet and swept flags.",
        ),
        _spec(ZONES, [CLUSTERS], "Zones where models and ranges agree, with a consensus score."),
        _spec(
            IMBALANCE,
            [LOADED],
            "Per snapshot: liquidation USD above vs below the last close (cumulative and live), "
            "its major clusters, and their z-scores against the running baselines "
            "(cluster_baselines), which each new snapshot then joins.",
        ),
        _spec(
            RADAR,
            [IMBALANCE, ZONES],
            "Every universe coin per refresh: rank, score and its components (imbalance, "
            "distance to the nearest major zone, cluster size vs baseline, consensus), tier "
            "(HOT / WATCH / WARM / SAFE), direction, data age, or why it is excluded; also on "
            "the Redis stream helix:radar.",
        ),
        _spec(
            SIGNALS,
            [ZONES, RADAR],
            "Trade plans sized within every risk cap; deterministic ids, "
            "versioned schema, published to the Redis signal stream.",
        ),
    ],
    can_subset=True,
    check_specs=[
        dg.AssetCheckSpec(
            CHECK_CLUSTERS,
            asset=CLUSTERS,
            blocking=True,
            description="Cluster prices inside the heatmap's levels, shares in [0, 1], no NaN.",
        ),
        dg.AssetCheckSpec(
            CHECK_RADAR,
            asset=RADAR,
            blocking=True,
            description="Every universe coin listed; ranks 1..n; every ranked coin with a score "
            "in [0, 1], a tier, a direction and a target; every excluded coin with a reason.",
        ),
        dg.AssetCheckSpec(
            CHECK_SIGNALS,
            asset=SIGNALS,
            blocking=True,
            description="Every signal within every risk cap.",
        ),
    ],
)
def analyze_liquidations(
    context: dg.AssetExecutionContext,
    config: AnalyticsConfig,
    warehouse: WarehouseResource,
    archive: ArchiveResource,
    risk: RiskResource,
    signal_bus: SignalBusResource,
    coinglass: CoinGlassResource,
):
    """Recompute clusters, zones, imbalance, the radar and signals from the newest heatmaps
    (`services.signals`)."""
    publisher = signal_bus.publisher()
    radar_publisher = signal_bus.radar_publisher()
    try:
        report = refresh_signals(
            warehouse.get(),
            now=utc_now(),
            limits=risk.limits(),
            publisher=publisher,
            radar_publisher=radar_publisher,
            cluster_params=ClusterParams(
                config.min_prominence, config.merge_atr, config.magnet_max_distance_pct
            ),
            signal_params=config.signal_params(),
            radar_params=config.radar_params(),
        )
    finally:
        for bus in (publisher, radar_publisher):
            if bus is not None:
                bus.close()
    if report is None:
        _nothing_yet(context, "no heatmap loaded yet: materialize liquidation_heatmaps first")
        return
    for note in report.notes:
        context.log.info(note)
    for outcome in _outcomes(report, config, archive.archive(), coinglass.settings().kind):
        # Subsettable: the UI may ask for some of these assets (or leave checks out); the
        # analysis is one pass either way, and only what was asked for is recorded.
        if outcome.asset_key in context.selected_asset_keys:
            yield dg.MaterializeResult(
                asset_key=outcome.asset_key,
                metadata=outcome.metadata,
                check_results=[
                    c
                    for c in outcome.check_results or []
                    if dg.AssetCheckKey(c.asset_key, c.check_name)
                    in context.selected_asset_check_keys
                ],
            )


def _outcomes(
    report: SignalsReport, config: AnalyticsConfig, archive: ParquetArchive, source_kind: str
) -> Iterator[dg.MaterializeResult]:
    result = report.result
    yield dg.MaterializeResult(
        asset_key=CLUSTERS,
        metadata={
            "snapshots_analyzed": result.snapshots_analyzed,
            "clusters": result.clusters.height,
            "magnets": int(result.clusters["is_magnet"].sum()),
            "swept": int(result.clusters["is_swept"].sum()),
            "preview": dg.MetadataValue.md(
                previews(
                    report,
                    archive,
                    symbols=config.preview_symbols,
                    risk_range=config.risk_range,
                    min_consensus=config.min_consensus,
                    source_kind=source_kind,
                )
            ),
        },
        check_results=[
            dg.AssetCheckResult(
                asset_key=CLUSTERS,
                check_name=CHECK_CLUSTERS,
                passed=not any(report.cluster_violations.values()),
                metadata=report.cluster_violations,
            )
        ],
    )
    yield dg.MaterializeResult(
        asset_key=ZONES,
        metadata={
            "zones": result.zones.height,
            "top_zones": dg.MetadataValue.md(zones_table(result.zones)),
        },
    )
    yield dg.MaterializeResult(asset_key=IMBALANCE, metadata=_imbalance_metadata(report))
    yield dg.MaterializeResult(
        asset_key=RADAR,
        metadata=_radar_metadata(report, config),
        check_results=[
            dg.AssetCheckResult(
                asset_key=RADAR,
                check_name=CHECK_RADAR,
                passed=not any(report.radar_violations.values()),
                metadata=report.radar_violations,
            )
        ],
    )
    yield dg.MaterializeResult(
        asset_key=SIGNALS,
        metadata={
            "signals": len(report.tradable),
            "withheld_signals": report.withheld,
            "new_signals": len(report.new),
            "published": report.published or 0,
            "signal_table": dg.MetadataValue.md(signals_table(report.tradable)),
            "win_rates_used": dg.MetadataValue.json(result.win_rates_used),
            "not_traded": dg.MetadataValue.json(result.rejected),
        },
        check_results=[
            dg.AssetCheckResult(
                asset_key=SIGNALS,
                check_name=CHECK_SIGNALS,
                passed=not report.risk_violations,
                metadata={"violations": dg.MetadataValue.json(report.risk_violations)},
            )
        ],
    )


def _nothing_yet(context: dg.AssetExecutionContext, why: str) -> None:
    """A run on an empty warehouse succeeds and says so on every asset it would have made: an
    observation, not a materialization (nothing was produced)."""
    context.log.info(f"nothing to analyze yet: {why}")
    for key in context.selected_asset_keys:
        context.log_event(
            dg.AssetObservation(key, metadata={"status": f"nothing to analyze yet: {why}"})
        )


def _imbalance_metadata(report: SignalsReport) -> dict[str, object]:
    imbalances = report.result.imbalances
    values = [i.cumulative_imbalance for i in imbalances if i.cumulative_imbalance is not None]
    return {
        "snapshots": len(imbalances),
        "baselines_advanced": len(report.result.baselines),
        "snapshots_with_baseline": sum(1 for i in imbalances if i.baseline_samples >= MIN_SAMPLES),
        "median_cumulative_imbalance": round(float(pl.Series(values).median()), 3)  # type: ignore[arg-type]
        if values
        else None,
    }


def _radar_metadata(report: SignalsReport, config: AnalyticsConfig) -> dict[str, object]:
    radar = report.result.radar
    ranked = [e for e in radar if e.rank is not None]
    excluded = {e.symbol: e.excluded_reason for e in radar if e.rank is None}
    return {
        "ranked": len(ranked),
        "excluded": len(excluded),
        **{f"tier_{t.lower()}": sum(1 for e in ranked if e.tier == t) for t in TIERS},
        "top": dg.MetadataValue.md(radar_table(radar, config.radar_top_n)),
        "chart": dg.MetadataValue.md(
            radar_chart(
                radar,
                top=config.radar_top_n,
                title=f"Liquidation radar, {utc_now():%Y-%m-%d %H:%M} UTC",
            )
        ),
        "excluded_reasons": dg.MetadataValue.json(dict(list(excluded.items())[:100])),
        "redis_stream_entry": report.radar_stream_id or "not published (no HELIX_REDIS_URL)",
    }


class OutcomesConfig(dg.Config):
    horizon_hours: float = Field(default=24.0, description="How long a level has to be touched.")


@dg.asset(
    key=OUTCOMES,
    deps=[CLUSTERS, RADAR, SIGNALS],
    group_name="analytics",
    kinds={"polars", "python"},
    automation_condition=AFTER_NEW_HEATMAPS,
    output_required=False,
)
def cluster_outcomes(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, config: OutcomesConfig
) -> Iterator[dg.MaterializeResult]:
    """Past clusters, radar entries and signals scored against the candles that followed; hit
    rates by model, range and consensus level, and by radar decile and tier
    (`services.outcomes`). Idempotent: upserted per subject."""
    report = refresh_outcomes(warehouse.get(), horizon_hours=config.horizon_hours, now=utc_now())
    if report is None:
        _nothing_yet(context, "no clusters, radar entries or signals stored yet")
        return
    context.log.info("scored %d subjects (%d still open)", report.scored, report.still_open)
    yield dg.MaterializeResult(
        metadata={
            "scored": report.scored,
            "still_open": report.still_open,
            "hit_rates": dg.MetadataValue.md(rates_table(report.rates)),
            "hit_rates_by_radar": dg.MetadataValue.md(radar_rates_table(report.radar_rates)),
        }
    )


analytics_automation_sensor = dg.AutomationConditionSensorDefinition(
    "analytics_automation_sensor",
    target=dg.AssetSelection.groups("analytics"),
    # On by default: analytics must follow new heatmaps without anyone toggling anything.
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Refreshes clusters, zones, imbalance, the radar, signals and outcomes after new "
    "heatmaps land.",
)

analytics_job = dg.define_asset_job(
    "analytics_job",
    selection=dg.AssetSelection.groups("analytics"),
    description="Every analytics asset at once (what the automation sensor does after new "
    "heatmaps; `helix demo` runs it after its ingest).",
)
