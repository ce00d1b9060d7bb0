"""The executor: one signal in, one decision out, never a second order for the same signal, and
never a second position for the same trade idea.

Order of operations for a signal (each step persisted before the next):
  1. orderLinkId = f(signal_id). Already in `executor_orders`? A redelivery: nothing is sent. An
     order not settled at the venue (pending, unconfirmed, working) is looked up first; one
     known never to have left (deferred) is decided afresh.
  2. The coin becomes the venue's instrument (with its multiplier), the signal its units.
  3. One trade idea, one position: a symbol with an open position, or an order still on its
     way, takes no new signal, whichever its direction (the rule is in docs/executor.md).
  4. The risk guard (halt, daily loss, age, price deviation, positions, notional caps).
  5. Quantize to the instrument, cap market orders by maxMktOrderQty, check minimums.
  6. Persist as 'pending', then submit with take-profit and stop-loss attached. The venue's
     answer decides: filled / partially filled (placed), cancelled with nothing filled
     (not_filled), unknown (unconfirmed: looked up until known), not sent (deferred).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from helix_pipelines.clock import utc_now
from helix_pipelines.contracts.records import OrderRecord
from helix_pipelines.contracts.signals import TradeSignal
from helix_pipelines.contracts.vocabulary import IN_FLIGHT, LOOKED_UP
from helix_pipelines.execution.brokers import (
    Broker,
    OrderNotSent,
    OrderOutcomeUnknown,
    OrderRejected,
    VenueUnavailable,
)
from helix_pipelines.execution.guard import AccountState, GuardLimits, guard_reason
from helix_pipelines.execution.journal import OrderJournal, describe_book, outcome
from helix_pipelines.execution.orders import (
    Decision,
    Instrument,
    OrderRequest,
    human_number,
    human_qty,
    order_link_id_for,
    order_size_problem,
    plain,
    quantize_price,
    quantize_qty,
)
from helix_pipelines.execution.ports import HALT_REASON, HALTED, ExecutorStore, halt

log = logging.getLogger(__name__)

DAY_START_EQUITY = "day_start_equity"
DAY = "day"


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    resolved: dict[str, str]  # orderLinkId -> status found at the venue
    positions: dict[str, str]  # venue symbol -> "long 0.011 @ 65,010.5"


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
        self.journal = OrderJournal(store, clock)
        self._clock = clock
        self._log = logger

    # -- start-up ----------------------------------------------------------------------------

    def start(self, coins: list[str], default_leverage: int = 1) -> ReconcileReport:
        """Configure the venue, then look up every order not settled there."""
        self.broker.prepare(coins, default_leverage)
        resolved = {
            row.order_link_id: self._resolve(row) for row in self.store.orders_in(LOOKED_UP)
        }
        positions = self.book()
        self._log.info(
            "reconciled %d unsettled orders %s; positions at the venue: %s",
            len(resolved),
            resolved or "",
            positions or "none",
        )
        return ReconcileReport(resolved, positions)

    def book(self) -> dict[str, str]:
        """The venue's positions as they are now, formatted for people."""
        return describe_book(self.broker.positions())

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
        return AccountState(
            self.broker.positions(),
            float(max(start - equity, 0)),
            state.get(HALTED) == "true",
            state.get(HALT_REASON, ""),
        )

    # -- one signal --------------------------------------------------------------------------

    def process(self, signal: TradeSignal) -> Decision:
        """Decide on one signal. Decisions of one mode are serialized across threads and
        processes (the Dagster job and `serve` may both run): the duplicate check, the guard's
        view of positions and the pending row are consistent with every other decision."""
        with self.store.decision_lock():
            decision = self._decide(signal)
            self.store.record(
                decision.signal_id,
                decision.symbol,
                decision.action,
                decision.reason,
                decision.order_link_id,
                self._clock(),
            )
        self._log.info(
            "%s %s: %s (%s)", signal.symbol, signal.signal_id[:12], decision.action, decision.reason
        )
        return decision

    def _decide(self, signal: TradeSignal) -> Decision:
        olid = order_link_id_for(signal.signal_id)
        existing = self.store.order(olid)
        if existing is not None and existing.status != "deferred":
            return self._redelivered(signal, olid, existing)
        try:
            instrument = self.broker.instrument(signal.symbol)
            price = self.broker.last_price(instrument.symbol)
            state = self.account_state()
        except OrderRejected as exc:
            return self.journal.final(signal, olid, "rejected", str(exc))
        except VenueUnavailable as exc:
            return Decision(signal.signal_id, signal.symbol, "deferred", str(exc), olid)
        return self._checked(signal, olid, instrument, price, self._halt_on_loss(state))

    def _halt_on_loss(self, state: AccountState) -> AccountState:
        """Reaching the daily loss limit halts trading, persistently, before anything else."""
        if state.daily_loss_usd < self.limits.max_daily_loss_usd or state.halted:
            return state
        reason = (
            f"daily loss {state.daily_loss_usd:.2f} reached {self.limits.max_daily_loss_usd:.2f}"
        )
        halt(self.store, reason, self._clock())
        self._log.error("HALT: %s", reason)
        return replace(state, halted=True, halt_reason=reason)

    def _checked(
        self,
        signal: TradeSignal,
        olid: str,
        instrument: Instrument,
        price: Decimal,
        state: AccountState,
    ) -> Decision:
        """Every rule before an order leaves: one idea one position, the guard, the sizes."""
        conflict = self._conflict(signal, olid, instrument, state)
        if conflict:
            return self._already_at_venue(signal, olid, instrument) or self.journal.final(
                signal, olid, "skipped", conflict
            )
        venue = _in_venue_units(signal, instrument)
        qty = quantize_qty(venue.qty, instrument)
        capped = ""
        if qty > instrument.market_qty_cap:
            capped = (
                f"; capped from {plain(qty)} to maxMktOrderQty {plain(instrument.market_qty_cap)}"
            )
            qty = quantize_qty(instrument.market_qty_cap, instrument)
        now = self._clock()
        blocked = guard_reason(venue, qty, price, state, self.limits, now)
        if blocked:
            return self.journal.final(signal, olid, "skipped", blocked)
        problem = order_size_problem(qty, price, instrument)
        if problem:
            return self.journal.final(signal, olid, "rejected", problem)
        return self._submit(signal, venue, olid, qty, instrument, now, capped)

    def _conflict(
        self, signal: TradeSignal, olid: str, instrument: Instrument, state: AccountState
    ) -> str | None:
        """One trade idea, one position: why this signal must wait, or None."""
        held = state.positions.get(instrument.symbol)
        if held is not None:
            book = f"{held.side} {human_qty(held.qty)} {instrument.symbol} @ {human_number(held.avg_price)}"
            if held.side == signal.side:
                return f"already {book}: one trade idea, one position"
            return (
                f"opposite to the open {book}: Helix neither flips nor hedges; the open "
                "position keeps its own stop-loss and take-profit"
            )
        for row in self.store.orders_in(IN_FLIGHT):
            if row.symbol == signal.symbol and row.order_link_id != olid:
                return (
                    f"order {row.order_link_id} for {signal.symbol} is still {row.status}: "
                    "one trade idea, one position"
                )
        return None

    def _already_at_venue(
        self, signal: TradeSignal, olid: str, instrument: Instrument
    ) -> Decision | None:
        """The position in the way may be this very signal's order, sent by an attempt that
        died before writing it down: then it is recorded, not skipped (and never resent)."""
        try:
            found = self.broker.find_order(olid, instrument.symbol)
        except VenueUnavailable:
            return None
        if found is None:
            return None
        self.journal.found(signal, instrument, found)
        action, reason = outcome(signal.side, found.qty, instrument.symbol, found)
        note = " (found at the venue by orderLinkId: sent before this decision, not resent)"
        return Decision(signal.signal_id, signal.symbol, action, reason + note, olid)

    def _submit(
        self,
        signal: TradeSignal,
        venue: TradeSignal,
        olid: str,
        qty: Decimal,
        instrument: Instrument,
        now: datetime,
        note: str,
    ) -> Decision:
        """Persist as pending, then submit; an unknown outcome is resolved by lookup, never resent."""
        order = OrderRequest(
            order_link_id=olid,
            symbol=instrument.symbol,
            side=signal.side,
            qty=qty,
            take_profit=quantize_price(venue.take_profit, instrument),
            stop_loss=quantize_price(venue.stop_loss, instrument),
            leverage=signal.leverage,
        )
        self.journal.pending(signal, order, now)
        try:
            result = self.broker.submit(order)
        except OrderNotSent as exc:
            return self.journal.settle(signal, olid, "deferred", "deferred", str(exc))
        except OrderOutcomeUnknown as exc:
            reason = f"{exc}; looked up again on redelivery and at start-up"
            return self.journal.settle(signal, olid, "unconfirmed", "unconfirmed", reason)
        except OrderRejected as exc:
            return self.journal.settle(signal, olid, "rejected", "rejected", str(exc))
        self.journal.record_result(result)
        action, reason = outcome(order.side, order.qty, order.symbol, result)
        lookup = f" ({result.lookup_note})" if result.lookup_note else ""
        return Decision(signal.signal_id, signal.symbol, action, reason + lookup + note, olid)

    def _redelivered(self, signal: TradeSignal, olid: str, row: OrderRecord) -> Decision:
        status = row.status if row.status not in LOOKED_UP else self._resolve(row)
        if status == "unconfirmed":
            reason = f"still not visible at the venue: {row.reason}"
            return Decision(signal.signal_id, signal.symbol, "unconfirmed", reason, olid)
        return Decision(
            signal.signal_id, signal.symbol, "duplicate", f"already handled: {status}", olid
        )

    def _resolve(self, row: OrderRecord) -> str:
        """Look an unsettled order up; past its acceptance deadline, absent means never placed."""
        olid = row.order_link_id
        try:
            venue_symbol = row.venue_symbol or self.broker.instrument(row.symbol).symbol
            found = self.broker.find_order(olid, venue_symbol)
        except (VenueUnavailable, OrderRejected) as exc:
            self._log.warning("%s: lookup failed (%s); it stays %s", olid, exc, row.status)
            return row.status
        if found is not None:
            self.journal.record_result(found)
            return found.status
        sent = row.submitted_at or row.created_at
        deadline = self.broker.acceptance_deadline(sent)
        if self._clock() > deadline:
            waited = int((self._clock() - sent).total_seconds())
            reason = (
                f"not at the venue {waited} s after it was sent, past its acceptance deadline "
                f"({deadline:%H:%M:%S} UTC): never placed"
            )
            self.journal.update(olid, status="not_placed", reason=reason)
            return "not_placed"
        self.journal.update(olid, status="unconfirmed")
        return "unconfirmed"


def _in_venue_units(signal: TradeSignal, instrument: Instrument) -> TradeSignal:
    """The signal as the instrument trades it: prices x multiplier, size / multiplier."""
    m = instrument.multiplier
    if m == 1:
        return replace(signal, symbol=instrument.symbol)
    return replace(
        signal,
        symbol=instrument.symbol,
        entry=signal.entry * m,
        stop_loss=signal.stop_loss * m,
        take_profit=signal.take_profit * m,
        qty=signal.qty / m,
    )
