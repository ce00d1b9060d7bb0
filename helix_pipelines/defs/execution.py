"""The executor in the lineage: `executor_decisions`, downstream of `trade_signals`, materialized
by `executor_job`, which `trade_signals_sensor` starts once per new signals (off by default).

The job runs in process (no subprocess per step, few imports) over the executor service, the
same path `helix executor serve` runs: it decides on every signal of the last day this mode has
not settled and lists each decision, and the book after the run, in its metadata.
"""

from datetime import timedelta

import dagster as dg

from helix_pipelines.defs.analytics import SIGNALS
from helix_pipelines.defs.resources import ExecutorResource, RiskResource, WarehouseResource
from helix_pipelines.services.executor import ExecutorRunReport, run_pending

DECISIONS = dg.AssetKey("executor_decisions")


def decisions_table(report: ExecutorRunReport) -> str:
    lines = ["| symbol | signal | decision | reason |", "|---|---|---|---|"]
    lines += [
        f"| {d.symbol} | {d.signal_id[:12]} | {d.action} | {d.reason} |" for d in report.decisions
    ]
    return "\n".join(lines) if report.decisions else "no new signal"


@dg.asset(
    key=DECISIONS,
    deps=[SIGNALS],
    group_name="execution",
    kinds={"python"},
    description="What the executor did with every new trade signal (placed, skipped, rejected, "
    "each with a reason), in executor_decisions / executor_orders. Paper unless "
    "HELIX_EXECUTOR_MODE says otherwise; idempotent: a signal is decided once per mode.",
)
def executor_decisions(
    warehouse: WarehouseResource, executor: ExecutorResource, risk: RiskResource
) -> dg.MaterializeResult:
    opened = warehouse.get()
    report = run_pending(
        executor.build(opened, risk.limits()),
        opened,
        max_age=timedelta(days=1),
        default_leverage=executor.default_leverage,
    )
    return dg.MaterializeResult(
        metadata={
            "mode": report.mode,
            "signals": len(report.decisions),
            "decisions": dg.MetadataValue.md(decisions_table(report)),
            "counts": dg.MetadataValue.json(report.counts),
            "reconciled_orders": dg.MetadataValue.json(report.reconciled.resolved),
            "positions_before": dg.MetadataValue.json(report.reconciled.positions),
            "positions": dg.MetadataValue.json(report.positions),
            "closed_by_housekeeping": dg.MetadataValue.json(report.closed),
            "unreadable_signals": dg.MetadataValue.json(report.unreadable),
        }
    )


executor_job = dg.define_asset_job(
    "executor_job",
    selection=[executor_decisions],
    executor_def=dg.in_process_executor,
    description="Run the executor over new trade signals.",
)


@dg.asset_sensor(
    asset_key=SIGNALS,
    job=executor_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Off until you turn it on: trading is the operator's decision. Once on, one "
    "executor run per trade_signals materialization (paper unless HELIX_EXECUTOR_MODE says "
    "otherwise).",
)
def trade_signals_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    """One executor run per `trade_signals` materialization."""
    yield dg.RunRequest(run_key=f"{asset_event.run_id}:{asset_event.timestamp}")
