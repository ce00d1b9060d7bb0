"""Liquidation analytics assets: clusters -> consensus zones -> trade signals, and outcomes.

They refresh themselves after new heatmaps land (automation conditions, evaluated by a sensor
that is on by default), read the warehouse, and
write their results back; signals also go to the Redis stream when HELIX_REDIS_URL is set.
"""

import base64

import dagster as dg
import polars as pl
from pydantic import Field

from helix_pipelines.analytics.clusters import ClusterParams
from helix_pipelines.analytics.trades import SignalParams
from helix_pipelines.clock import utc_now
from helix_pipelines.contracts.signals import TradeSignal
from helix_pipelines.defs.heatmaps import LOADED
from helix_pipelines.defs.resources import (
    ArchiveResource,
    RiskResource,
    SignalBusResource,
    WarehouseResource,
)
from helix_pipelines.heatmaps.archive import ParquetArchive
from helix_pipelines.heatmaps.render import render_png
from helix_pipelines.services.outcomes import refresh_outcomes
from helix_pipelines.services.signals import SignalsReport, refresh_signals

CLUSTERS = dg.AssetKey("liquidation_clusters")
ZONES = dg.AssetKey("consensus_zones")
SIGNALS = dg.AssetKey("trade_signals")
OUTCOMES = dg.AssetKey("cluster_outcomes")
CHECK_CLUSTERS = "clusters_inside_levels_shares_valid"
CHECK_SIGNALS = "signals_within_risk_caps"
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
    preview_symbols: int = Field(default=3, description="Symbols rendered in the metadata.")


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
            SIGNALS,
            [ZONES],
            "Trade plans sized within every risk cap; deterministic ids, "
            "versioned schema, published to the Redis signal stream.",
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            CHECK_CLUSTERS,
            asset=CLUSTERS,
            blocking=True,
            description="Cluster prices inside the heatmap's levels, shares in [0, 1], no NaN.",
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
):
    """Recompute clusters, zones and signals from the newest heatmaps (`services.signals`)."""
    publisher = signal_bus.publisher()
    try:
        report = refresh_signals(
            warehouse.get(),
            now=utc_now(),
            limits=risk.limits(),
            publisher=publisher,
            cluster_params=ClusterParams(
                config.min_prominence, config.merge_atr, config.magnet_max_distance_pct
            ),
            signal_params=SignalParams(config.min_consensus, config.risk_range, config.win_rate),
        )
    finally:
        if publisher is not None:
            publisher.close()
    if report is None:
        raise dg.Failure("no loaded heatmaps yet: materialize liquidation_heatmaps first")
    for note in report.notes:
        context.log.info(note)
    result = report.result
    yield dg.MaterializeResult(
        asset_key=CLUSTERS,
        metadata={
            "snapshots_analyzed": result.snapshots_analyzed,
            "clusters": result.clusters.height,
            "magnets": int(result.clusters["is_magnet"].sum()),
            "swept": int(result.clusters["is_swept"].sum()),
            "preview": dg.MetadataValue.md(_previews(report, config, archive.archive())),
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
            "top_zones": dg.MetadataValue.md(_zones_table(result.zones)),
        },
    )
    yield dg.MaterializeResult(
        asset_key=SIGNALS,
        metadata={
            "signals": len(report.tradable),
            "withheld_signals": report.withheld,
            "new_signals": len(report.new),
            "published": report.published or 0,
            "signal_table": dg.MetadataValue.md(_signals_table(report.tradable)),
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


def _zones_table(zones: pl.DataFrame) -> str:
    lines = [
        "| symbol | liquidated | band | models | ranges | score |",
        "|---|---|---|---|---|---|",
    ]
    for z in zones.sort("consensus_score", descending=True).head(15).iter_rows(named=True):
        lines.append(
            f"| {z['symbol']} | {z['liquidated_side']} | {z['price_lo']:.6g}-{z['price_hi']:.6g} | "
            f"{z['models']} | {z['ranges']} | {z['consensus_score']:.2f} |"
        )
    return "\n".join(lines)


def _signals_table(signals: list[TradeSignal]) -> str:
    lines = [
        "| symbol | side | entry | stop | take profit | R:R | qty | leverage |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {s.symbol} | {s.side} | {s.entry:.6g} | {s.stop_loss:.6g} | {s.take_profit:.6g} "
        f"| {s.reward_to_risk:.2f} | {s.qty:.6g} | {s.leverage}x |"
        for s in signals
    ]
    return "\n".join(lines) if signals else "no signal this time"


def _previews(report: SignalsReport, config: AnalyticsConfig, archive: ParquetArchive) -> str:
    """Heatmap + agreed zones (red: short liquidations above, green: long below) + signal levels
    (white entry, orange stop, cyan take-profit) for the top symbols; grids from the archive."""
    result = report.result
    ranked = [s.symbol for s in result.signals] + list(
        result.zones.sort("consensus_score", descending=True)["symbol"]
    )
    parts = []
    for symbol in list(dict.fromkeys(ranked))[: config.preview_symbols]:
        views = [v for v in result.views.values() if v.symbol == symbol]
        view = next((v for v in views if v.range == config.risk_range), views[0] if views else None)
        if view is None:
            continue
        snap_cells = archive.read(view)
        if snap_cells is None:
            parts.append(f"**{symbol}**: grid not in the archive at {archive.root}")
            continue
        snap_candles = report.candles.filter(
            (pl.col("symbol") == symbol)
            & (pl.col("range") == view.range)
            & pl.col("ts").is_between(view.first_candle_ts, view.last_candle_ts)
        )
        lines = [
            (z["peak_price"], (230, 60, 60) if z["liquidated_side"] == "short" else (60, 220, 90))
            for z in result.zones.filter(
                (pl.col("symbol") == symbol) & (pl.col("consensus_score") >= config.min_consensus)
            ).iter_rows(named=True)
        ]
        for s in result.signals:
            if s.symbol == symbol:
                lines += [
                    (s.entry, (255, 255, 255)),
                    (s.stop_loss, (255, 150, 0)),
                    (s.take_profit, (0, 220, 255)),
                ]
        png = base64.b64encode(render_png(snap_cells, snap_candles, lines=lines)).decode()
        parts.append(
            f"**{symbol}** model {view.model} {view.range}\n\n![{symbol}](data:image/png;base64,{png})"
        )
    return "\n\n".join(parts) or "nothing to show"


class OutcomesConfig(dg.Config):
    horizon_hours: float = Field(default=24.0, description="How long a level has to be touched.")


@dg.asset(
    key=OUTCOMES,
    deps=[CLUSTERS, SIGNALS],
    group_name="analytics",
    kinds={"polars", "python"},
    automation_condition=AFTER_NEW_HEATMAPS,
)
def cluster_outcomes(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, config: OutcomesConfig
) -> dg.MaterializeResult:
    """Past clusters and signals scored against the candles that followed; hit rates by model,
    range and consensus level (`services.outcomes`). Idempotent: upserted per subject."""
    report = refresh_outcomes(warehouse.get(), horizon_hours=config.horizon_hours, now=utc_now())
    if report is None:
        raise dg.Failure("no clusters yet: materialize liquidation_clusters first")
    context.log.info("scored %d subjects (%d still open)", report.scored, report.still_open)
    return dg.MaterializeResult(
        metadata={
            "scored": report.scored,
            "still_open": report.still_open,
            "hit_rates": dg.MetadataValue.md(_rates_table(report.rates)),
        }
    )


def _rates_table(rates: pl.DataFrame) -> str:
    lines = [
        "| subject | model | range | consensus | n | hit rate | median h to touch |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rates.iter_rows(named=True):
        median = r["median_hours_to_touch"]
        lines.append(
            f"| {r['subject_kind']} | {r['model'] or '-'} | {r['range'] or '-'} | {r['consensus_bucket']} | "
            f"{r['n']} | {r['hit_rate']:.0%} | {'-' if median is None else f'{median:.1f}'} |"
        )
    return "\n".join(lines) if len(lines) > 2 else "nothing scored yet: horizons still open"


analytics_automation_sensor = dg.AutomationConditionSensorDefinition(
    "analytics_automation_sensor",
    target=dg.AssetSelection.groups("analytics"),
    # On by default: analytics must follow new heatmaps without anyone toggling anything.
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Refreshes clusters, zones, signals and outcomes after new heatmaps land.",
)
