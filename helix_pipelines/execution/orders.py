"""Instruments, orders, positions and decisions, and the arithmetic that makes an order valid.

Quantities and prices are `Decimal` from the moment they meet an instrument: Bybit accepts
strings that are exact multiples of `qtyStep` / `tickSize`, and binary floats are not.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from helix_pipelines.contracts.vocabulary import Action, Side

ORDER_LINK_PREFIX = "hx-"


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
    """A market order in the venue's units (`symbol` is the venue's instrument)."""

    order_link_id: str
    symbol: str
    side: Side
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
