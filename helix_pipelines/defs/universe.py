"""The `symbol_universe` asset, the sensor that refreshes it when the source's list changes, and
`stored_or_resolved_universe`, which lets a heatmap run on a fresh instance resolve it first."""

import asyncio

import dagster as dg

from helix_pipelines.contracts.heatmaps import UniverseMember
from helix_pipelines.defs.resources import CoinGlassResource, UniverseResource, WarehouseResource
from helix_pipelines.services.universe import ResolvedUniverse, resolve_universe

UNIVERSE = dg.AssetKey("symbol_universe")


async def _resolve(
    coinglass: CoinGlassResource, universe: UniverseResource
) -> tuple[ResolvedUniverse, str, int]:
    async with coinglass.open() as source:
        resolved = await resolve_universe(source, universe.selection())
        return resolved, source.kind, source.stats.requests_sent


def _resolve_and_store(
    log: dg.DagsterLogManager,
    coinglass: CoinGlassResource,
    universe: UniverseResource,
    warehouse: WarehouseResource,
) -> tuple[ResolvedUniverse, dict[str, object]]:
    """Resolve the universe, replace the stored one, and the metadata a materialization shows."""
    resolved, source_kind, requests = asyncio.run(_resolve(coinglass, universe))
    warehouse.get().heatmaps.replace_universe(resolved.members)
    if resolved.unsupported:
        log.warning("not supported by the source, left out: %s", ", ".join(resolved.unsupported))
    log.info("universe: %d symbols from %s", len(resolved.members), source_kind)
    members = ", ".join(
        m.symbol if m.scope == "coin" else f"{m.exchange}:{m.symbol}" for m in resolved.members
    )
    multiplied = {
        m.symbol: f"{m.venue_symbol} x{m.multiplier}" for m in resolved.members if m.multiplier > 1
    }
    metadata: dict[str, object] = {
        "mode": universe.mode,
        "source": source_kind,
        "sandbox": source_kind == "sandbox",
        "members": len(resolved.members),
        "symbols": dg.MetadataValue.md(members[:4000]),
        "unsupported": dg.MetadataValue.json(resolved.unsupported),
        "instrument_choices": dg.MetadataValue.json(resolved.choices),
        "multiplied_instruments": dg.MetadataValue.json(multiplied),
        "single_exchange_kept_apart": dg.MetadataValue.json(resolved.single_exchange),
        "left_out": len(resolved.excluded),
        "left_out_with_reason": dg.MetadataValue.json(resolved.excluded),
        "fingerprint": resolved.fingerprint,
        "requests_sent": requests,
    }
    return resolved, metadata


@dg.asset(key=UNIVERSE, group_name="universe", kinds={"duckdb", "postgres", "python"})
def symbol_universe(
    context: dg.AssetExecutionContext,
    coinglass: CoinGlassResource,
    universe: UniverseResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    """The symbols every heatmap partition fetches; one row per member in `symbol_universe`.

    Bybit mode (the default with a CoinGlass key): every trading Bybit USDT perpetual CoinGlass
    covers, with its instrument and multiplier; what was left out is listed with the reason.
    Idempotent: the table is replaced with the resolved members on each materialization.
    """
    resolved, metadata = _resolve_and_store(context.log, coinglass, universe, warehouse)
    return dg.MaterializeResult(
        metadata=metadata, data_version=dg.DataVersion(resolved.fingerprint)
    )


def stored_or_resolved_universe(
    context: dg.OpExecutionContext,
    coinglass: CoinGlassResource,
    universe: UniverseResource,
    warehouse: WarehouseResource,
) -> list[UniverseMember]:
    """The stored universe; on a fresh warehouse, resolved now and recorded as a
    `symbol_universe` materialization, exactly as materializing that asset would, so that the
    first heatmap partition anyone materializes or backfills just works."""
    members = warehouse.get().heatmaps.load_universe()
    if members:
        return members
    context.log.info("no universe stored yet: resolving it first (as symbol_universe would)")
    resolved, metadata = _resolve_and_store(context.log, coinglass, universe, warehouse)
    context.log_event(
        dg.AssetMaterialization(
            asset_key=UNIVERSE,
            description="Resolved by a heatmap run: no universe was stored yet.",
            metadata=metadata,
        )
    )
    if not resolved.members:
        raise dg.Failure(
            "the universe resolved to no symbols: check HELIX_UNIVERSE_MODE / "
            "HELIX_UNIVERSE_SYMBOLS (the symbol_universe metadata lists what was left out)"
        )
    return resolved.members


symbol_universe_job = dg.define_asset_job(
    "symbol_universe_job",
    selection=[symbol_universe],
    description="Resolve the universe and store it (what `symbol_universe_sensor` starts).",
)


@dg.sensor(
    job=symbol_universe_job,
    minimum_interval_seconds=3600,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="On by default. Once an hour: re-materializes symbol_universe when the resolved "
    "universe (new listings, delistings) differs from the stored one; one or two requests to "
    "CoinGlass (and Bybit's instrument list in bybit mode) per evaluation.",
)
def symbol_universe_sensor(
    context: dg.SensorEvaluationContext,
    coinglass: CoinGlassResource,
    universe: UniverseResource,
    warehouse: WarehouseResource,
) -> dg.SensorResult | dg.SkipReason:
    """Re-materialize `symbol_universe` when the resolved universe differs from the stored one."""
    resolved, _, _ = asyncio.run(_resolve(coinglass, universe))
    stored = ResolvedUniverse(warehouse.get().heatmaps.load_universe(), []).fingerprint
    if resolved.fingerprint in (stored, context.cursor):
        return dg.SkipReason(f"universe unchanged ({len(resolved.members)} symbols)")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=resolved.fingerprint)],
        cursor=resolved.fingerprint,
    )
