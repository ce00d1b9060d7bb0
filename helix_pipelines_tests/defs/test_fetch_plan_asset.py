"""The `heatmap_fetch_plan` asset shows the next plan and each tier's expected staleness, at
the limit `helix live` last heard from CoinGlass."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dagster as dg

from helix_pipelines.clock import utc_now
from helix_pipelines.coinglass.planner import FetchPlan, PlannerParams, plan_fetches
from helix_pipelines.contracts.heatmaps import UniverseMember
from helix_pipelines.defs.planner import heatmap_fetch_plan
from helix_pipelines.defs.resources import CoinGlassResource, WarehouseResource
from helix_pipelines.services.planner import plan_rows


def metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    (materialization,) = result.asset_materializations_for_node("heatmap_fetch_plan")
    return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}


def test_the_plan_asset_shows_tiers_at_the_limit_live_last_heard(tmp_path: Path) -> None:
    warehouse = WarehouseResource(duckdb_path=str(tmp_path / "helix.duckdb"))
    members = [UniverseMember("coin", "", f"C{i:03d}", i + 1) for i in range(435)]
    opened = warehouse.get()
    opened.heatmaps.replace_universe(members)
    resources = {"warehouse": warehouse, "coinglass": CoinGlassResource()}

    before = metadata(dg.materialize([heatmap_fetch_plan], resources=resources))
    assert before["limit_per_minute"] == 30  # the configured guess until live hears the server
    assert before["budget_per_cycle"] == 23
    assert "the 23 stalest" in str(before["notes"])
    assert before["last_live_cycle"] == "helix live has not run yet"

    live: FetchPlan = plan_fetches(
        members, [], {}, limit_per_minute=1200, now=utc_now() - timedelta(seconds=30)
    )
    opened.heatmaps.fetch_log.save_plan(plan_rows(live))
    after = metadata(dg.materialize([heatmap_fetch_plan], resources=resources))
    assert after["limit_per_minute"] == 1200
    assert after["budget_per_cycle"] == 950
    assert after["share_of_limit"] == 0.95
    assert after["planned_requests"] == 950
    assert after["hot_coins"] == ", ".join(m.symbol for m in members[: PlannerParams().hot_coins])
    tiers = str(after["tiers"])
    assert "| hot | 150 | 50 s |" in tiers
    assert "| intraday | 2460 | 3.4 min |" in tiers
    assert after["last_live_cycle"] != "helix live has not run yet"
