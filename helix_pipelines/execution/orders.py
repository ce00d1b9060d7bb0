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
Action = Literal[
    "placed", "not_filled", "skipped", "duplicate", "rejected", "unconfirmed", "deferred"
]
"""What the executor did with a signal:
placed       the venue has the order (filled, partly filled, or working)
not_filled   the venue cancelled the market order with nothing filled (no position)
skipped      a limit or rule said no (the reason says which); final
duplicate    the signal was handled before; nothing sent
rejected     the venue (or the instrument's rules) refused it; final
unconfirmed  sent, but not visible at the venue yet: looked up again on redelivery and start-up
deferred     known not to be at the venue (rate limit, network error before the order left):
             decided afresh on redelivery
"""
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
    """The venue's trading rules of one instrument, and the coin it trades.

    `symbol` is the venue's name (1000PEPEUSDT); `coin` the name signals use (PEPE);
    `multiplier` coins per contract unit. Market orders are capped by `max_market_qty`.
    """

    symbol: str
    qty_step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    tick_size: Decimal
    min_notional: Decimal
    max_market_qty: Decimal | None = None
    coin: str = ""
    multiplier: int = 1

    @property
    def market_qty_cap(self) -> Decimal:
        return self.max_market_qty if self.max_market_qty is not None else self.max_qty


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
    """An order as the venue reports it. `status`: 'filled', 'partially_filled' (ended with part
    filled), 'cancelled' (ended with nothing filled), 'accepted' (still working) or 'rejected';
    `filled_qty` is the venue's cumExecQty, the truth about the position it opened."""

    order_link_id: str
    venue_order_id: str
    status: str
    avg_price: float | None
    qty: Decimal
    filled_qty: Decimal | None = None
    venue_status: str = ""
    lookup_note: str = ""
    """Set when the outcome came from a lookup, not the create answer: what happened first."""

    @property
    def filled(self) -> Decimal:
        return self.filled_qty if self.filled_qty is not None else Decimal(0)


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
        return (
            f"qty {plain(qty)} below minOrderQty {plain(instrument.min_qty)} of {instrument.symbol}"
        )
    if qty > instrument.max_qty:
        return (
            f"qty {plain(qty)} above maxOrderQty {plain(instrument.max_qty)} of {instrument.symbol}"
        )
    if qty * price < instrument.min_notional:
        return (
            f"notional {human_number(qty * price)} below minNotionalValue "
            f"{plain(instrument.min_notional)} of {instrument.symbol}"
        )
    return None


def plain(value: Decimal) -> str:
    """A decimal as the venue wants it: plain digits, never scientific notation (`9.9E-7`)."""
    return format(value, "f")


def human_qty(value: Decimal | float) -> str:
    """A quantity for people: no exponent, no trailing zeros, thousands grouped (`1,000,000`)."""
    return format(Decimal(str(value)).normalize(), ",f")


def human_number(value: Decimal | float, significant: int = 6) -> str:
    """A price or amount for people: `significant` digits, no exponent (`65,010.5`,
    `0.000019123`), where a float would print `6.501050000000001E+4` or 16 decimals."""
    number = Decimal(str(value))
    if not number.is_finite() or number == 0:
        return str(number) if not number.is_finite() else "0"
    places = max(significant - number.adjusted() - 1, 0)
    return format(number.quantize(Decimal(1).scaleb(-places)).normalize(), ",f")
