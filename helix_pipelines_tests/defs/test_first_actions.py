"""The first things a user tries on a fresh instance just work: any heatmap partition (it
resolves the universe first), any set of model x range keys in one run, and the analytics on an
empty warehouse (a clear "nothing to analyze yet", not a failure)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from helix_pipelines.defs.analytics import analyze_liquidations, cluster_outcomes
from helix_pipelines.defs.heatmaps import heatmap_keys_job, ingest_heatmaps_step
from helix_pipelines.defs.partitions import heatmap_partition_key
from helix_pipelines.defs.resources import (
    ArchiveResource,
    CoinGlassResource,
    RiskResource,
    SignalBusResource,
    UniverseResource,
    WarehouseResource,
)

SYMBOLS = ["BTC", "ETH"]
HEATMAP_ASSETS = ("heatmap_payloads", "normalized_heatmaps", "heatmap_archive")


@pytest.fixture
def resources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    monkeypatch.delenv("COINGLASS_API_KEY", raising=False)
    return {
        "coinglass": CoinGlassResource(),  # no key, no replay: the sandbox
        "universe": UniverseResource(symbols=SYMBOLS),
        "warehouse": WarehouseResource(duckdb_path=str(tmp_path / "helix.duckdb")),
        "archive": ArchiveResource(
            archive_root=str(tmp_path / "archive"), quarantine_root=str(tmp_path / "quarantine")
        ),
    }


def test_a_heatmap_partition_on_a_fresh_warehouse_resolves_the_universe_first(resources) -> None:
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [ingest_heatmaps_step],
        partition_key=heatmap_partition_key(2, "24h"),
        resources=resources,
        instance=instance,
    )
    assert result.success
    universe = instance.get_latest_materialization_event(dg.AssetKey("symbol_universe"))
    assert universe is not None  # recorded as materializing symbol_universe would
    assert universe.asset_materialization.metadata["members"].value == 2
    stored = resources["warehouse"].get().heatmaps.load_universe()
    assert [m.symbol for m in stored] == SYMBOLS
    loaded = instance.get_latest_materialization_event(dg.AssetKey("liquidation_heatmaps"))
    assert loaded.asset_materialization.metadata["snapshots_new"].value == 2

    again = dg.materialize(
        [ingest_heatmaps_step],
        partition_key=heatmap_partition_key(2, "12h"),
        resources=resources,
        instance=instance,
    )
    assert again.success
    # A stored universe is used as it is: resolved once, not on every run.
    assert (
        len(instance.fetch_materializations(dg.AssetKey("symbol_universe"), limit=5).records) == 1
    )


def test_the_keys_job_ingests_exactly_the_keys_given_in_one_run(resources) -> None:
    instance = dg.DagsterInstance.ephemeral()
    result = heatmap_keys_job.execute_in_process(
        run_config={"ops": {"ingest_heatmap_keys": {"config": {"keys": "1/12h, 2/180d"}}}},
        resources=resources,
        instance=instance,
    )
    assert result.success
    wanted = {"1|12h", "2|180d"}  # not the cross product {1, 2} x {12h, 180d}
    for name in (*HEATMAP_ASSETS, "liquidation_heatmaps"):
        assert instance.get_materialized_partitions(dg.AssetKey(name)) == wanted
    evaluations = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ]
    assert {(e.partition, e.check_name) for e in evaluations} == {
        (p, c)
        for p in wanted
        for c in (
            "heatmaps_non_empty",
            "heatmaps_universe_coverage",
            "heatmaps_schema_and_bounds",
            "heatmaps_quarantined_payloads",
        )
    }
    assert all(e.passed for e in evaluations)
    # Each result points at the materialization it checked (the UI counts the partition as
    # checked only then): this run's load of that very partition.
    for e in evaluations:
        target = e.target_materialization_data
        assert target is not None
        assert target.run_id == result.run_id
        record = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                dg.AssetKey("liquidation_heatmaps"), asset_partitions=[e.partition]
            ),
            limit=1,
        ).records[0]
        assert target.storage_id == record.storage_id
    assert len(instance.get_runs()) == 1


def test_the_keys_job_names_a_key_it_cannot_read(resources) -> None:
    result = heatmap_keys_job.execute_in_process(
        run_config={"ops": {"ingest_heatmap_keys": {"config": {"keys": "1/12h, 4/12h"}}}},
        resources=resources,
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "keys: '4/12h' names no model of 1, 2, 3" in failure.step_failure_data.error.message
    assert result.get_asset_materialization_events() == []  # nothing ran on a bad list


def test_a_failed_blocking_check_fails_the_keys_run_after_every_key_ran(
    resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helix_pipelines.defs import heatmap_ingest

    real_ingest = heatmap_ingest.run_ingest

    def ingest(*args: object, **kwargs: object) -> object:
        report = real_ingest(*args, **kwargs)  # type: ignore[arg-type]
        if args[6] == "3d":
            report.loaded_snapshot_ids.clear()  # as if no coin had loaded
        return report

    monkeypatch.setattr(heatmap_ingest, "run_ingest", ingest)
    instance = dg.DagsterInstance.ephemeral()
    result = heatmap_keys_job.execute_in_process(
        run_config={"ops": {"ingest_heatmap_keys": {"config": {"keys": "1/3d,1/7d"}}}},
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    assert instance.get_materialized_partitions(dg.AssetKey("liquidation_heatmaps")) == {
        "1|3d",
        "1|7d",
    }
    records = instance.get_records_for_run(
        result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    evaluations = [r.event_log_entry.dagster_event.asset_check_evaluation_data for r in records]
    assert len(evaluations) == 8  # every check of both keys, recorded before the run failed
    failed = {(e.partition, e.check_name) for e in evaluations if not e.passed}
    assert failed == {("1|3d", "heatmaps_non_empty"), ("1|3d", "heatmaps_universe_coverage")}


def observations(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    return {
        e.asset_key.to_user_string(): e.event_specific_data.asset_observation.metadata[
            "status"
        ].value
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_OBSERVATION
    }


def test_analytics_on_an_empty_warehouse_say_there_is_nothing_to_analyze(resources) -> None:
    analytics_resources = {
        "warehouse": resources["warehouse"],
        "archive": resources["archive"],
        "risk": RiskResource(),
        "signal_bus": SignalBusResource(),
        "coinglass": resources["coinglass"],
    }
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [analyze_liquidations, cluster_outcomes], resources=analytics_resources, instance=instance
    )
    assert result.success
    assert result.get_asset_materialization_events() == []  # nothing was produced ...
    observed = observations(result)
    # ... and every asset says why, where the UI shows it (outcomes, downstream of what was not
    # produced, is skipped in the same run).
    assert set(observed) == {
        "liquidation_clusters",
        "consensus_zones",
        "liquidation_imbalance",
        "liquidation_radar",
        "trade_signals",
    }
    assert all(status.startswith("nothing to analyze yet: ") for status in observed.values())

    alone = dg.materialize([cluster_outcomes], resources=analytics_resources, instance=instance)
    assert alone.success
    assert alone.get_asset_materialization_events() == []
    assert observations(alone) == {
        "cluster_outcomes": "nothing to analyze yet: no clusters, radar entries or signals "
        "stored yet"
    }
