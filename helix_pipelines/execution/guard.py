"""The risk guard: the executor's last word before an order leaves, independent of analytics.

Signals are already sized within the analytics risk caps; the guard re-checks what only the
executor knows at submit time: positions actually open, today's loss, the signal's age, and how
far the market moved away from the signal's entry.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from helix_pipelines.contracts.signals import TradeSignal
from helix_pipelines.execution.orders import Position


@dataclass(frozen=True, slots=True)
class GuardLimits:
    max_open_positions: int = 5
    max_order_notional_usd: float = 10_000.0
    max_symbol_notional_usd: float = 10_000.0
    max_daily_loss_usd: float = 300.0
    max_signal_age_seconds: float = 900.0
    max_price_deviation_pct: float = 1.0

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if not getattr(self, name) > 0:
                raise ValueError(
                    f"GuardLimits.{name} must be positive, got {getattr(self, name)!r}"
                )


@dataclass(frozen=True, slots=True)
class AccountState:
    positions: dict[str, Position]
    daily_loss_usd: float
    halted: bool
    halt_reason: str = ""


def guard_reason(
    signal: TradeSignal,
    qty: Decimal,
    price: Decimal,
    state: AccountState,
    limits: GuardLimits,
    now: datetime,
) -> str | None:
    """Why this order must not go out (the first limit it breaks), or None when all hold."""
    return next(_broken_limits(signal, qty, price, state, limits, now), None)


def _broken_limits(
    signal: TradeSignal,
    qty: Decimal,
    price: Decimal,
    state: AccountState,
    limits: GuardLimits,
    now: datetime,
) -> Iterator[str]:
    if state.halted:
        yield f"trading halted: {state.halt_reason} (reset with `helix executor reset-halt`)"
    if state.daily_loss_usd >= limits.max_daily_loss_usd:
        yield f"daily loss {state.daily_loss_usd:.2f} reached the limit {limits.max_daily_loss_usd:.2f}"
    age = (now - signal.created_at).total_seconds()
    if age > limits.max_signal_age_seconds:
        yield f"signal is stale: {age:.0f}s old, limit {limits.max_signal_age_seconds:.0f}s"
    deviation = abs(float(price) - signal.entry) / signal.entry * 100
    if deviation > limits.max_price_deviation_pct:
        yield (
            f"price {price} is {deviation:.2f}% from the signal entry {signal.entry:.6g} "
            f"(limit {limits.max_price_deviation_pct}%)"
        )
    if signal.symbol not in state.positions and len(state.positions) >= limits.max_open_positions:
        yield f"{len(state.positions)} positions open, limit {limits.max_open_positions}"
    notional = float(qty * price)
    if notional > limits.max_order_notional_usd:
        yield f"order notional {notional:.2f} above the limit {limits.max_order_notional_usd:.2f}"
    held = (
        float(state.positions[signal.symbol].notional) if signal.symbol in state.positions else 0.0
    )
    if held + notional > limits.max_symbol_notional_usd:
        yield (
            f"{signal.symbol} notional would be {held + notional:.2f}, "
            f"limit {limits.max_symbol_notional_usd:.2f}"
        )
