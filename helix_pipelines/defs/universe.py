"""The `symbol_universe` asset and the sensor that refreshes it when the source's list changes."""

import asyncio

import dagster as dg

from helix_pipelines.defs.resources import CoinGlassResource, UniverseResource, WarehouseResource
from helix_pipelines.services.universe import ResolvedUniverse, resolve_universe


async def _resolve(
    coinglass: CoinGlassResource, universe: UniverseResource
) -> tuple[ResolvedUniverse, str, int]:
    async with coinglass.open() as source:
        resolved = await resolve_universe(source, universe.selection())
        return resolved, source.kind, source.stats.requests_sent


@dg.asset(group_name="universe", kinds={"duckdb", "python"})
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
    resolved, source_kind, requests = asyncio.run(_resolve(coinglass, universe))
    warehouse.get().heatmaps.replace_universe(resolved.members)
    if resolved.unsupported:
        context.log.warning(
            "not supported by the source, left out: %s", ", ".join(resolved.unsupported)
        )
    context.log.info("universe: %d symbols from %s", len(resolved.members), source_kind)
    members = ", ".join(
        m.symbol if m.scope == "coin" else f"{m.exchange}:{m.symbol}" for m in resolved.members
    )
    multiplied = {
        m.symbol: f"{m.venue_symbol} x{m.multiplier}" for m in resolved.members if m.multiplier > 1
    }
    return dg.MaterializeResult(
        metadata={
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
        },
        data_version=dg.DataVersion(resolved.fingerprint),
    )


symbol_universe_job = dg.define_asset_job("symbol_universe_job", selection=[symbol_universe])


@dg.sensor(job=symbol_universe_job, minimum_interval_seconds=3600)
def symbol_universe_sensor(
    context: dg.SensorEvaluationContext,
    coinglass: CoinGlassResource,
    universe: UniverseResource,
    warehouse: WarehouseResource,
) -> dg.SensorResult | dg.SkipReason:
    """Re-materialize `symbol_universe` when the resolved universe differs from the stored one.

    Costs one or two requests per evaluation (supported coins / pairs), once an hour.
    """
    resolved, _, _ = asyncio.run(_resolve(coinglass, universe))
    stored = ResolvedUniverse(warehouse.get().heatmaps.load_universe(), []).fingerprint
    if resolved.fingerprint in (stored, context.cursor):
        return dg.SkipReason(f"universe unchanged ({len(resolved.members)} symbols)")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=resolved.fingerprint)],
        cursor=resolved.fingerprint,
    )
