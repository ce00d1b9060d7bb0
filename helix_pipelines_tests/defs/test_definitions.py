from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from helix_pipelines.coinglass.budget import demand_per_minute, plan_tiers
from helix_pipelines.definitions import defs
from helix_pipelines.defs.heatmaps import ingest_heatmaps_step
from helix_pipelines.defs.partitions import heatmap_partitions, model_and_range
from helix_pipelines.defs.schedules import PLANNED_UNIVERSE_SIZE, REQUEST_BUDGET_PER_MINUTE

REPO = Path(__file__).resolve().parents[2]


def loaded() -> dg.Definitions:
    return defs()  # the root's lazy loader, as `dagster dev` calls it


def test_definitions_load_every_asset_job_schedule_and_sensor() -> None:
    definitions = loaded()
    keys = {k.to_user_string() for k in definitions.resolve_all_asset_keys()}
    assert keys == {
        "symbol_universe",
        "heatmap_payloads",
        "normalized_heatmaps",
        "heatmap_archive",
        "liquidation_heatmaps",
        "liquidation_clusters",
        "consensus_zones",
        "liquidation_imbalance",
        "liquidation_radar",
        "trade_signals",
        "cluster_outcomes",
        "heatmap_fetch_plan",
        "executor_decisions",
    }
    graph = definitions.resolve_asset_graph()
    parents = {
        key.to_user_string(): {p.to_user_string() for p in graph.get(key).parent_keys}
        for key in graph.get_all_asset_keys()
    }
    assert parents["heatmap_payloads"] == {"symbol_universe"}
    assert parents["normalized_heatmaps"] == {"heatmap_payloads"}
    assert parents["heatmap_archive"] == {"normalized_heatmaps"}
    assert parents["liquidation_heatmaps"] == {"normalized_heatmaps"}
    assert parents["liquidation_clusters"] == {"liquidation_heatmaps"}
    assert parents["consensus_zones"] == {"liquidation_clusters"}
    assert parents["liquidation_imbalance"] == {"liquidation_heatmaps"}
    assert parents["liquidation_radar"] == {"liquidation_imbalance", "consensus_zones"}
    assert parents["trade_signals"] == {"consensus_zones", "liquidation_radar"}
    assert parents["cluster_outcomes"] == {
        "liquidation_clusters",
        "liquidation_radar",
        "trade_signals",
    }
    assert parents["heatmap_fetch_plan"] == {"symbol_universe", "liquidation_radar"}
    assert parents["executor_decisions"] == {"trade_signals"}  # the executor is in the lineage
    for job in ("heatmap_ingest_job", "heatmap_keys_job", "symbol_universe_job", "analytics_job"):
        assert definitions.resolve_job_def(job).description
    schedules = {s.name for s in definitions.schedules or []}
    assert schedules == {
        "heatmaps_intraday_schedule",
        "heatmaps_short_schedule",
        "heatmaps_medium_schedule",
        "heatmaps_long_schedule",
    }
    sensors = {s.name: s for s in definitions.sensors or []}
    # What the README states: the universe and the analytics follow on their own; trading
    # waits for the operator, and the UI says so in the sensor's description.
    assert {name: s.default_status for name, s in sensors.items()} == {
        "symbol_universe_sensor": dg.DefaultSensorStatus.RUNNING,
        "analytics_automation_sensor": dg.DefaultSensorStatus.RUNNING,
        "trade_signals_sensor": dg.DefaultSensorStatus.STOPPED,
    }
    assert all(s.description for s in sensors.values())
    assert sensors["trade_signals_sensor"].description.startswith("Off until you turn it on")
    assert definitions.resolve_job_def("executor_job").executor_def.name == "in_process"
    checks = {k.name for k in definitions.resolve_asset_graph().asset_check_keys}
    assert checks == {
        "heatmaps_non_empty",
        "heatmaps_universe_coverage",
        "heatmaps_schema_and_bounds",
        "heatmaps_quarantined_payloads",
        "clusters_inside_levels_shares_valid",
        "radar_lists_every_universe_coin",
        "signals_within_risk_caps",
    }


def test_schedules_read_in_human_units() -> None:
    descriptions = {s.name: s.description for s in loaded().schedules or []}
    assert descriptions["heatmaps_intraday_schedule"].startswith(
        "Ranges 12h, 24h for models 1-3, every 15 min"
    )
    assert descriptions["heatmaps_medium_schedule"].startswith(
        "Ranges 30d, 90d for models 1-3, every 6 h"
    )
    assert descriptions["heatmaps_long_schedule"].startswith(
        "Ranges 180d, 1y for models 1-3, every 24 h"
    )


def test_heatmap_checks_are_partitioned_like_their_asset() -> None:
    specs = {spec.name: spec for spec in ingest_heatmaps_step.check_specs}
    assert set(specs) == {
        "heatmaps_non_empty",
        "heatmaps_universe_coverage",
        "heatmaps_schema_and_bounds",
        "heatmaps_quarantined_payloads",
    }
    assert all(spec.partitions_def == heatmap_partitions for spec in specs.values())


def test_heatmap_partitions_are_model_by_range() -> None:
    keys = heatmap_partitions.get_partition_keys()
    assert len(keys) == 24
    assert {model_and_range(k) for k in keys} == {
        (m, r) for m in (1, 2, 3) for r in ("12h", "24h", "3d", "7d", "30d", "90d", "180d", "1y")
    }


def test_schedules_request_every_partition_of_their_tier() -> None:
    definitions = loaded()
    schedule = definitions.resolve_schedule_def("heatmaps_intraday_schedule")
    with dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 25, 12, 15, tzinfo=UTC),
        repository_def=definitions.get_repository_def(),
    ) as context:
        requests = list(schedule.evaluate_tick(context).run_requests or [])
    assert sorted(model_and_range(r.partition_key) for r in requests) == sorted(
        (m, r) for m in (1, 2, 3) for r in ("12h", "24h")
    )
    assert len({r.run_key for r in requests}) == 6
    assert demand_per_minute(
        plan_tiers(PLANNED_UNIVERSE_SIZE, REQUEST_BUDGET_PER_MINUTE), PLANNED_UNIVERSE_SIZE
    ) <= (REQUEST_BUDGET_PER_MINUTE / 2)


def test_dagster_definitions_validate_passes() -> None:
    env = {**os.environ, "DAGSTER_HOME": ""}
    env.pop("DAGSTER_HOME")
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "definitions",
            "validate",
            "-w",
            "workspace.yaml",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All code locations passed validation" in result.stdout + result.stderr
