"""The executor: one signal in, one decision out, and never a second order for the same signal.

Order of operations for a signal (each step persisted before the next):
  1. orderLinkId = f(signal_id). Already in `executor_orders`? A duplicate delivery: nothing is
     sent (a row still 'pending' is first resolved by looking the order up at the venue).
  2. The risk guard (halt, daily loss, age, price deviation, positions, notional caps).
  3. Quantize qty / take-profit / stop-loss to the instrument; enforce minimum size and notional.
  4. Persist the order as 'pending', then submit with take-profit and stop-loss attached.
  5. On a timeout or a duplicate-orderLinkId answer, look the order up by orderLinkId; if the
     venue does not have it, the row stays 'unconfirmed' for reconciliation, never resent blindly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

import polars as pl

from helix_pipelines.clock import utc_now
from helix_pipelines.execution.brokers import Broker, OrderOutcomeUnknown, OrderRejected
from helix_pipelines.execution.guard import AccountState, GuardLimits, guard_reason
from helix_pipelines.execution.orders import (
    Decision,
    Instrument,
    OrderRequest,
    Signal,
    order_link_id_for,
    order_size_problem,
    quantize_price,
    quantize_qty,
)
from helix_pipelines.execution.store import HALT_REASON, HALTED, ExecutorStore

log = logging.getLogger(__name__)

DAY_START_EQUITY = "day_start_equity"
DAY = "day"
FINAL_STATUSES = {"filled", "accepted", "rejected", "skipped", "cancelled"}


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    resolved: dict[str, str]  # orderLinkId -> status found at the venue
    positions: dict[str, str]  # symbol -> "side qty @ price" at the venue


class Executor:
    def __init__(
        self,
        broker: Broker,
        store: ExecutorStore,
        limits: GuardLimits,
        *,
        clock: Callable[[], datetime] = utc_now,
        logger: logging.Logger = log,
    ) -> None:
        self.broker = broker
        self.store = store
        self.limits = limits
        self._clock = clock
        self._log = logger

    # -- start-up ----------------------------------------------------------------------------

    def start(self, symbols: list[str], default_leverage: int = 1) -> ReconcileReport:
        """Configure the venue and reconcile what the store and the venue believe."""
        self.broker.prepare(symbols, default_leverage)
        resolved = {}
        orders = self.store.orders()
        open_rows = orders.filter(~pl.col("status").is_in(sorted(FINAL_STATUSES))).iter_rows(
            named=True
        )
        for row in open_rows:
            found = self.broker.find_order(row["order_link_id"], row["symbol"])
            status = found.status if found else "not_at_venue"
            self.store.save_order(**{**row, "status": status, "updated_at": self._clock(),
                                     "venue_order_id": found.venue_order_id if found else None,
                                     "avg_price": found.avg_price if found else None})  # fmt: skip
            resolved[row["order_link_id"]] = status
        positions = {
            s: f"{p.side} {p.qty} @ {p.avg_price}" for s, p in self.broker.positions().items()
        }
        self._log.info(
            "reconciled %d open orders; positions at the venue: %s",
            len(resolved),
            positions or "none",
        )
        return ReconcileReport(resolved, positions)

    # -- state -------------------------------------------------------------------------------

    def account_state(self) -> AccountState:
        """Positions, today's loss (from the day's starting equity) and the persisted halt."""
        now = self._clock()
        equity = self.broker.equity()
        day = now.date().isoformat()
        state = self.store.state()
        if state.get(DAY) != day:
            state = {**state, DAY: day, DAY_START_EQUITY: str(equity)}
            self.store.put(now, **{DAY: day, DAY_START_EQUITY: str(equity)})
        start = Decimal(state.get(DAY_START_EQUITY) or str(equity))
        halted = state.get(HALTED) == "true"
        return AccountState(
            self.broker.positions(),
            float(max(start - equity, 0)),
            halted,
            state.get(HALT_REASON, ""),
        )

    # -- one signal --------------------------------------------------------------------------

    def process(self, signal: Signal) -> Decision:
        """Decide on one signal. Decisions of one mode are serialized across threads and
        processes (the Dagster job and `serve` may both run): the duplicate check, the guard's
        view of positions and the pending row are consistent with every other decision."""
        with (
            self.store.warehouse.exclusive(f"executor-{self.store.mode}"),
            self.store.warehouse.session(),
        ):
            decision = self._decide(signal)
            self.store.record(decision, self._clock())
        self._log.info(
            "%s %s: %s (%s)", signal.symbol, signal.signal_id[:12], decision.action, decision.reason
        )
        return decision

    def _decide(self, signal: Signal) -> Decision:
        olid = order_link_id_for(signal.signal_id)
        existing = self.store.order(olid)
        if existing is not None:
            if existing["status"] not in FINAL_STATUSES:
                self._resolve(olid, signal.symbol, existing)
            return Decision(signal.signal_id, signal.symbol, "duplicate",
                            f"already handled: {existing['status']}", olid)  # fmt: skip
        now = self._clock()
        try:
            instrument = self.broker.instrument(signal.symbol)
            price = self.broker.last_price(signal.symbol)
        except OrderRejected as exc:
            return self._final_skip(signal, olid, "rejected", str(exc))
        qty = quantize_qty(signal.qty, instrument)
        state = self.account_state()
        if state.daily_loss_usd >= self.limits.max_daily_loss_usd and not state.halted:
            reason = f"daily loss {state.daily_loss_usd:.2f} reached {self.limits.max_daily_loss_usd:.2f}"
            self.store.halt(reason, now)
            state = AccountState(state.positions, state.daily_loss_usd, True, reason)
            self._log.error("HALT: %s", reason)
        keyed = replace(signal, symbol=self.broker.position_key(signal.symbol))
        blocked = guard_reason(keyed, qty, price, state, self.limits, now)
        if blocked:
            return self._final_skip(signal, olid, "skipped", blocked)
        problem = order_size_problem(qty, price, instrument)
        if problem:
            return self._final_skip(signal, olid, "rejected", problem)
        return self._submit(signal, olid, qty, instrument, now)

    def _submit(
        self, signal: Signal, olid: str, qty: Decimal, instrument: Instrument, now: datetime
    ) -> Decision:
        """Persist as pending, then submit; an unknown outcome is resolved by lookup, never resent."""
        order = OrderRequest(
            order_link_id=olid, symbol=signal.symbol, side=signal.order_side, qty=qty,
            take_profit=quantize_price(signal.take_profit, instrument),
            stop_loss=quantize_price(signal.stop_loss, instrument), leverage=signal.leverage,
        )  # fmt: skip
        self.store.save_order(
            order_link_id=olid, signal_id=signal.signal_id, symbol=signal.symbol,
            side=order.side, qty=str(qty), status="pending", take_profit=str(order.take_profit),
            stop_loss=str(order.stop_loss), leverage=signal.leverage, created_at=now, updated_at=now,
        )  # fmt: skip
        try:
            result = self.broker.submit(order)
        except OrderOutcomeUnknown as exc:
            self._log.warning("%s: outcome unknown (%s); looking it up by orderLinkId", olid, exc)
            status = self._resolve(olid, signal.symbol, self.store.order(olid) or {})
            action = "placed" if status in ("filled", "accepted") else "unconfirmed"
            return Decision(
                signal.signal_id, signal.symbol, action, f"after lookup: {status}", olid
            )
        except OrderRejected as exc:
            self._update(olid, status="rejected", reason=str(exc))
            return Decision(signal.signal_id, signal.symbol, "rejected", str(exc), olid)
        self._update(
            olid,
            status=result.status,
            venue_order_id=result.venue_order_id,
            avg_price=result.avg_price,
        )
        return Decision(
            signal.signal_id, signal.symbol, "placed",
            f"{order.side} {qty} {signal.symbol} {result.status} at {result.avg_price}", olid,
        )  # fmt: skip

    def _resolve(self, olid: str, symbol: str, row: dict[str, object]) -> str:
        found = self.broker.find_order(olid, symbol)
        status = found.status if found else "unconfirmed"
        self._update(olid, status=status, venue_order_id=found.venue_order_id if found else None,
                     avg_price=found.avg_price if found else None)  # fmt: skip
        return status

    def _update(self, olid: str, **changes: object) -> None:
        row = self.store.order(olid)
        if row is None:
            return
        self.store.save_order(**{**row, **changes, "updated_at": self._clock()})

    def _final_skip(self, signal: Signal, olid: str, action: str, reason: str) -> Decision:
        """Remember the signal as handled, so a redelivery is a duplicate, not a second look."""
        now = self._clock()
        self.store.save_order(
            order_link_id=olid, signal_id=signal.signal_id, symbol=signal.symbol,
            side=signal.order_side, status="skipped" if action == "skipped" else "rejected",
            reason=reason, leverage=signal.leverage, created_at=now, updated_at=now,
        )  # fmt: skip
        return Decision(signal.signal_id, signal.symbol, action, reason, olid)  # type: ignore[arg-type]
