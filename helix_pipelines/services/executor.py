"""The executor as one use case for every entry point: `executor_job` (Dagster), `helix executor
serve` and `helix demo` build it here from the same settings and run the same decision path.

`run_pending` decides on every signal of the last `max_age` this mode has not settled (new
ones, and those whose order is still unconfirmed or deferred), after start-up reconciliation,
then runs housekeeping; the report lists each decision and the book after the run.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis.exceptions import RedisError

from helix_pipelines.bus.prices import LivePrices
from helix_pipelines.clock import utc_now
from helix_pipelines.contracts.vocabulary import IN_FLIGHT, RANGES
from helix_pipelines.execution.brokers import Broker
from helix_pipelines.execution.executor import Executor, ReconcileReport
from helix_pipelines.execution.orders import Decision
from helix_pipelines.execution.paper import PaperBroker
from helix_pipelines.execution.settings import ExecutorSettings
from helix_pipelines.services.settings import Settings
from helix_pipelines.warehouse import Warehouse

log = logging.getLogger(__name__)

# A price older than this is no price: the paper book will not trade on it.
PAPER_PRICE_MAX_AGE = timedelta(days=2)
# A live price (from `helix live`, through Redis) older than this gives way to the stored close.
LIVE_PRICE_MAX_AGE = timedelta(seconds=30)


def paper_prices(
    warehouse: Warehouse,
    clock: Callable[[], datetime] = utc_now,
    live: LivePrices | None = None,
) -> Callable[[str], float | None]:
    """A coin's live Bybit price when `helix live` wrote a fresh one, else the newest stored
    close from its finest range (one keyed lookup a call either way)."""

    def price(symbol: str) -> float | None:
        now = clock()
        if live is not None:
            try:
                current = live.price(symbol, max_age=LIVE_PRICE_MAX_AGE, now=now)
            except (RedisError, OSError) as exc:
                # Redis down: the stored close, as without `helix live` (never no price at all).
                log.warning(
                    "live prices unreadable (%s): using the stored close", type(exc).__name__
                )
                current = None
            if current is not None:
                return current
        return warehouse.heatmaps.latest_close(symbol, now - PAPER_PRICE_MAX_AGE, RANGES)

    return price


def build_broker(
    gated: ExecutorSettings,
    warehouse: Warehouse,
    *,
    account_equity_usd: float,
    redis_url: str | None = None,
    bus_prefix: str = "",
) -> Broker:
    if gated.mode == "paper":
        live = LivePrices(redis_url, key_prefix=bus_prefix) if redis_url else None
        return PaperBroker(
            warehouse.paper_book(),
            paper_prices(warehouse, live=live),
            account_equity_usd=account_equity_usd,
        )
    from helix_pipelines.execution.bybit import BybitBroker  # noqa: PLC0415 - pybit only when trading
    from helix_pipelines.execution.bybit_calls import open_session  # noqa: PLC0415

    assert gated.api_key  # the live gate refused anything else
    assert gated.api_secret
    return BybitBroker(open_session(gated.mode, gated.api_key, gated.api_secret), gated.mode)


def build_executor(
    settings: Settings,
    warehouse: Warehouse,
    *,
    broker: Broker | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> Executor:
    """The executor the settings ask for; refuses (RefuseToStart) an unsafe live setup."""
    gated = settings.executor.gated()
    broker = broker or build_broker(
        gated,
        warehouse,
        account_equity_usd=settings.risk.account_equity_usd,
        redis_url=settings.redis_url,
        bus_prefix=settings.bus_prefix,
    )
    return Executor(broker, warehouse.executor_store(gated.mode), settings.guard, clock=clock)


@dataclass(frozen=True)
class ExecutorRunReport:
    mode: str
    decisions: list[Decision]
    reconciled: ReconcileReport
    positions: dict[str, str]  # the book after the run
    closed: list[str]  # positions housekeeping closed
    unreadable: dict[str, str]  # signal id -> why its stored row is no valid signal

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(d.action for d in self.decisions))


def run_pending(
    executor: Executor,
    warehouse: Warehouse,
    *,
    max_age: timedelta = timedelta(days=1),
    default_leverage: int = 1,
    clock: Callable[[], datetime] = utc_now,
) -> ExecutorRunReport:
    signals, unreadable = warehouse.analytics.signals_since(clock() - max_age)
    for signal_id, why in unreadable.items():
        log.error("stored signal %s is unreadable and is not traded: %s", signal_id, why)
    settled = executor.store.settled_signal_ids([s.signal_id for s in signals], IN_FLIGHT)
    pending = [s for s in signals if s.signal_id not in settled]
    reconciled = executor.start(sorted({s.symbol for s in pending}), default_leverage)
    decisions = [executor.process(signal) for signal in pending]
    closed = executor.broker.housekeeping()
    return ExecutorRunReport(
        executor.store.mode, decisions, reconciled, executor.book(), closed, unreadable
    )
