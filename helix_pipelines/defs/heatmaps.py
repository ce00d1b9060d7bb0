"""The `liquidation_heatmaps` asset: one model x range for the whole universe, with its checks.

fetch (CoinGlass / sandbox / replay) -> normalize -> store (warehouse) -> archive (Model 3 Parquet)
"""

import asyncio
import base64

import dagster as dg
from pydantic import Field

from helix_pipelines.defs.partitions import heatmap_partitions, model_and_range
from helix_pipelines.defs.resources import ArchiveResource, CoinGlassResource, WarehouseResource
from helix_pipelines.defs.universe import symbol_universe
from helix_pipelines.heatmaps.render import render_png
from helix_pipelines.ingest import IngestReport, ingest_heatmaps
from helix_pipelines.warehouse.base import QualityReport

ASSET = "liquidation_heatmaps"
CHECK_NON_EMPTY = "heatmaps_non_empty"
CHECK_COVERAGE = "heatmaps_universe_coverage"
CHECK_SCHEMA_AND_BOUNDS = "heatmaps_schema_and_bounds"
CHECK_QUARANTINE = "heatmaps_quarantined_payloads"


class HeatmapIngestConfig(dg.Config):
    min_coverage: float = Field(
        default=0.9, description="Share of the universe that must have a usable snapshot."
    )
    preview_symbol: str | None = Field(
        default=None, description="Symbol rendered in the metadata preview (default: first)."
    )
    batch_size: int = Field(default=25, description="Snapshots stored per transaction.")


@dg.asset(
    partitions_def=heatmap_partitions,
    deps=[symbol_universe],
    group_name="heatmaps",
    kinds={"duckdb", "parquet", "python"},
    pool="coinglass",
    check_specs=[
        dg.AssetCheckSpec(CHECK_NON_EMPTY, asset=ASSET, blocking=True,
                          description="At least one usable snapshot with cells."),
        dg.AssetCheckSpec(CHECK_COVERAGE, asset=ASSET, blocking=True,
                          description="Usable snapshots cover at least min_coverage of the universe."),
        dg.AssetCheckSpec(CHECK_SCHEMA_AND_BOUNDS, asset=ASSET, blocking=True,
                          description="Stored cells match their ledger rows, prices > 0, "
                          "USD >= 0 and finite, every cell's candle stored."),
        dg.AssetCheckSpec(CHECK_QUARANTINE, asset=ASSET,
                          description="Warns when payloads were quarantined."),
    ],
)  # fmt: skip
def liquidation_heatmaps(
    context: dg.AssetExecutionContext,
    config: HeatmapIngestConfig,
    coinglass: CoinGlassResource,
    warehouse: WarehouseResource,
    archive: ArchiveResource,
) -> dg.MaterializeResult:
    """Liquidation heatmap snapshots of one model x range for every universe member.

    Grain: one ledger row per (symbol, payload); cells and candles per snapshot. Idempotent:
    unchanged payloads add no rows (see `helix_pipelines.ingest`).
    """
    model, range_ = model_and_range(context.partition_key)
    store = warehouse.get()
    members = store.load_universe()
    if not members:
        raise dg.Failure(
            "symbol_universe is empty: materialize the symbol_universe asset first "
            "(the UI's 'Materialize' on it, or `helix demo`)."
        )

    async def run() -> tuple[IngestReport, dict[str, int]]:
        async with coinglass.open() as source:
            report = await ingest_heatmaps(
                source, store, archive.archive(), archive.quarantine(), members, model, range_,
                preview_symbol=config.preview_symbol, batch_size=config.batch_size,
                logger=context.log,  # type: ignore[arg-type]
            )  # fmt: skip
            return report, source.stats.as_metadata()

    report, request_stats = asyncio.run(run())
    quality = store.quality(report.loaded_snapshot_ids)
    return dg.MaterializeResult(
        metadata=_metadata(report, request_stats, quality),
        check_results=_check_results(report, quality, config.min_coverage),
    )


def _metadata(
    report: IngestReport, request_stats: dict[str, int], quality: QualityReport
) -> dict[str, object]:
    metadata: dict[str, object] = {
        "source": report.source_kind,
        "sandbox": report.source_kind == "sandbox",
        "universe_size": report.requested,
        "snapshots_new": report.stored.snapshots_added,
        "snapshots_unchanged": report.unchanged,
        "quarantined": len(report.quarantined),
        "failed_requests": len(report.failed),
        "coverage": round(report.coverage, 4),
        "cells_added": report.stored.cells_added,
        "candles_upserted": report.stored.candles_upserted,
        "cells_checked": quality.cells,
        "schema_variants": dg.MetadataValue.json(dict(report.schema_variants)),
        "archived_files": report.archived_files,
        "duration_seconds": round(report.duration_seconds, 3),
        **request_stats,
    }
    if report.quarantined:
        metadata["quarantined_payloads"] = dg.MetadataValue.md(
            "\n".join(
                f"- **{q.label}**: {q.reason} (`{q.payload_path}`)" for q in report.quarantined
            )
        )
    if report.failed:
        metadata["failed"] = dg.MetadataValue.md(
            "\n".join(f"- **{label}**: {why}" for label, why in report.failed)
        )
    if report.preview is not None:
        png = render_png(report.preview.cells, report.preview.candles)
        label = f"{report.preview.ledger.symbol} model {report.model} {report.range}"
        banner = " — SANDBOX DATA, not market data" if report.source_kind == "sandbox" else ""
        metadata["preview"] = dg.MetadataValue.md(
            f"**{label}**{banner}\n\n![{label}](data:image/png;base64,{base64.b64encode(png).decode()})"
        )
    return metadata


def _check_results(
    report: IngestReport, quality: QualityReport, min_coverage: float
) -> list[dg.AssetCheckResult]:
    return [
        dg.AssetCheckResult(
            check_name=CHECK_NON_EMPTY,
            passed=report.covered > 0 and quality.cells > 0,
            metadata={"usable_snapshots": report.covered, "cells": quality.cells},
        ),
        dg.AssetCheckResult(
            check_name=CHECK_COVERAGE,
            passed=report.coverage >= min_coverage,
            metadata={
                "coverage": round(report.coverage, 4),
                "min_coverage": min_coverage,
                "covered": report.covered,
                "universe_size": report.requested,
            },
        ),
        dg.AssetCheckResult(
            check_name=CHECK_SCHEMA_AND_BOUNDS,
            passed=quality.violations == 0,
            metadata={
                "cell_count_mismatch": quality.cell_count_mismatch,
                "non_positive_price": quality.non_positive_price,
                "negative_or_nan_usd": quality.negative_or_nan_usd,
                "candle_ts_without_candle": quality.candle_ts_without_candle,
            },
        ),
        dg.AssetCheckResult(
            check_name=CHECK_QUARANTINE,
            passed=not report.quarantined,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "quarantined": len(report.quarantined),
                "reasons": dg.MetadataValue.json({q.label: q.reason for q in report.quarantined}),
            },
        ),
    ]


heatmap_ingest_job = dg.define_asset_job("heatmap_ingest_job", selection=[liquidation_heatmaps])
