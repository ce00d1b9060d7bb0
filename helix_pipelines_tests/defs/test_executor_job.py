from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from helix_pipelines.clock import utc_now
from helix_pipelines.contracts.heatmaps import CANDLES_SCHEMA
from helix_pipelines.contracts.records import OrderRecord
from helix_pipelines.defs.execution import executor_decisions, trade_signals_sensor
from helix_pipelines.defs.resources import (
    ExecutorResource,
    RiskResource,
    WarehouseResource,
    default_resources,
)
from helix_pipelines.execution.orders import order_link_id_for
from helix_pipelines.services.executor import build_executor, run_pending
from helix_pipelines.services.settings import Settings
from helix_pipelines.testing.signals import make_signal
from helix_pipelines.testing.warehouses import execute, read_table

PRICES = (("BTC", 100_000.0), ("ETH", 3_000.0))


def seed(warehouse: WarehouseResource) -> None:
    """Two fresh signals and one old one, plus a recent BTC/ETH price for the paper broker."""
    opened = warehouse.get()
    now = utc_now()
    opened.analytics.save_signals([
        make_signal("s1", "BTC", entry=100_000.0, created_at=now),
        make_signal("s2", "ETH", entry=3_000.0, qty=0.3, created_at=now),
        make_signal("old", "BTC", entry=100_000.0, created_at=now - timedelta(days=3)),
    ])  # fmt: skip
    candles = pl.DataFrame(
        [("coin", "", s, "12h", now - timedelta(minutes=5), p, p, p, p, 1.0) for s, p in PRICES],
        schema=CANDLES_SCHEMA, orient="row",
    )  # fmt: skip
    with opened.database.connect() as conn:
        conn.append("heatmap_candles", candles)


def resources_for(warehouse: WarehouseResource) -> dict[str, object]:
    return {"warehouse": warehouse, "executor": ExecutorResource(), "risk": RiskResource()}


def decide(resources: dict[str, object]) -> dict[str, object]:
    """Materialize `executor_decisions` (what `executor_job` runs); its metadata."""
    run = dg.materialize([executor_decisions], resources=resources)
    assert run.success
    (event,) = run.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_executor_job_decides_on_new_signals_once_and_lists_every_decision(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("HELIX_EXECUTOR_MODE", raising=False)
    warehouse = WarehouseResource(duckdb_path=str(tmp_path / "helix.duckdb"))
    seed(warehouse)
    # A row no build of this code would write (stop above a long's entry): reported, skipped,
    # and the good signals are still traded.
    execute(
        warehouse.get(),
        "INSERT INTO trade_signals SELECT * REPLACE ('broken' AS signal_id, "
        "entry * 2 AS stop_loss) FROM trade_signals WHERE signal_id = 's1'",
    )
    resources = resources_for(warehouse)

    metadata = decide(resources)
    assert metadata["mode"] == "paper"
    assert metadata["signals"] == 2  # the 3-day-old one is not picked up
    assert metadata["counts"] == {"placed": 2}
    assert "| BTC | s1 | placed |" in str(metadata["decisions"])
    assert metadata["unreadable_signals"] == {
        "broken": "signal broken: stop and target are not on both sides of entry"
    }

    assert decide(resources)["signals"] == 0
    assert read_table(warehouse.get(), "paper_fills").height == 2


def test_signals_whose_orders_are_still_on_their_way_are_taken_up_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HELIX_EXECUTOR_MODE", raising=False)
    warehouse = WarehouseResource(duckdb_path=str(tmp_path / "helix.duckdb"))
    seed(warehouse)
    opened = warehouse.get()
    store = opened.executor_store("paper")
    now = utc_now()
    for signal_id, status in (("s1", "deferred"), ("s2", "filled")):
        olid = order_link_id_for(signal_id)
        record = OrderRecord(
            order_link_id=olid,
            signal_id=signal_id,
            symbol="BTC",
            side="long",
            status=status,
            created_at=now,
            updated_at=now,
        )
        store.save_order(record)
    report = run_pending(build_executor(Settings.from_env(), opened), opened)
    # deferred: decided afresh (and placed now); s2 settled, the old one too old to trade
    assert [(d.signal_id, d.action) for d in report.decisions] == [("s1", "placed")]


def test_live_mode_without_confirmation_fails_the_run(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HELIX_EXECUTOR_MODE", "live")
    monkeypatch.delenv("HELIX_EXECUTOR_LIVE_CONFIRM", raising=False)
    # The mode is read when the code location loads, like the webserver does.
    configured = default_resources(Settings.from_env())["executor"]
    assert configured.mode == "live"
    warehouse = WarehouseResource(duckdb_path=str(tmp_path / "h.duckdb"))
    resources = {**resources_for(warehouse), "executor": configured}
    with pytest.raises(Exception, match="live trading refused"):
        dg.materialize([executor_decisions], resources=resources)


def test_sensor_requests_one_run_per_signals_materialization() -> None:
    instance = dg.DagsterInstance.ephemeral()
    instance.report_runless_asset_event(dg.AssetMaterialization("trade_signals"))
    context = dg.build_sensor_context(instance=instance)
    requests = list(trade_signals_sensor(context))
    assert len(requests) == 1
    assert requests[0].job_name in (None, "executor_job")
