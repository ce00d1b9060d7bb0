"""The planner's service path: plans from the warehouse's state, executed through the one ingest
path; a key whose fetch fails waits its tier's interval instead of being planned every cycle."""

from __future__ import annotations

import asyncio
from pathlib import Path

from helix_pipelines.clock import utc_now
from helix_pipelines.coinglass.client import CoinGlassClient
from helix_pipelines.coinglass.pacing import Pacer
from helix_pipelines.coinglass.planner import FetchKey, PlannerParams
from helix_pipelines.contracts.heatmaps import UniverseMember
from helix_pipelines.heatmaps.archive import ParquetArchive
from helix_pipelines.heatmaps.quarantine import QuarantineStore
from helix_pipelines.services.planner import CycleReport, execute_plan, next_plan
from helix_pipelines.testing.coinglass_server import DEFAULT_API_KEY, FakeCoinGlassServer
from helix_pipelines.testing.warehouses import duckdb_warehouse

PARAMS = PlannerParams(hot_coins=1, cycle_seconds=2.0)


def test_a_failing_key_is_planned_again_only_after_its_interval(tmp_path: Path) -> None:
    warehouse = duckdb_warehouse(tmp_path / "plan.duckdb")
    warehouse.heatmaps.replace_universe(
        [UniverseMember("coin", "", "BTC", 1), UniverseMember("coin", "", "ETH", 2)]
    )
    with FakeCoinGlassServer(supported_coins=["BTC", "ETH"]) as server:
        server.fail_symbol("ETH", "503")  # every ETH request: server errors, retried, given up

        async def cycle() -> tuple[CycleReport, list[FetchKey]]:
            async with CoinGlassClient(
                DEFAULT_API_KEY,
                server.base_url,
                max_attempts=1,
                error_burst=1000,
                rate_limit_per_minute=6000,
            ) as client:
                plan = next_plan(warehouse, limit_per_minute=6000, now=utc_now(), params=PARAMS)
                report = await execute_plan(
                    plan,
                    client,
                    Pacer(0.0),
                    warehouse,
                    ParquetArchive(str(tmp_path / "archive")),
                    QuarantineStore(tmp_path / "quarantine"),
                )
                return report, list(plan.keys)

        report, first_keys = asyncio.run(cycle())
    assert len(first_keys) == 48  # nothing fetched yet: every key of both coins
    assert report.changed_symbols == {"BTC"}
    failed = report.failed_keys
    assert len(failed) == 24
    assert {k.symbol for k in failed} == {"ETH"}
    assert warehouse.heatmaps.fetch_log.states().height == 24  # BTC's, all loaded

    later = utc_now()
    without = next_plan(warehouse, limit_per_minute=6000, now=later, params=PARAMS)
    # Without the failures, ETH's keys look never fetched and would be planned every cycle
    # (beside BTC's hot keys, fetched every cycle anyway).
    assert {k for k in without.keys if k.symbol == "ETH"} == set(failed)
    with_failures = next_plan(
        warehouse,
        limit_per_minute=6000,
        now=later,
        params=PARAMS,
        failed=dict.fromkeys(failed, report.plan.planned_at),
    )
    # As if fetched when they failed: ETH waits its tiers' intervals; BTC's hot keys go on.
    assert [k for k in with_failures.keys if k.symbol == "ETH"] == []
    assert {(k.symbol, k.range) for k in with_failures.keys} == {("BTC", "12h"), ("BTC", "24h")}
    warehouse.close()
