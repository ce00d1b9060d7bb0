"""Heatmap ingestion for one model x range of the whole universe, as four assets of one step.

    heatmap_payloads -> normalized_heatmaps -> heatmap_archive (every grid, Parquet)
                                            -> liquidation_heatmaps (warehouse load, checked)

One step does all four (a `multi_asset`): passing tens of millions of cells between steps would
cost more than the work itself, while the UI still shows the lineage and each stage's numbers.

Two ways to run it: `heatmap_ingest_job`, one run per partition (schedules, UI backfills), and
`heatmap_keys_job`, one run for any set of keys (`1/12h, 2/180d`; a UI backfill of a model x
range selection is always the cross product).
"""

from collections.abc import Iterator

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)
from pydantic import Field

from helix_pipelines.contracts.vocabulary import parse_series
from helix_pipelines.defs.heatmap_ingest import (
    ARCHIVE,
    CHECK_SPECS,
    HEATMAP_ASSETS,
    LOADED,
    NORMALIZED,
    PAYLOADS,
    HeatmapIngestConfig,
    PartitionOutcome,
    ingest_partition,
)
from helix_pipelines.defs.partitions import (
    heatmap_partition_key,
    heatmap_partitions,
    model_and_range,
)
from helix_pipelines.defs.resources import (
    ArchiveResource,
    CoinGlassResource,
    UniverseResource,
    WarehouseResource,
)
from helix_pipelines.defs.universe import UNIVERSE


def _spec(
    key: dg.AssetKey, dep: object, kinds: set[str], description: str, *, skippable: bool = False
) -> dg.AssetSpec:
    return dg.AssetSpec(
        key,
        deps=[dep],
        group_name="heatmaps",
        kinds=kinds,
        description=description,
        partitions_def=heatmap_partitions,
        skippable=skippable,
    )


@dg.multi_asset(
    name="ingest_heatmaps",
    specs=[
        _spec(
            PAYLOADS,
            UNIVERSE,
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
            "The full grid of every new snapshot (all models) as zstd Parquet, "
            "hive-partitioned by model, range and date; local or an object store. Not "
            "materialized by a run that had nothing new to archive.",
            skippable=True,
        ),
        _spec(
            LOADED,
            NORMALIZED,
            {"postgres", "duckdb"},
            "heatmap_snapshots ledger, liquidation_price_levels profiles, heatmap_candles "
            "and, for the series HELIX_WAREHOUSE_CELLS names, liquidation_data_raw cells. "
            "Grain: one ledger row per (symbol, payload); idempotent.",
        ),
    ],
    check_specs=CHECK_SPECS,
    partitions_def=heatmap_partitions,
    pool="coinglass",
)
def ingest_heatmaps_step(
    context: dg.AssetExecutionContext,
    config: HeatmapIngestConfig,
    coinglass: CoinGlassResource,
    universe: UniverseResource,
    warehouse: WarehouseResource,
    archive: ArchiveResource,
) -> Iterator[dg.MaterializeResult]:
    """Fetch, normalize, archive and load one model x range (`services.ingest`); on a fresh
    warehouse the universe is resolved first."""
    model, range_ = model_and_range(context.partition_key)
    outcome = ingest_partition(
        context, config, (coinglass, universe, warehouse, archive), model, range_
    )
    for key, metadata in outcome.metadata.items():
        checks = [c.result() for c in outcome.checks] if key == LOADED else []
        yield dg.MaterializeResult(asset_key=key, metadata=metadata, check_results=checks)


heatmap_ingest_job = dg.define_asset_job(
    "heatmap_ingest_job",
    selection=[ingest_heatmaps_step],
    description="One model x range partition per run: what the schedules and UI backfills run.",
)


class HeatmapKeysConfig(HeatmapIngestConfig):
    keys: str = Field(
        default="all",
        description="The model x range keys, e.g. '1/12h, 2/180d', '3/*', '*/24h' or 'all'.",
    )


@dg.op(
    name="ingest_heatmap_keys",
    pool="coinglass",
    description="Ingest exactly the model x range keys given, one after another, recording "
    "each as its partition's materialization with its check results.",
)
def ingest_heatmap_keys(
    context: dg.OpExecutionContext,
    config: HeatmapKeysConfig,
    coinglass: CoinGlassResource,
    universe: UniverseResource,
    warehouse: WarehouseResource,
    archive: ArchiveResource,
) -> dg.Output[None]:
    """Like a backfill of just these partitions, in one run: each key's four assets and
    checks are recorded for its partition, exactly as `ingest_heatmaps` records them. A key
    that fails is reported and the others still run; the run fails at the end if one failed or
    a blocking check did not pass."""
    try:
        keys = parse_series(config.keys, "keys")
    except ValueError as exc:
        raise dg.Failure(str(exc)) from None
    if not keys:
        raise dg.Failure("keys names no model x range: give e.g. '1/12h, 2/180d' or 'all'")
    resources = (coinglass, universe, warehouse, archive)
    problems: dict[str, str] = {}
    for done, (model, range_) in enumerate(keys, start=1):
        partition = str(heatmap_partition_key(model, range_))
        try:
            outcome = ingest_partition(context, config, resources, model, range_)
        except Exception as exc:  # one key's failure must not cost the others their run
            context.log.error(f"{partition}: {type(exc).__name__}: {exc}")
            problems[partition] = f"failed: {type(exc).__name__}: {exc}"
            continue
        _log_partition(context, partition, outcome)
        if outcome.failed_blocking:
            problems[partition] = "blocking checks failed: " + ", ".join(outcome.failed_blocking)
        context.log.info(f"{partition} done ({done}/{len(keys)})")
    if problems:
        raise dg.Failure(
            f"{len(problems)} of {len(keys)} keys did not pass",
            metadata={"problems": dg.MetadataValue.json(problems)},
        )
    return dg.Output(None, metadata={"keys": len(keys)})


def _log_partition(
    context: dg.OpExecutionContext, partition: str, outcome: PartitionOutcome
) -> None:
    for key, metadata in outcome.metadata.items():
        context.log_event(dg.AssetMaterialization(key, partition=partition, metadata=metadata))
    checked = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(LOADED, asset_partitions=[partition]), limit=1
    ).records
    target = (
        AssetCheckEvaluationTargetMaterializationData(
            storage_id=checked[0].storage_id,
            run_id=checked[0].run_id,
            timestamp=checked[0].timestamp,
        )
        if checked
        else None
    )
    for check in outcome.checks:
        context.log_event(check.evaluation(partition, target))


@dg.job(
    description="Ingest any set of model x range keys in one run (config: keys), e.g. "
    "'1/12h, 2/180d': what a UI backfill cannot select, since it takes the cross product.",
)
def heatmap_keys_job() -> None:
    ingest_heatmap_keys()


def materialized_metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    """Metadata of all four heatmap assets of one run, merged (their keys do not overlap)."""
    merged: dict[str, object] = {}
    for event in result.get_asset_materialization_events():
        if event.asset_key in HEATMAP_ASSETS:
            merged.update({k: v.value for k, v in event.materialization.metadata.items()})
    return merged
