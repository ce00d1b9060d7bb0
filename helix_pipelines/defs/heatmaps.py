"""Heatmap ingestion for one model x range of the whole universe, as four assets of one step.

    heatmap_payloads -> normalized_heatmaps -> heatmap_archive (every grid, Parquet)
                                            -> liquidation_heatmaps (warehouse load, checked)

One step does all four (a `multi_asset`): passing tens of millions of cells between steps would
cost more than the work itself, while the UI still shows the lineage and each stage's numbers.
"""

import base64
from datetime import timedelta

import dagster as dg
from pydantic import Field

from helix_pipelines.defs.partitions import heatmap_partitions, model_and_range
from helix_pipelines.defs.resources import ArchiveResource, CoinGlassResource, WarehouseResource
from helix_pipelines.defs.universe import symbol_universe
from helix_pipelines.heatmaps.render import render_png
from helix_pipelines.services.ingest import IngestOptions, IngestReport, run_ingest
from helix_pipelines.warehouse.heatmap_store import QualityReport

PAYLOADS = dg.AssetKey("heatmap_payloads")
NORMALIZED = dg.AssetKey("normalized_heatmaps")
ARCHIVE = dg.AssetKey("heatmap_archive")
LOADED = dg.AssetKey("liquidation_heatmaps")
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
    batch_size: int = Field(default=8, description="Snapshots stored per transaction.")
    batches_in_flight: int = Field(
        default=2, description="Batches loading at once (each on its own connection)."
    )
    max_payloads_in_flight: int = Field(
        default=48,
        description="Payloads between request and storage at once: fetching waits beyond this.",
    )
    max_mb_in_flight: int = Field(
        default=192, description="Megabytes of payloads between request and storage at once."
    )
    skip_unavailable_hours: float = Field(
        default=24.0,
        description="Skip a (symbol, range) CoinGlass answered 'no data' for within this many "
        "hours (0: always ask).",
    )


def _spec(key: dg.AssetKey, dep: object, kinds: set[str], description: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        key,
        deps=[dep],
        group_name="heatmaps",
        kinds=kinds,
        description=description,
        partitions_def=heatmap_partitions,
    )


@dg.multi_asset(
    name="ingest_heatmaps",
    specs=[
        _spec(
            PAYLOADS,
            symbol_universe,
            {"python"},
            "Raw CoinGlass heatmap responses for every universe member (sandbox or replay "
            "when no API key is set). Not stored as such: quarantined ones are kept as files.",
        ),
        _spec(
            NORMALIZED,
            PAYLOADS,
            {"polars"},
            "Validated cells, candles and ledger rows (v4 and v3 key sets); bad payloads "
            "quarantined with a reason.",
        ),
        _spec(
            ARCHIVE,
            NORMALIZED,
            {"parquet"},
            "The full grid of every loaded snapshot (all models) as zstd Parquet, "
            "hive-partitioned by model, range and date; local or an object store.",
        ),
        _spec(
            LOADED,
            NORMALIZED,
            {"postgres", "duckdb"},
            "heatmap_snapshots ledger, liquidation_price_levels profiles, heatmap_candles and, "
            "for the series HELIX_WAREHOUSE_CELLS names, liquidation_data_raw cells. Grain: one "
            "ledger row per (symbol, payload); idempotent.",
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            CHECK_NON_EMPTY,
            asset=LOADED,
            blocking=True,
            description="At least one usable snapshot with cells.",
        ),
        dg.AssetCheckSpec(
            CHECK_COVERAGE,
            asset=LOADED,
            blocking=True,
            description="Usable snapshots cover at least min_coverage of the universe.",
        ),
        dg.AssetCheckSpec(
            CHECK_SCHEMA_AND_BOUNDS,
            asset=LOADED,
            blocking=True,
            description="Stored profiles (and kept cells) account for every cell of their "
            "ledger rows, prices > 0, USD >= 0 and finite, every named candle stored.",
        ),
        dg.AssetCheckSpec(
            CHECK_QUARANTINE, asset=LOADED, description="Warns when payloads were quarantined."
        ),
    ],
    partitions_def=heatmap_partitions,
    pool="coinglass",
)
def ingest_heatmaps_step(
    context: dg.AssetExecutionContext,
    config: HeatmapIngestConfig,
    coinglass: CoinGlassResource,
    warehouse: WarehouseResource,
    archive: ArchiveResource,
):
    """Fetch, normalize, archive and load one model x range (`services.ingest`)."""
    model, range_ = model_and_range(context.partition_key)
    opened = warehouse.get()
    store = opened.heatmaps
    members = store.load_universe()
    if not members:
        raise dg.Failure(
            "symbol_universe is empty: materialize the symbol_universe asset first "
            "(the UI's 'Materialize' on it, or `helix demo`)."
        )

    options = IngestOptions(
        preview_symbol=config.preview_symbol,
        batch_size=config.batch_size,
        batches_in_flight=config.batches_in_flight,
        max_payloads_in_flight=config.max_payloads_in_flight,
        max_bytes_in_flight=config.max_mb_in_flight << 20,
        skip_unavailable_for=timedelta(hours=config.skip_unavailable_hours) or None,
    )
    report = run_ingest(
        coinglass.settings(),
        store,
        archive.archive(),
        archive.quarantine(),
        members,
        model,
        range_,
        options,
        logger=context.log,  # type: ignore[arg-type]
    )
    quality = store.quality(report.loaded_snapshot_ids)
    yield dg.MaterializeResult(asset_key=PAYLOADS, metadata=_payload_metadata(report))
    yield dg.MaterializeResult(asset_key=NORMALIZED, metadata=_normalized_metadata(report))
    yield dg.MaterializeResult(asset_key=ARCHIVE, metadata=_archive_metadata(report, archive))
    yield dg.MaterializeResult(
        asset_key=LOADED,
        metadata=_loaded_metadata(report, quality, opened.description),
        check_results=_check_results(report, quality, config.min_coverage),
    )


def _payload_metadata(report: IngestReport) -> dict[str, object]:
    metadata: dict[str, object] = {
        "source": report.source_kind,
        "sandbox": report.source_kind == "sandbox",
        "universe_size": report.requested,
        "payloads_fetched": report.requested
        - len(report.failed)
        - len(report.unavailable)
        - len(report.skipped_unavailable),
        "failed_requests": len(report.failed),
        "unavailable": len(report.unavailable),
        "skipped_unavailable": len(report.skipped_unavailable),
        "requests_saved": report.requests_saved,
        **report.request_stats,
    }
    if report.unavailable or report.skipped_unavailable:
        metadata["no_data_at_coinglass"] = dg.MetadataValue.md(
            "CoinGlass has no data for these (young coins on ranges longer than their history); "
            "they are left out of the coverage.\n\n"
            + "\n".join(f"- {s} (answered now)" for s in report.unavailable)
            + "\n".join(f"- {s} (skipped: answered earlier)" for s in report.skipped_unavailable)
        )
    if report.failed:
        metadata["failed"] = dg.MetadataValue.md(
            "\n".join(f"- **{label}**: {why}" for label, why in report.failed)
        )
    return metadata


def _normalized_metadata(report: IngestReport) -> dict[str, object]:
    metadata: dict[str, object] = {
        "snapshots_normalized": sum(report.schema_variants.values()),
        "snapshots_unchanged": report.unchanged,
        "quarantined": len(report.quarantined),
        "schema_variants": dg.MetadataValue.json(dict(report.schema_variants)),
        "x_beyond_candles": len(report.x_beyond_candles),
    }
    if report.x_beyond_candles:
        metadata["x_axis_note"] = dg.MetadataValue.md(
            "These payloads have more x columns than candles, so x is not a candle index there: "
            "their cells are kept with their column (`x_index`) and no candle time "
            "(`heatmap_snapshots.x_axis = 'beyond_candles'`).\n\n"
            + "\n".join(f"- {label}" for label in report.x_beyond_candles)
        )
    if report.quarantined:
        metadata["quarantined_payloads"] = dg.MetadataValue.md(
            "\n".join(
                f"- **{q.label}**: {q.reason} (`{q.payload_path}`)" for q in report.quarantined
            )
        )
    if report.preview is not None:
        png = render_png(report.preview.cells, report.preview.candles)
        label = f"{report.preview.ledger.symbol} model {report.model} {report.range}"
        banner = " — SANDBOX DATA, not market data" if report.source_kind == "sandbox" else ""
        metadata["preview"] = dg.MetadataValue.md(
            f"**{label}**{banner}\n\n![{label}](data:image/png;base64,{base64.b64encode(png).decode()})"
        )
    return metadata


def _archive_metadata(report: IngestReport, archive: ArchiveResource) -> dict[str, object]:
    return {
        "archived_files": report.archived_files,
        "archive_root": archive.archive().root,
        "cells_archived": report.stored.cells_ingested,
    }


def _loaded_metadata(
    report: IngestReport, quality: QualityReport, warehouse: str
) -> dict[str, object]:
    return {
        "warehouse": warehouse,
        "snapshots_new": report.stored.snapshots_added,
        "snapshots_unchanged": report.unchanged,
        "coverage": round(report.coverage, 4),
        "price_levels_added": report.stored.levels_added,
        "cells_ingested": report.stored.cells_ingested,
        "cells_added_to_warehouse": report.stored.cells_added,
        "cells_pruned": report.cells_pruned,
        "candles_upserted": report.stored.candles_upserted,
        "cells_checked": quality.cells,
        "duration_seconds": round(report.duration_seconds, 3),
        "peak_payloads_in_flight": report.in_flight.peak_payloads,
        "peak_mb_in_flight": round(report.in_flight.peak_bytes / (1 << 20), 1),
        "fetches_waited_for_storage": report.in_flight.waits,
    }


def _check_results(
    report: IngestReport, quality: QualityReport, min_coverage: float
) -> list[dg.AssetCheckResult]:
    return [
        dg.AssetCheckResult(
            asset_key=LOADED,
            check_name=CHECK_NON_EMPTY,
            passed=report.covered > 0 and quality.cells > 0,
            metadata={"usable_snapshots": report.covered, "cells": quality.cells},
        ),
        dg.AssetCheckResult(
            asset_key=LOADED,
            check_name=CHECK_COVERAGE,
            passed=report.coverage >= min_coverage,
            metadata={
                "coverage": round(report.coverage, 4),
                "min_coverage": min_coverage,
                "covered": report.covered,
                "expected": report.expected,
                "universe_size": report.requested,
                "unavailable_at_coinglass": len(report.unavailable)
                + len(report.skipped_unavailable),
            },
        ),
        dg.AssetCheckResult(
            asset_key=LOADED,
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
            asset_key=LOADED,
            check_name=CHECK_QUARANTINE,
            passed=not report.quarantined,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "quarantined": len(report.quarantined),
                "reasons": dg.MetadataValue.json({q.label: q.reason for q in report.quarantined}),
            },
        ),
    ]


heatmap_ingest_job = dg.define_asset_job("heatmap_ingest_job", selection=[ingest_heatmaps_step])


def materialized_metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    """Metadata of all four heatmap assets of one run, merged (their keys do not overlap)."""
    merged: dict[str, object] = {}
    for event in result.get_asset_materialization_events():
        if event.asset_key in (PAYLOADS, NORMALIZED, ARCHIVE, LOADED):
            merged.update({k: v.value for k, v in event.materialization.metadata.items()})
    return merged
