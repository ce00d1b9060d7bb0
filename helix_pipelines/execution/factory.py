"""Build the executor a configuration asks for (shared by Dagster, `helix executor` and tests)."""

from __future__ import annotations

from helix_pipelines.execution.brokers import Broker, PaperBroker, warehouse_prices
from helix_pipelines.execution.executor import Executor
from helix_pipelines.execution.guard import GuardLimits
from helix_pipelines.execution.settings import ExecutorSettings
from helix_pipelines.execution.store import ExecutorStore
from helix_pipelines.warehouse.base import Warehouse


def build_broker(
    settings: ExecutorSettings, warehouse: Warehouse, *, paper_equity_usd: float
) -> Broker:
    if settings.mode == "paper":
        return PaperBroker(
            warehouse, warehouse_prices(warehouse), starting_equity_usd=paper_equity_usd
        )
    from helix_pipelines.execution.bybit import BybitBroker  # noqa: PLC0415 - pybit only when trading
    from helix_pipelines.execution.bybit_calls import open_session  # noqa: PLC0415

    assert settings.api_key  # resolve_settings refused anything else
    assert settings.api_secret
    return BybitBroker(
        open_session(settings.mode, settings.api_key, settings.api_secret), settings.mode
    )


def build_executor(
    settings: ExecutorSettings,
    warehouse: Warehouse,
    limits: GuardLimits,
    *,
    paper_equity_usd: float = 10_000.0,
    broker: Broker | None = None,
) -> Executor:
    broker = broker or build_broker(settings, warehouse, paper_equity_usd=paper_equity_usd)
    return Executor(broker, ExecutorStore(warehouse, settings.mode), limits)
