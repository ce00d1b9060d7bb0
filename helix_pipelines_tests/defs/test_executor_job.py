from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from helix_pipelines.analytics.tables import SIGNALS_SCHEMA
from helix_pipelines.clock import utc_now
from helix_pipelines.defs.execution import executor_job, trade_signals_sensor
from helix_pipelines.defs.resources import ExecutorResource, WarehouseResource
from helix_pipelines.heatmaps.contracts import CANDLES_SCHEMA

PRICES = (("BTC", 100_000.0), ("ETH", 3_000.0))


def seed(warehouse: WarehouseResource) -> None:
    """Two fresh signals and one old one, plus a recent BTC/ETH price for the paper broker."""
    store = warehouse.get()
    now = utc_now()
    rows = []
    for signal_id, symbol, entry, age in (
        ("s1", "BTC", 100_000.0, 0),
        ("s2", "ETH", 3_000.0, 0),
        ("old", "BTC", 100_000.0, 3),
    ):
        row = {name: None for name in SIGNALS_SCHEMA}
        row.update(
            signal_id=signal_id, schema_version=1, strategy_version="t", created_at=now - timedelta(days=age),
            as_of=now, symbol=symbol, side="long", entry=entry, stop_loss=entry * 0.98,
            take_profit=entry * 1.05, reward_to_risk=2.5, qty=0.01 if symbol == "BTC" else 0.3,
            notional_usd=1000.0, leverage=2, risk_usd=20.0, risk_fraction=0.002,
            liquidation_price=entry * 0.5, consensus_score=0.8, target_zone_id="z", stop_zone_id="y",
        )  # fmt: skip
        rows.append(row)
    store.upsert_frame("trade_signals", pl.DataFrame(rows, schema=SIGNALS_SCHEMA))
    candles = pl.DataFrame(
        [("coin", "", s, "12h", now - timedelta(minutes=5), p, p, p, p, 1.0) for s, p in PRICES],
        schema=CANDLES_SCHEMA, orient="row",
    )  # fmt: skip
    with store.connect() as con:
        con.register("c", candles)
        con.execute("INSERT INTO heatmap_candles SELECT * FROM c")


def test_executor_job_decides_on_new_signals_once_and_lists_every_decision(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("HELIX_EXECUTOR_MODE", raising=False)
    warehouse = WarehouseResource(duckdb_path=str(tmp_path / "helix.duckdb"))
    seed(warehouse)
    resources = {"warehouse": warehouse, "executor": ExecutorResource()}

    first = executor_job.execute_in_process(resources=resources)
    assert first.success
    events = [e for e in first.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = events[0].event_specific_data.metadata
    assert metadata["mode"].value == "paper"
    assert metadata["signals"].value == 2  # the 3-day-old one is not picked up
    assert metadata["counts"].value == {"placed": 2}
    assert "| BTC | s1 | placed |" in metadata["decisions"].value

    second = executor_job.execute_in_process(resources=resources)
    events = [e for e in second.all_events if e.event_type_value == "STEP_OUTPUT"]
    assert events[0].event_specific_data.metadata["signals"].value == 0
    assert warehouse.get().read_table("paper_fills").height == 2


def test_signals_whose_orders_are_still_on_their_way_are_taken_up_again(tmp_path: Path) -> None:
    from helix_pipelines.defs.execution import pending_signals
    from helix_pipelines.execution.orders import order_link_id_for
    from helix_pipelines.execution.store import ExecutorStore

    warehouse = WarehouseResource(duckdb_path=str(tmp_path / "helix.duckdb"))
    seed(warehouse)
    store = ExecutorStore(warehouse.get(), "paper")
    now = utc_now()
    for signal_id, status in (("s1", "deferred"), ("s2", "filled")):
        store.save_order(order_link_id=order_link_id_for(signal_id), signal_id=signal_id,
                         symbol="BTC", side="Buy", status=status, created_at=now,
                         updated_at=now)  # fmt: skip
    pending = pending_signals(warehouse.get(), "paper", timedelta(days=1))
    assert [s.signal_id for s in pending] == ["s1"]  # deferred: decided afresh; s2 settled


def test_live_mode_without_confirmation_fails_the_run(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HELIX_EXECUTOR_MODE", "live")
    monkeypatch.delenv("HELIX_EXECUTOR_LIVE_CONFIRM", raising=False)
    resources = {
        "warehouse": WarehouseResource(duckdb_path=str(tmp_path / "h.duckdb")),
        "executor": ExecutorResource(),
    }
    with pytest.raises(Exception, match="live trading refused"):
        executor_job.execute_in_process(resources=resources)


def test_sensor_requests_one_run_per_signals_materialization() -> None:
    instance = dg.DagsterInstance.ephemeral()
    instance.report_runless_asset_event(dg.AssetMaterialization("trade_signals"))
    context = dg.build_sensor_context(instance=instance)
    requests = list(trade_signals_sensor(context))
    assert len(requests) == 1
    assert requests[0].job_name in (None, "executor_job")
