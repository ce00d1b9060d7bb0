"""The executor in Dagster: `executor_job`, started by a sensor when `trade_signals` materialize.

The job is one in-process op (no subprocess per step, few imports) that decides on every new
signal and lists each decision in the run's metadata. `helix executor serve` runs the same code
as a long-lived consumer of the Redis signal stream.
"""

from datetime import timedelta

import dagster as dg
import polars as pl

from helix_pipelines.clock import utc_now
from helix_pipelines.defs.analytics import SIGNALS
from helix_pipelines.defs.resources import ExecutorResource, WarehouseResource
from helix_pipelines.execution.orders import Signal
from helix_pipelines.execution.store import IN_FLIGHT
from helix_pipelines.warehouse.base import Warehouse


def pending_signals(warehouse: Warehouse, mode: str, max_age: timedelta) -> list[Signal]:
    """Signals from the last `max_age` that this mode has not settled: never decided on, or
    whose order is still on its way (looked up, or decided again when it never left)."""
    signals = warehouse.read_table("trade_signals").filter(
        pl.col("created_at") >= utc_now() - max_age
    )
    orders = warehouse.read_table("executor_orders").filter(pl.col("mode") == mode)
    settled = orders.filter(~pl.col("status").is_in(IN_FLIGHT))["signal_id"]
    fresh = signals.filter(~pl.col("signal_id").is_in(settled.to_list())).sort("created_at")
    return [Signal.from_mapping(row) for row in fresh.iter_rows(named=True)]


@dg.op(description="Decide on every new trade signal: place, skip or reject, each with a reason.")
def execute_trade_signals(
    context: dg.OpExecutionContext, warehouse: WarehouseResource, executor: ExecutorResource
) -> dg.Output[None]:
    store = warehouse.get()
    runner = executor.build(store)
    signals = pending_signals(store, runner.store.mode, timedelta(days=1))
    report = runner.start(sorted({s.symbol for s in signals}), executor.default_leverage)
    decisions = [runner.process(s) for s in signals]
    closed = runner.broker.housekeeping()
    lines = ["| symbol | signal | decision | reason |", "|---|---|---|---|"]
    lines += [f"| {d.symbol} | {d.signal_id[:12]} | {d.action} | {d.reason} |" for d in decisions]
    counts = {a: sum(d.action == a for d in decisions) for a in {d.action for d in decisions}}
    return dg.Output(
        None,
        metadata={
            "mode": runner.store.mode,
            "signals": len(signals),
            "decisions": dg.MetadataValue.md("\n".join(lines) if decisions else "no new signal"),
            "counts": dg.MetadataValue.json(counts),
            "reconciled_orders": dg.MetadataValue.json(report.resolved),
            "positions_before": dg.MetadataValue.json(report.positions),
            "positions": dg.MetadataValue.json(runner.book()),
            "closed_by_housekeeping": dg.MetadataValue.json(closed),
        },
    )


@dg.job(executor_def=dg.in_process_executor, description="Run the executor over new trade signals.")
def executor_job() -> None:
    execute_trade_signals()


@dg.asset_sensor(asset_key=SIGNALS, job=executor_job, minimum_interval_seconds=30)
def trade_signals_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    """One executor run per `trade_signals` materialization."""
    yield dg.RunRequest(run_key=f"{asset_event.run_id}:{asset_event.timestamp}")
