"""The executor's order journal: every write to `executor_orders`, and the words a decision is
explained in.

Grain: one OrderRecord per signal, keyed by the signal's deterministic orderLinkId. The row is
written *before* an order leaves (`pending`), updated with whatever the venue says, and a signal
decided without an order gets a row too (`final`), so a redelivery is recognised as handled.
Rewriting a row with the same values changes nothing: every write is an upsert on the key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from helix_pipelines.contracts.records import OrderRecord
from helix_pipelines.contracts.signals import TradeSignal
from helix_pipelines.contracts.vocabulary import Action, OrderStatus, Side
from helix_pipelines.execution.orders import (
    Decision,
    Instrument,
    OrderRequest,
    OrderResult,
    Position,
    human_number,
    human_qty,
    plain,
)
from helix_pipelines.execution.ports import ExecutorStore


class OrderJournal:
    """What the executor remembers of each signal's order, in one executor mode's store."""

    def __init__(self, store: ExecutorStore, clock: Callable[[], datetime]) -> None:
        self.store = store
        self._clock = clock

    def pending(self, signal: TradeSignal, order: OrderRequest, now: datetime) -> None:
        """Written before the submit: a crash after it leaves a row to look up, never a guess."""
        self.store.save_order(
            OrderRecord(
                order_link_id=order.order_link_id,
                signal_id=signal.signal_id,
                symbol=signal.symbol,
                side=order.side,
                status="pending",
                created_at=now,
                updated_at=now,
                leverage=signal.leverage,
                qty=plain(order.qty),
                venue_symbol=order.symbol,
                take_profit=plain(order.take_profit),
                stop_loss=plain(order.stop_loss),
                submitted_at=now,
            )
        )

    def found(self, signal: TradeSignal, instrument: Instrument, result: OrderResult) -> None:
        """An order found at the venue that this journal had no row for (an attempt that died
        between sending and writing down)."""
        now = self._clock()
        self.store.save_order(
            OrderRecord(
                order_link_id=result.order_link_id,
                signal_id=signal.signal_id,
                symbol=signal.symbol,
                side=signal.side,
                status=result.status,  # type: ignore[arg-type]
                created_at=now,
                updated_at=now,
                leverage=signal.leverage,
                qty=plain(result.qty),
                venue_symbol=instrument.symbol,
            )
        )
        self.record_result(result)

    def final(self, signal: TradeSignal, olid: str, action: Action, reason: str) -> Decision:
        """A decision without an order (skipped, rejected before sending), remembered so a
        redelivery is a duplicate, not a second look."""
        now = self._clock()
        self.store.save_order(
            OrderRecord(
                order_link_id=olid,
                signal_id=signal.signal_id,
                symbol=signal.symbol,
                side=signal.side,
                status=action,  # type: ignore[arg-type]
                created_at=now,
                updated_at=now,
                leverage=signal.leverage,
                reason=reason,
            )
        )
        return Decision(signal.signal_id, signal.symbol, action, reason, olid)

    def settle(
        self, signal: TradeSignal, olid: str, status: OrderStatus, action: Action, reason: str
    ) -> Decision:
        self.update(olid, status=status, reason=reason)
        return Decision(signal.signal_id, signal.symbol, action, reason, olid)

    def record_result(self, result: OrderResult) -> None:
        self.update(
            result.order_link_id,
            status=result.status,
            venue_order_id=result.venue_order_id,
            avg_price=result.avg_price,
            filled_qty=plain(result.filled),
            venue_status=result.venue_status,
        )

    def update(self, olid: str, **changes: Any) -> None:
        row = self.store.order(olid)
        if row is not None:
            self.store.save_order(replace(row, **changes, updated_at=self._clock()))


def outcome(side: Side, qty: Decimal, symbol: str, result: OrderResult) -> tuple[Action, str]:
    """The decision a venue answer to an order (`side`, `qty` of venue `symbol`) makes, in
    words a trader reads."""
    what = f"{side} {human_qty(qty)} {symbol}"
    at = f" at {human_number(result.avg_price)}" if result.avg_price else ""
    venue = f" (Bybit: {result.venue_status})" if result.venue_status else ""
    if result.status == "filled":
        return "placed", f"{what} filled{at}"
    if result.status == "partially_filled":
        return "placed", (
            f"{what}: {human_qty(result.filled)} filled{at}, the rest cancelled by the venue{venue}"
        )
    if result.status == "cancelled":
        return "not_filled", f"{what}: cancelled by the venue with nothing filled{venue}"
    if result.status == "accepted":
        return (
            "placed",
            f"{what} working at the venue, {human_qty(result.filled)} filled so far{venue}",
        )
    return "rejected", f"{what} {result.status}{venue}"


def describe_book(positions: dict[str, Position]) -> dict[str, str]:
    """Positions for people: plain quantities and prices, no exponents, no float noise."""
    return {
        symbol: f"{p.side} {human_qty(p.qty)} @ {human_number(p.avg_price)}"
        for symbol, p in sorted(positions.items())
    }
