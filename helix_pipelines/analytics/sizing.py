"""Sizing one trade: stop and target from the clusters, size from the risk budget and a
fractional-Kelly bound, and the lowest leverage whose liquidation price clears the stop.

A weak edge (low win rate or low reward-to-risk) risks less, and a trade with no edge is not
taken; the lower the leverage, the farther away the position's own liquidation price, which must
stay beyond the stop by a buffer, so the stop closes the trade, not the exchange's liquidation
engine.
"""

from __future__ import annotations

import math

from helix_pipelines.analytics.risk import (
    REJECT_GEOMETRY,
    REJECT_KELLY,
    REJECT_LEVERAGE,
    REJECT_REWARD_TO_RISK,
    TARGET_OFFSET_ATR,
    RiskLimits,
    TradePlan,
    is_real,
)
from helix_pipelines.contracts.vocabulary import SIDES, Side


def kelly_fraction(win_rate: float, reward_to_risk: float) -> float:
    """Full-Kelly fraction of equity to risk, `p - (1 - p) / b`, clipped at 0 (no edge, no bet).

    `win_rate` is the probability the target is hit before the stop; `reward_to_risk` is the payoff
    per unit risked. Callers scale this down (fractional Kelly) because `p` is an estimate.
    """
    win_rate = _check_probability("win_rate", win_rate)
    if not (is_real(reward_to_risk) and math.isfinite(reward_to_risk) and reward_to_risk > 0):
        raise ValueError(f"reward_to_risk must be a positive finite number, got {reward_to_risk!r}")
    return max(0.0, win_rate - (1.0 - win_rate) / reward_to_risk)


def liquidation_price(
    side: Side, entry: float, leverage: int, maintenance_margin_rate: float
) -> float:
    """Isolated-margin liquidation estimate: where the initial margin (`1/leverage` of notional)
    minus the maintenance margin is used up.

    long: `entry * (1 - 1/leverage + mmr)`; short: `entry * (1 + 1/leverage - mmr)`.
    """
    if side == "long":
        return entry * (1.0 - 1.0 / leverage + maintenance_margin_rate)
    if side == "short":
        return entry * (1.0 + 1.0 / leverage - maintenance_margin_rate)
    raise ValueError(f"side must be 'long' or 'short', got {side!r}")


def _beyond(side: Side, price: float, reference: float) -> bool:
    """True when `price` is at or past `reference` in the adverse direction of `side`."""
    return price <= reference if side == "long" else price >= reference


def _liquidation_clear(
    side: Side, liq: float, stop: float, atr_value: float, limits: RiskLimits
) -> bool:
    buffer = limits.liquidation_buffer_atr * atr_value
    return _beyond(side, liq, stop - buffer if side == "long" else stop + buffer)


def _largest_at_most(value: float, cap: float, scale: float) -> float:
    """Largest `x <= value` with `x * scale <= cap` in floating point (caps hold exactly)."""
    x = value
    while x * scale > cap:
        x = math.nextafter(x, 0.0)
    return x


def _finite(name: str, value: float) -> float:
    if not is_real(value) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _check_probability(name: str, value: float) -> float:
    if not (is_real(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def _stop_and_target(
    side: Side,
    entry: float,
    cluster: float,
    magnet: float,
    atr_value: float,
    wick_buffer_atr: float,
) -> tuple[float, float] | str:
    """Stop beyond the same-side cluster by the wick buffer, target just ahead of the magnet; or
    the geometry problem that makes the trade impossible."""
    if side == "long":
        stop = cluster - wick_buffer_atr * atr_value
        target = magnet - TARGET_OFFSET_ATR * atr_value
        if not 0 < stop < entry:
            return (
                f"{REJECT_GEOMETRY}: long stop {stop:.10g} is not between 0 and entry {entry:.10g}"
            )
        if not target > entry:
            return f"{REJECT_GEOMETRY}: long target {target:.10g} is not above entry {entry:.10g}"
        return stop, target
    stop = cluster + wick_buffer_atr * atr_value
    target = magnet + TARGET_OFFSET_ATR * atr_value
    if not stop > entry:
        return f"{REJECT_GEOMETRY}: short stop {stop:.10g} is not above entry {entry:.10g}"
    if not 0 < target < entry:
        return (
            f"{REJECT_GEOMETRY}: short target {target:.10g} is not between 0 and entry {entry:.10g}"
        )
    return stop, target


def plan_trade(
    *,
    symbol: str,
    side: Side,
    entry: float,
    same_side_cluster_edge: float,
    opposite_magnet_edge: float,
    atr_value: float,
    wick_buffer_atr: float,
    limits: RiskLimits,
    win_rate: float = 0.5,
) -> TradePlan | str:
    """Size and leverage one candidate trade, or say why it should not be taken.

    long: stop = `same_side_cluster_edge - wick_buffer_atr * atr` (beyond the long-liquidation
    cluster below entry); target = `opposite_magnet_edge - 0.1 * atr` (just ahead of the magnet
    above). short: mirrored.

    Risk used = `min(limits.risk_fraction, limits.kelly_fraction * kelly(win_rate, rr))` of equity,
    so `qty = equity * risk / |entry - stop|`. Notional is then capped at the per-symbol cap and at
    what the margin can carry at the highest leverage whose liquidation price clears the stop by
    `liquidation_buffer_atr` ATR (qty is scaled down, never up: risk is a ceiling, not a target).
    Leverage is the lowest in `1..max_leverage` whose margin fits in equity and whose liquidation
    price clears the stop: the lowest leverage keeps liquidation farthest away.

    Returns a reason string (prefixed `geometry:`, `reward_to_risk:`, `kelly:` or `leverage:`) when
    the trade is unsound for market reasons; raises ValueError for malformed inputs.
    """
    if not isinstance(symbol, str) or not symbol:
        raise ValueError(f"symbol must be a non-empty string, got {symbol!r}")
    if side not in SIDES:
        raise ValueError(f"side must be 'long' or 'short', got {side!r}")
    entry = _finite("entry", entry)
    atr_value = _finite("atr_value", atr_value)
    wick_buffer_atr = _finite("wick_buffer_atr", wick_buffer_atr)
    if entry <= 0 or atr_value <= 0 or wick_buffer_atr < 0:
        raise ValueError(
            f"entry and atr_value must be positive and wick_buffer_atr >= 0, got entry={entry!r}, "
            f"atr_value={atr_value!r}, wick_buffer_atr={wick_buffer_atr!r}"
        )
    win_rate = _check_probability("win_rate", win_rate)
    geometry = _stop_and_target(
        side,
        entry,
        _finite("same_side_cluster_edge", same_side_cluster_edge),
        _finite("opposite_magnet_edge", opposite_magnet_edge),
        atr_value,
        wick_buffer_atr,
    )
    if isinstance(geometry, str):
        return geometry
    stop, target = geometry

    risk_per_unit = abs(entry - stop)
    rr = abs(target - entry) / risk_per_unit
    if rr < limits.min_reward_to_risk:
        return (
            f"{REJECT_REWARD_TO_RISK}: reward-to-risk {rr:.4g} is below the minimum "
            f"{limits.min_reward_to_risk:.4g}"
        )
    kelly = kelly_fraction(win_rate, rr)
    if kelly <= 0:
        return (
            f"{REJECT_KELLY}: no edge at win rate {win_rate:.4g} and reward-to-risk {rr:.4g} "
            f"(Kelly fraction {win_rate - (1 - win_rate) / rr:.4g})"
        )

    mmr = limits.maintenance_margin_rate
    safe = [
        lev
        for lev in range(1, limits.max_leverage + 1)
        if _liquidation_clear(
            side, liquidation_price(side, entry, lev, mmr), stop, atr_value, limits
        )
    ]
    if not safe:
        return (
            f"{REJECT_LEVERAGE}: even at 1x the liquidation price "
            f"{liquidation_price(side, entry, 1, mmr):.10g} is not "
            f"{limits.liquidation_buffer_atr:.4g} ATR beyond the stop {stop:.10g}"
        )

    equity = limits.account_equity_usd
    risk_budget = equity * min(limits.risk_fraction, limits.kelly_fraction * kelly)
    qty = _largest_at_most(risk_budget / risk_per_unit, risk_budget, risk_per_unit)
    notional_cap = min(limits.symbol_cap_usd, max(safe) * equity)
    if qty * entry > notional_cap:
        qty = _largest_at_most(notional_cap / entry, notional_cap, entry)
    notional = qty * entry
    leverage = next(lev for lev in safe if notional <= lev * equity)
    risk_usd = qty * risk_per_unit
    return TradePlan(
        symbol=symbol,
        side=side,
        entry=entry,
        stop_loss=stop,
        take_profit=target,
        reward_to_risk=rr,
        qty=qty,
        notional_usd=notional,
        leverage=leverage,
        risk_usd=risk_usd,
        risk_fraction=risk_usd / equity,
        liquidation_price=liquidation_price(side, entry, leverage, mmr),
    )
