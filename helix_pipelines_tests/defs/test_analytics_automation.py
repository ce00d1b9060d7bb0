from __future__ import annotations

import dagster as dg

from helix_pipelines.definitions import defs
from helix_pipelines.defs.analytics import (
    analytics_automation_sensor,
    analyze_liquidations,
    cluster_outcomes,
)
from helix_pipelines.defs.heatmaps import ingest_heatmaps_step
from helix_pipelines.defs.resources import default_resources
from helix_pipelines.services.settings import Settings


def test_analytics_refresh_after_new_heatmaps_and_only_then() -> None:
    assets = dg.Definitions(
        assets=[ingest_heatmaps_step, analyze_liquidations, cluster_outcomes],
        resources=default_resources(Settings.from_env()),
    )
    instance = dg.DagsterInstance.ephemeral()
    selection = dg.AssetSelection.groups("analytics")

    quiet = dg.evaluate_automation_conditions(
        defs=assets, instance=instance, asset_selection=selection
    )
    assert quiet.total_requested == 0  # no heatmaps yet: nothing to refresh

    instance.report_runless_asset_event(
        dg.AssetMaterialization("liquidation_heatmaps", partition="1|3d")
    )
    after = dg.evaluate_automation_conditions(
        defs=assets, instance=instance, asset_selection=selection, cursor=quiet.cursor
    )
    requested = {
        key for key in ("liquidation_clusters", "consensus_zones", "trade_signals", "cluster_outcomes")
        if after.get_num_requested(dg.AssetKey(key))
    }  # fmt: skip
    # Outcomes ride along: their parents are requested in the same tick.
    assert requested == {
        "liquidation_clusters",
        "consensus_zones",
        "trade_signals",
        "cluster_outcomes",
    }

    # Once handled, the same heatmaps do not trigger again.
    again = dg.evaluate_automation_conditions(
        defs=assets, instance=instance, asset_selection=selection, cursor=after.cursor
    )
    assert again.total_requested == 0


def test_the_analytics_sensor_is_on_by_default() -> None:
    assert analytics_automation_sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert "analytics_automation_sensor" in {s.name for s in defs().sensors or []}
