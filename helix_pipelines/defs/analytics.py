"""Liquidation analytics assets: clusters -> consensus zones -> trade signals, and outcomes.

They refresh themselves after new heatmaps land (automation conditions, evaluated by a sensor
that is on by default), read the warehouse, and
write their results back; signals also go to the Redis stream when HELIX_REDIS_URL is set.
"""

import base64
from datetime import timedelta

import dagster as dg
import polars as pl
from pydantic import Field

from helix_pipelines.analytics.clusters import ClusterParams
from helix_pipelines.analytics.outcomes import hit_rates, score_clusters, score_signals
from helix_pipelines.analytics.pipeline import AnalyticsResult, SignalParams, analyze
from helix_pipelines.analytics.quality import cluster_violations, signal_violations
from helix_pipelines.clock import utc_now
from helix_pipelines.defs.heatmaps import LOADED
from helix_pipelines.defs.resources import RiskLimitsResource, SignalBusResource, WarehouseResource
from helix_pipelines.heatmaps.render import render_png
from helix_pipelines.warehouse.base import Warehouse

CLUSTERS = dg.AssetKey("liquidation_clusters")
ZONES = dg.AssetKey("consensus_zones")
SIGNALS = dg.AssetKey("trade_signals")
OUTCOMES = dg.AssetKey("cluster_outcomes")
CHECK_CLUSTERS = "clusters_inside_levels_shares_valid"
CHECK_SIGNALS = "signals_within_risk_caps"
# Candles older than the longest range plus a margin never matter to the analytics.
CANDLE_LOOKBACK = timedelta(days=370)
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
        key, deps=deps, group_name="analytics", kinds={"polars", "python"},
        automation_condition=AFTER_NEW_HEATMAPS, description=description,
    )  # fmt: skip


@dg.multi_asset(
    name="analyze_liquidations",
    specs=[
        _spec(CLUSTERS, [LOADED], "Clusters of the newest snapshot of every symbol x model x "
              "range, cumulative and live profiles, with magnet and swept flags."),
        _spec(ZONES, [CLUSTERS], "Zones where models and ranges agree, with a consensus score."),
        _spec(SIGNALS, [ZONES], "Trade plans sized within every risk cap; deterministic ids, "
              "versioned schema, published to the Redis signal stream."),
    ],
    check_specs=[
        dg.AssetCheckSpec(CHECK_CLUSTERS, asset=CLUSTERS, blocking=True,
                          description="Cluster prices inside the heatmap's levels, shares in "
                          "[0, 1], no NaN."),
        dg.AssetCheckSpec(CHECK_SIGNALS, asset=SIGNALS, blocking=True,
                          description="Every signal within every risk cap."),
    ],
)  # fmt: skip
def analyze_liquidations(
    context: dg.AssetExecutionContext,
    config: AnalyticsConfig,
    warehouse: WarehouseResource,
    risk: RiskLimitsResource,
    signal_bus: SignalBusResource,
):
    """Recompute clusters, zones and signals from the newest heatmaps (idempotent: same inputs,
    same ids; rows are upserted and an already-published signal is never published again)."""
    store = warehouse.get()
    latest = store.latest_snapshots(2)
    if latest.height == 0:
        raise dg.Failure("no loaded heatmaps yet: materialize liquidation_heatmaps first")
    now = utc_now()
    cells = store.snapshot_cells(latest["snapshot_id"].to_list())
    candles = store.candles_since(latest["fetched_at"].min() - CANDLE_LOOKBACK)
    limits = risk.limits()
    result = analyze(
        latest, cells, candles, now=now, limits=limits,
        cluster_params=ClusterParams(config.min_prominence, config.merge_atr, config.magnet_max_distance_pct),
        signal_params=SignalParams(config.min_consensus, config.risk_range, config.win_rate),
    )  # fmt: skip
    store.upsert_frame("liquidation_clusters", result.clusters)
    store.upsert_frame("consensus_zones", result.zones)
    # The risk check runs BEFORE anything is stored or published: a signal that breaks a cap
    # must never reach the executor, which reads the table and the stream.
    bad_signals = signal_violations(result, limits)
    tradable = result.signals if not bad_signals else result.signals.clear()
    known = set(store.read_table("trade_signals")["signal_id"])
    new_signals = tradable.filter(~pl.col("signal_id").is_in(known))
    store.upsert_frame("trade_signals", new_signals)
    # All of them, not only the new ones: a publish that failed last time is retried, and the
    # bus drops ids it already published.
    published = _publish(context, signal_bus, tradable)
    context.log.info(
        "%d snapshots -> %d clusters, %d zones, %d signals (%d new)",
        result.snapshots_analyzed, result.clusters.height, result.zones.height,
        tradable.height, new_signals.height,
    )  # fmt: skip
    if bad_signals:
        context.log.error("signals withheld, risk caps broken: %s", bad_signals)
    bad_clusters = cluster_violations(result)
    yield dg.MaterializeResult(
        asset_key=CLUSTERS,
        metadata={
            "snapshots_analyzed": result.snapshots_analyzed,
            "clusters": result.clusters.height,
            "magnets": int(result.clusters["is_magnet"].sum()),
            "swept": int(result.clusters["is_swept"].sum()),
            "preview": dg.MetadataValue.md(_previews(result, cells, candles, config)),
        },
        check_results=[
            dg.AssetCheckResult(
                asset_key=CLUSTERS,
                check_name=CHECK_CLUSTERS,
                passed=not any(bad_clusters.values()),
                metadata=bad_clusters,
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
            "signals": tradable.height,
            "withheld_signals": result.signals.height - tradable.height,
            "new_signals": new_signals.height,
            "published": published,
            "signal_table": dg.MetadataValue.md(_signals_table(tradable)),
            "not_traded": dg.MetadataValue.json(result.rejected),
        },
        check_results=[
            dg.AssetCheckResult(
                asset_key=SIGNALS,
                check_name=CHECK_SIGNALS,
                passed=not bad_signals,
                metadata={"violations": dg.MetadataValue.json(bad_signals)},
            )
        ],
    )


def _publish(
    context: dg.AssetExecutionContext, bus: SignalBusResource, signals: pl.DataFrame
) -> int:
    publisher = bus.publisher()
    if publisher is None:
        context.log.info(
            "HELIX_REDIS_URL is not set: %d signals stored in the warehouse, not published",
            signals.height,
        )
        return 0
    rows = [
        {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
        for row in signals.iter_rows(named=True)
    ]
    with publisher:
        result = publisher.publish(rows) if rows else None
    return result.published if result else 0


def _zones_table(zones: pl.DataFrame) -> str:
    lines = ["| symbol | side | band | models | ranges | score |", "|---|---|---|---|---|---|"]
    for z in zones.sort("consensus_score", descending=True).head(15).iter_rows(named=True):
        lines.append(
            f"| {z['symbol']} | {z['side']} | {z['price_lo']:.6g}-{z['price_hi']:.6g} | "
            f"{z['models']} | {z['ranges']} | {z['consensus_score']:.2f} |"
        )
    return "\n".join(lines)


def _signals_table(signals: pl.DataFrame) -> str:
    lines = [
        "| symbol | side | entry | stop | take profit | R:R | qty | leverage |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in signals.iter_rows(named=True):
        lines.append(
            f"| {s['symbol']} | {s['side']} | {s['entry']:.6g} | {s['stop_loss']:.6g} | "
            f"{s['take_profit']:.6g} | {s['reward_to_risk']:.2f} | {s['qty']:.6g} | {s['leverage']}x |"
        )
    return "\n".join(lines) if len(lines) > 2 else "no signal this time"


def _previews(
    result: AnalyticsResult, cells: pl.DataFrame, candles: pl.DataFrame, config: AnalyticsConfig
) -> str:
    """Heatmap + agreed zones (red: short liquidations above, green: long below) + signal levels
    (white entry, orange stop, cyan take-profit) for the top symbols."""
    ranked = list(result.signals["symbol"]) + list(
        result.zones.sort("consensus_score", descending=True)["symbol"]
    )
    symbols = list(dict.fromkeys(ranked))[: config.preview_symbols]
    parts = []
    for symbol in symbols:
        views = [v for v in result.views.values() if v.symbol == symbol]
        view = next((v for v in views if v.range == config.risk_range), views[0] if views else None)
        if view is None:
            continue
        snap_cells = cells.filter(pl.col("snapshot_id") == view.snapshot_id)
        snap_candles = candles.filter(
            (pl.col("symbol") == symbol) & (pl.col("range") == view.range)
            & pl.col("ts").is_between(view.first_candle_ts, view.last_candle_ts)
        )  # fmt: skip
        lines = [
            (z["peak_price"], (230, 60, 60) if z["side"] == "short" else (60, 220, 90))
            for z in result.zones.filter(
                (pl.col("symbol") == symbol) & (pl.col("consensus_score") >= config.min_consensus)
            ).iter_rows(named=True)
        ]
        for s in result.signals.filter(pl.col("symbol") == symbol).iter_rows(named=True):
            lines += [
                (s["entry"], (255, 255, 255)),
                (s["stop_loss"], (255, 150, 0)),
                (s["take_profit"], (0, 220, 255)),
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
    range and consensus level. Idempotent: outcomes are upserted per subject."""
    store: Warehouse = warehouse.get()
    now = utc_now()
    clusters = store.read_table("liquidation_clusters")
    signals = store.read_table("trade_signals")
    if clusters.height == 0:
        raise dg.Failure("no clusters yet: materialize liquidation_clusters first")
    candles = store.candles_since(clusters["fetched_at"].min())
    outcomes = pl.concat(
        [
            score_clusters(clusters, candles, horizon_hours=config.horizon_hours, now=now),
            score_signals(signals, candles, horizon_hours=config.horizon_hours, now=now),
        ]
    )
    store.upsert_frame("cluster_outcomes", outcomes)
    rates = hit_rates(outcomes)
    context.log.info("scored %d subjects (%d clusters and signals still open)", outcomes.height,
                     clusters.height + signals.height - outcomes.height)  # fmt: skip
    return dg.MaterializeResult(
        metadata={
            "scored": outcomes.height,
            "still_open": clusters.height + signals.height - outcomes.height,
            "hit_rates": dg.MetadataValue.md(_rates_table(rates)),
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
