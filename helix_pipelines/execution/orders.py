"""Signals, instruments, orders and decisions, and the arithmetic that makes an order valid.

Quantities and prices are `Decimal` from the moment they meet an instrument: Bybit accepts
strings that are exact multiples of `qtyStep` / `tickSize`, and binary floats are not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Literal

Side = Literal["long", "short"]
Action = Literal["placed", "skipped", "duplicate", "rejected", "unconfirmed"]
ORDER_LINK_PREFIX = "hx-"


class InvalidSignal(ValueError):  # noqa: N818 - reads as what it is: an invalid signal
    """A signal that cannot be traded as given (missing or inconsistent fields)."""


@dataclass(frozen=True, slots=True)
class Signal:
    """The executor's view of one `trade_signals` row (warehouse) or stream entry (Redis)."""

    signal_id: str
    symbol: str
    side: Side
    entry: float
    stop_loss: float
    take_profit: float
    qty: float
    leverage: int
    created_at: datetime

    @classmethod
    def from_mapping(cls, row: Mapping[str, object]) -> Signal:
        try:
            created = row["created_at"]
            created_at = (
                created if isinstance(created, datetime) else datetime.fromisoformat(str(created))
            )
            signal = cls(
                signal_id=str(row["signal_id"]),
                symbol=str(row["symbol"]),
                side=str(row["side"]),  # type: ignore[arg-type]
                entry=float(row["entry"]),  # type: ignore[arg-type]
                stop_loss=float(row["stop_loss"]),  # type: ignore[arg-type]
                take_profit=float(row["take_profit"]),  # type: ignore[arg-type]
                qty=float(row["qty"]),  # type: ignore[arg-type]
                leverage=int(row["leverage"]),  # type: ignore[call-overload]
                created_at=created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidSignal(f"signal {row.get('signal_id')!r} is malformed: {exc}") from None
        signal.validate()
        return signal

    def validate(self) -> None:
        if self.side not in ("long", "short"):
            raise InvalidSignal(
                f"signal {self.signal_id}: side must be long or short, got {self.side!r}"
            )
        if not (self.qty > 0 and self.entry > 0 and self.leverage >= 1):
            raise InvalidSignal(
                f"signal {self.signal_id}: qty, entry and leverage must be positive"
            )
        below, above = (
            (self.stop_loss, self.take_profit)
            if self.side == "long"
            else (self.take_profit, self.stop_loss)
        )
        if not below < self.entry < above:
            raise InvalidSignal(
                f"signal {self.signal_id}: stop and target are not on both sides of entry"
            )

    @property
    def order_side(self) -> str:
        return "Buy" if self.side == "long" else "Sell"


def order_link_id_for(signal_id: str) -> str:
    """Deterministic Bybit orderLinkId (<= 36 chars): the same signal always maps to one order."""
    return ORDER_LINK_PREFIX + hashlib.sha256(signal_id.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str
    qty_step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    tick_size: Decimal
    min_notional: Decimal


@dataclass(frozen=True, slots=True)
class OrderRequest:
    order_link_id: str
    symbol: str
    side: str  # 'Buy' | 'Sell'
    qty: Decimal
    take_profit: Decimal
    stop_loss: Decimal
    leverage: int


@dataclass(frozen=True, slots=True)
class OrderResult:
    order_link_id: str
    venue_order_id: str
    status: str  # 'filled' | 'accepted' (resting) | 'rejected' | 'cancelled'
    avg_price: float | None
    qty: Decimal


@dataclass(frozen=True, slots=True)
class Position:
    symbol: str
    side: Side
    qty: Decimal
    avg_price: Decimal

    @property
    def notional(self) -> Decimal:
        return self.qty * self.avg_price


@dataclass(frozen=True, slots=True)
class Decision:
    signal_id: str
    symbol: str
    action: Action
    reason: str
    order_link_id: str | None = None


def quantize_qty(qty: float | Decimal, instrument: Instrument) -> Decimal:
    """Round down to the lot step (never more size than the signal asked for)."""
    steps = (Decimal(str(qty)) / instrument.qty_step).to_integral_value(rounding=ROUND_DOWN)
    return (steps * instrument.qty_step).quantize(instrument.qty_step)


def quantize_price(price: float | Decimal, instrument: Instrument) -> Decimal:
    """Round to the nearest tick."""
    ticks = (Decimal(str(price)) / instrument.tick_size).to_integral_value(rounding=ROUND_HALF_UP)
    return (ticks * instrument.tick_size).quantize(instrument.tick_size)


def order_size_problem(qty: Decimal, price: Decimal, instrument: Instrument) -> str | None:
    """Why the venue would refuse this size, or None."""
    if qty < instrument.min_qty:
        return f"qty {qty} below minOrderQty {instrument.min_qty} of {instrument.symbol}"
    if qty > instrument.max_qty:
        return f"qty {qty} above maxOrderQty {instrument.max_qty} of {instrument.symbol}"
    if qty * price < instrument.min_notional:
        return f"notional {qty * price} below minNotionalValue {instrument.min_notional} of {instrument.symbol}"
    return None
