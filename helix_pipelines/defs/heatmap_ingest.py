"""One heatmap partition's ingest as Dagster sees it: the four asset keys, their checks, and what
each reports (metadata, a preview, check outcomes).

Shared by the partitioned asset step (`ingest_heatmaps`, what schedules and UI backfills run)
and `heatmap_keys_job` (any set of model x range keys in one run), so both record the same
materializations and the same partition-aware check results.
"""

import base64
import warnings
from dataclasses import dataclass, field
from datetime import timedelta

import dagster as dg

# Not exported by `dagster`, but the type AssetCheckEvaluation takes; the Dagster family is pinned.
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)
from pydantic import Field

from helix_pipelines.analytics.views import snapshot_view
from helix_pipelines.defs.partitions import heatmap_partitions
from helix_pipelines.defs.resources import (
    ArchiveResource,
    CoinGlassResource,
    UniverseResource,
    WarehouseResource,
)
from helix_pipelines.defs.universe import stored_or_resolved_universe
from helix_pipelines.pictures.heatmap import PriceMark, heatmap_picture
from helix_pipelines.services.ingest import IngestOptions, IngestReport, run_ingest
from helix_pipelines.warehouse.heatmap_store import QualityReport

PAYLOADS = dg.AssetKey("heatmap_payloads")
NORMALIZED = dg.AssetKey("normalized_heatmaps")
ARCHIVE = dg.AssetKey("heatmap_archive")
LOADED = dg.AssetKey("liquidation_heatmaps")
HEATMAP_ASSETS = (PAYLOADS, NORMALIZED, ARCHIVE, LOADED)
CHECK_NON_EMPTY = "heatmaps_non_empty"
CHECK_COVERAGE = "heatmaps_universe_coverage"
CHECK_SCHEMA_AND_BOUNDS = "heatmaps_schema_and_bounds"
CHECK_QUARANTINE = "heatmaps_quarantined_payloads"
PREVIEW_CLUSTERS = 6  # the largest clusters labelled on a preview: more would not be readable


def _check_spec(name: str, description: str, *, blocking: bool) -> dg.AssetCheckSpec:
    # Partitioned like the asset: each result belongs to its model x range, so a check's history
    # never mixes 12h with 180d. (A preview feature of Dagster 1.13, hence the warning it gives.)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(
            name,
            asset=LOADED,
            blocking=blocking,
            description=description,
            partitions_def=heatmap_partitions,
        )


CHECK_SPECS = (
    _check_spec(
        CHECK_NON_EMPTY, "Blocking: at least one usable snapshot with cells.", blocking=True
    ),
    _check_spec(
        CHECK_COVERAGE,
        "Blocking: usable snapshots cover at least min_coverage_pct of the universe (coins "
        "CoinGlass has no data for on this range are left out).",
        blocking=True,
    ),
    _check_spec(
        CHECK_SCHEMA_AND_BOUNDS,
        "Blocking: stored profiles (and kept cells) account for every cell of their ledger "
        "rows, prices > 0, USD >= 0 and finite, every named candle stored.",
        blocking=True,
    ),
    _check_spec(
        CHECK_QUARANTINE, "Warns when payloads were quarantined (kept as files).", blocking=False
    ),
)
BLOCKING_CHECKS = frozenset(spec.name for spec in CHECK_SPECS if spec.blocking)


class HeatmapIngestConfig(dg.Config):
    min_coverage_pct: float = Field(
        default=90.0, description="Share of the universe, in %, that must have a usable snapshot."
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

    def options(self) -> IngestOptions:
        return IngestOptions(
            preview_symbol=self.preview_symbol,
            batch_size=self.batch_size,
            batches_in_flight=self.batches_in_flight,
            max_payloads_in_flight=self.max_payloads_in_flight,
            max_bytes_in_flight=self.max_mb_in_flight << 20,
            skip_unavailable_for=timedelta(hours=self.skip_unavailable_hours) or None,
        )


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    metadata: dict[str, object]

    @property
    def blocking(self) -> bool:
        return self.name in BLOCKING_CHECKS

    @property
    def severity(self) -> dg.AssetCheckSeverity:
        return dg.AssetCheckSeverity.ERROR if self.blocking else dg.AssetCheckSeverity.WARN

    def result(self) -> dg.AssetCheckResult:
        """As the asset step yields it (Dagster adds the step's partition)."""
        return dg.AssetCheckResult(
            asset_key=LOADED,
            check_name=self.name,
            passed=self.passed,
            severity=self.severity,
            metadata=self.metadata,
        )

    def evaluation(
        self, partition: str, target: AssetCheckEvaluationTargetMaterializationData | None
    ) -> dg.AssetCheckEvaluation:
        """As a job that is not the asset's logs it: with the partition it belongs to and the
        materialization it checked (without it the UI counts the partition as never checked)."""
        return dg.AssetCheckEvaluation(
            asset_key=LOADED,
            check_name=self.name,
            passed=self.passed,
            severity=self.severity,
            metadata=self.metadata,
            blocking=self.blocking,
            partition=partition,
            target_materialization_data=target,
        )


@dataclass(frozen=True)
class PartitionOutcome:
    """What one model x range ingest reports: metadata per asset it materialized (the archive
    only when it wrote a grid) and its check outcomes."""

    metadata: dict[dg.AssetKey, dict[str, object]]
    checks: list[CheckOutcome] = field(default_factory=list)

    @property
    def failed_blocking(self) -> list[str]:
        return [c.name for c in self.checks if c.blocking and not c.passed]


def ingest_partition(
    context: dg.OpExecutionContext,
    config: HeatmapIngestConfig,
    resources: tuple[CoinGlassResource, UniverseResource, WarehouseResource, ArchiveResource],
    model: int,
    range_: str,
) -> PartitionOutcome:
    """Fetch, normalize, archive and load one model x range for the whole universe
    (`services.ingest`), resolving the universe first on a fresh warehouse."""
    coinglass, universe, warehouse, archive = resources
    members = stored_or_resolved_universe(context, coinglass, universe, warehouse)
    opened = warehouse.get()
    store = opened.heatmaps
    report = run_ingest(
        coinglass.settings(),
        store,
        archive.archive(),
        archive.quarantine(),
        members,
        model,
        range_,
        config.options(),
        logger=context.log,  # type: ignore[arg-type]
    )
    quality = store.quality(report.loaded_snapshot_ids)
    metadata = {
        PAYLOADS: _payload_metadata(report),
        NORMALIZED: _normalized_metadata(report),
        LOADED: _loaded_metadata(report, quality, opened.description),
    }
    if report.archived_files:
        # Nothing new to archive (every payload unchanged, quarantined or unavailable): the
        # archive's latest materialization stays the run that wrote this partition's grids.
        metadata[ARCHIVE] = _archive_metadata(report, archive)
    checks = _check_outcomes(report, quality, config.min_coverage_pct)
    return PartitionOutcome(metadata, checks)


def _pct(share: float) -> float:
    return round(100 * share, 2)


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
    preview = _preview(report)
    if preview is not None:
        metadata["preview"] = dg.MetadataValue.md(preview)
    return metadata


def _preview(report: IngestReport) -> str | None:
    """The preview symbol's new snapshot as a picture, its largest clusters labelled."""
    snapshot = report.preview
    if snapshot is None:
        return None
    view = snapshot_view(snapshot)
    clusters = sorted(view.clusters["cumulative"], key=lambda c: -c.share) if view else []
    marks = [
        PriceMark(
            c.peak_price,
            "shorts_liquidated" if c.liquidated_side == "short" else "longs_liquidated",
            f"{c.share:.1%} of USD",
        )
        for c in clusters[:PREVIEW_CLUSTERS]
    ]
    ledger = snapshot.ledger
    picture = heatmap_picture(
        snapshot.cells,
        snapshot.candles,
        symbol=ledger.symbol,
        model=report.model,
        range_=report.range,
        fetched_at=ledger.fetched_at,
        source_kind=report.source_kind,
        marks=marks,
    )
    label = f"{ledger.symbol} model {report.model} {report.range}"
    banner = " — SANDBOX DATA, not market data" if report.source_kind == "sandbox" else ""
    png = base64.b64encode(picture.png).decode()
    labelled = "; ".join(picture.labels)
    return f"**{label}**{banner}\n\n![{label}](data:image/png;base64,{png})\n\nlabelled: {labelled}"


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
        "coverage_pct": _pct(report.coverage),
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


def _check_outcomes(
    report: IngestReport, quality: QualityReport, min_coverage_pct: float
) -> list[CheckOutcome]:
    return [
        CheckOutcome(
            CHECK_NON_EMPTY,
            report.covered > 0 and quality.cells > 0,
            {"usable_snapshots": report.covered, "cells": quality.cells},
        ),
        CheckOutcome(
            CHECK_COVERAGE,
            _pct(report.coverage) >= min_coverage_pct,
            {
                "coverage_pct": _pct(report.coverage),
                "min_coverage_pct": min_coverage_pct,
                "covered": report.covered,
                "expected": report.expected,
                "universe_size": report.requested,
                "unavailable_at_coinglass": len(report.unavailable)
                + len(report.skipped_unavailable),
            },
        ),
        CheckOutcome(
            CHECK_SCHEMA_AND_BOUNDS,
            quality.violations == 0,
            {
                "cell_count_mismatch": quality.cell_count_mismatch,
                "non_positive_price": quality.non_positive_price,
                "negative_or_nan_usd": quality.negative_or_nan_usd,
                "candle_ts_without_candle": quality.candle_ts_without_candle,
            },
        ),
        CheckOutcome(
            CHECK_QUARANTINE,
            not report.quarantined,
            {
                "quarantined": len(report.quarantined),
                "reasons": dg.MetadataValue.json({q.label: q.reason for q in report.quarantined}),
            },
        ),
    ]
