"""Risk: volatility, wick statistics, position sizing, leverage and exposure caps.

This turns a candidate trade, given as "enter here, the same-side liquidation cluster is there, the
opposite magnet is over there", into a plan a trader can put on without being surprised:

- **Volatility** is Wilder's ATR of the snapshot's candles. Every buffer is in ATR, so a rule means
  the same thing on BTC and on a small-cap coin.
- **Stops** sit beyond the same-side cluster plus a wick buffer. Liquidation cascades overshoot:
  wicks pierce a cluster and snap back. `wick_overshoot_atr` measures how far wicks have overshot
  levels in these candles, so a stop is placed where a normal wick would not reach it.
- **Targets** sit just ahead of the opposite magnet (`TARGET_OFFSET_ATR`): price is drawn to a magnet
  but often turns just before it, so a target exactly on the magnet is often missed.
- **Size** risks a fixed fraction of equity, capped by a fractional-Kelly bound, so a weak edge
  (low win rate or low reward-to-risk) risks less, and a trade with no edge is not taken.
- **Leverage** is the lowest that fits the margin: the lower the leverage, the farther away the
  position's own liquidation price, which must stay beyond the stop by a buffer. That way the stop
  closes the trade, not the exchange's liquidation engine.
- **Exposure caps** limit notional per symbol and in total, and the number of open signals.

Pure functions over numpy and floats; no Dagster, no I/O. Prices are in quote units (USD for
USDT-margined perpetuals), sizes in base-asset units, money in USD.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Literal

import numpy as np

Side = Literal["long", "short"]
SIDES: tuple[Side, ...] = ("long", "short")

#: The take-profit sits this many ATR ahead of the opposite magnet, on the entry's side of it.
TARGET_OFFSET_ATR = 0.1
#: Wick overshoot (in ATR) assumed when the candles show no wick through any level.
DEFAULT_WICK_OVERSHOOT_ATR = 0.5
#: Relative tolerance for float comparisons in `plan_violations` / `portfolio_violations`.
REL_TOL = 1e-9

#: Prefixes of the reason strings `plan_trade` returns instead of a plan.
REJECT_GEOMETRY = "geometry"
REJECT_REWARD_TO_RISK = "reward_to_risk"
REJECT_KELLY = "kelly"
REJECT_LEVERAGE = "leverage"

_FRACTION_FIELDS = frozenset(
    {"risk_fraction", "kelly_fraction", "maintenance_margin_rate"},
)
_INT_FIELDS = frozenset({"max_leverage", "max_open_signals"})


def _is_real(value: object) -> bool:
    """A real number (numpy scalars included), but not a bool: `True` as a price is a bug."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The account's risk budget; every plan and every set of plans must stay inside it.

    Fractions (`risk_fraction`, `kelly_fraction`, `maintenance_margin_rate`) lie in (0, 1]; exposure
    caps are multiples of equity (1.0 = notional equal to the account's equity) and may exceed 1;
    ATR buffers and the minimum reward-to-risk are positive; counts and leverage are ints >= 1.
    """

    account_equity_usd: float = 10_000.0
    #: Fixed-fraction risk per trade: the most a single stop-out may cost (0.5% of equity).
    risk_fraction: float = 0.005
    #: Fractional-Kelly multiplier: the Kelly bound on risk is this times the full Kelly fraction.
    kelly_fraction: float = 0.25
    max_leverage: int = 10
    #: Maintenance margin rate used in the liquidation-price estimate (exchange tier 1 is ~0.5%).
    maintenance_margin_rate: float = 0.005
    #: The position's own liquidation price must lie at least this many ATR beyond the stop.
    liquidation_buffer_atr: float = 1.0
    min_reward_to_risk: float = 1.5
    #: Max notional per symbol, as a multiple of equity.
    max_symbol_exposure_fraction: float = 1.0
    #: Max total notional over all open plans, as a multiple of equity.
    max_total_exposure_fraction: float = 3.0
    max_open_signals: int = 10

    def __post_init__(self) -> None:
        for field in fields(self):
            name = field.name
            value = getattr(self, name)
            if name in _INT_FIELDS:
                if not _is_int(value) or value < 1:
                    raise ValueError(f"RiskLimits.{name} must be an int >= 1, got {value!r}")
                continue
            if not _is_real(value) or not math.isfinite(value) or value <= 0:
                raise ValueError(
                    f"RiskLimits.{name} must be a positive finite number, got {value!r}"
                )
            if name in _FRACTION_FIELDS and value > 1:
                raise ValueError(f"RiskLimits.{name} must be a fraction in (0, 1], got {value!r}")

    @property
    def symbol_cap_usd(self) -> float:
        """Largest notional allowed on one symbol."""
        return self.max_symbol_exposure_fraction * self.account_equity_usd

    @property
    def total_cap_usd(self) -> float:
        """Largest notional allowed over all open plans."""
        return self.max_total_exposure_fraction * self.account_equity_usd

    @property
    def risk_cap_usd(self) -> float:
        """Largest loss at the stop allowed on one plan."""
        return self.risk_fraction * self.account_equity_usd


@dataclass(frozen=True, slots=True)
class TradePlan:
    """One sized, leveraged trade: what to send to the broker and what it risks.

    `risk_usd` is the loss if the stop fills at its price (`qty * |entry - stop_loss|`, before fees
    and slippage); `risk_fraction` is that loss as a share of equity. `liquidation_price` is the
    isolated-margin estimate at `leverage` (exchange tiers may differ slightly; the ATR buffer
    between it and the stop absorbs that).
    """

    symbol: str
    side: Side
    entry: float
    stop_loss: float
    take_profit: float
    reward_to_risk: float
    qty: float
    notional_usd: float
    leverage: int
    risk_usd: float
    risk_fraction: float
    liquidation_price: float


# --------------------------------------------------------------------------------------------
# Volatility and wicks
# --------------------------------------------------------------------------------------------


def _as_series(name: str, values: np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: at least one candle is needed")
    if not np.all(np.isfinite(array)):
        bad = int(np.flatnonzero(~np.isfinite(array))[0])
        raise ValueError(f"{name} has a non-finite value {float(array[bad])!r} at index {bad}")
    return array


def _candles(
    high: np.ndarray, low: np.ndarray, close: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h, lo, c = _as_series("high", high), _as_series("low", low), _as_series("close", close)
    if not h.size == lo.size == c.size:
        raise ValueError(
            f"high, low and close must have the same length, got {h.size}, {lo.size}, {c.size}"
        )
    inverted = np.flatnonzero(h < lo)
    if inverted.size:
        i = int(inverted[0])
        raise ValueError(f"candle {i} has high {float(h[i])!r} below low {float(lo[i])!r}")
    return h, lo, c


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """Wilder's true range per candle: the candle's range widened to include any gap from the
    previous close, so overnight-style jumps count as volatility. The first candle has no previous
    close, so its true range is `high - low`.
    """
    h, lo, c = _candles(high, low, close)
    tr = h - lo
    if h.size > 1:
        prev_close = c[:-1]
        tr[1:] = np.maximum.reduce(
            [tr[1:], np.abs(h[1:] - prev_close), np.abs(lo[1:] - prev_close)]
        )
    return tr


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int = 14) -> float:
    """Average true range with Wilder's smoothing, as of the last candle.

    Seeded with the mean of the first `period` true ranges, then
    `atr = (atr_prev * (period - 1) + tr) / period` for each later candle. With fewer candles than
    `period` (a short heatmap range), the mean true range of what there is.
    """
    if not _is_int(period) or period < 1:
        raise ValueError(f"period must be an int >= 1, got {period!r}")
    tr = true_range(high, low, close)
    if tr.size < period:
        return float(tr.mean())
    value = float(tr[:period].mean())
    for x in tr[period:]:
        value = (value * (period - 1) + float(x)) / period
    return value


def wick_overshoot_atr(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    levels: np.ndarray,
    atr_value: float,
    quantile: float = 0.8,
) -> float:
    """How far wicks typically run past a level, in ATR: the stop buffer a cluster needs.

    A candle "wicks through" a level when its extreme crosses the level but its body stays on the
    near side, i.e. price probed past the level and was rejected. The body is approximated by the
    previous close (as the open) and the close, so the first candle, which has no previous close,
    is not scored. For a level below the body: `low < level <= min(prev_close, close)`, overshoot
    `(level - low) / atr`; for a level above the body: `high > level >= max(prev_close, close)`,
    overshoot `(high - level) / atr`. A candle that closes beyond the level broke it rather than
    wicked through it and is not counted.

    Returns the `quantile` of all overshoots (linear interpolation), or
    `DEFAULT_WICK_OVERSHOOT_ATR` when no candle wicked through any level.
    """
    h, lo, c = _candles(high, low, close)
    if not (_is_real(atr_value) and math.isfinite(atr_value) and atr_value > 0):
        raise ValueError(f"atr_value must be a positive finite number, got {atr_value!r}")
    if not (_is_real(quantile) and 0.0 <= quantile <= 1.0):
        raise ValueError(f"quantile must be in [0, 1], got {quantile!r}")
    lv = np.asarray(levels, dtype=np.float64)
    if lv.ndim != 1:
        raise ValueError(f"levels must be one-dimensional, got shape {lv.shape}")
    if not np.all(np.isfinite(lv)):
        raise ValueError("levels has a non-finite value")
    if lv.size == 0 or h.size < 2:
        return DEFAULT_WICK_OVERSHOOT_ATR

    prev_close, cur_close = c[:-1], c[1:]
    body_lo = np.minimum(prev_close, cur_close)[:, None]
    body_hi = np.maximum(prev_close, cur_close)[:, None]
    hi, lw = h[1:, None], lo[1:, None]
    level = lv[None, :]
    below = (lw < level) & (level <= body_lo)
    above = (hi > level) & (level >= body_hi)
    overshoots = np.concatenate(
        [
            np.broadcast_to(level - lw, below.shape)[below],
            np.broadcast_to(hi - level, above.shape)[above],
        ]
    )
    if overshoots.size == 0:
        return DEFAULT_WICK_OVERSHOOT_ATR
    return float(np.quantile(overshoots / atr_value, quantile))


# --------------------------------------------------------------------------------------------
# Sizing and leverage
# --------------------------------------------------------------------------------------------


def kelly_fraction(win_rate: float, reward_to_risk: float) -> float:
    """Full-Kelly fraction of equity to risk, `p - (1 - p) / b`, clipped at 0 (no edge, no bet).

    `win_rate` is the probability the target is hit before the stop; `reward_to_risk` is the payoff
    per unit risked. Callers scale this down (fractional Kelly) because `p` is an estimate.
    """
    win_rate = _check_probability("win_rate", win_rate)
    if not (_is_real(reward_to_risk) and math.isfinite(reward_to_risk) and reward_to_risk > 0):
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
    if not _is_real(value) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _check_probability(name: str, value: float) -> float:
    if not (_is_real(value) and 0.0 <= value <= 1.0):
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


# --------------------------------------------------------------------------------------------
# Portfolio caps and validation
# --------------------------------------------------------------------------------------------


def _scaled(plan: TradePlan, factor: float, equity: float) -> TradePlan:
    qty = plan.qty * factor
    risk_usd = qty * abs(plan.entry - plan.stop_loss)
    return replace(
        plan,
        qty=qty,
        notional_usd=qty * plan.entry,
        risk_usd=risk_usd,
        risk_fraction=risk_usd / equity,
    )


def apply_exposure_caps(plans: Sequence[TradePlan], limits: RiskLimits) -> list[TradePlan]:
    """The set of plans to actually open, best reward-to-risk first, inside every portfolio cap.

    One plan per symbol (its best reward-to-risk; two plans on one symbol would stack exposure and
    could even offset each other), then the `max_open_signals` best. If their total notional exceeds
    `max_total_exposure_fraction * equity`, every plan is scaled by the same factor (qty, notional,
    risk): the relative weighting of the ideas is kept, prices and leverage are unchanged (margin
    only shrinks). Ties on reward-to-risk keep input order.

    Raises ValueError when an input plan already violates its own limits (`plan_violations`):
    that is a bug upstream, and silently dropping or resizing it would hide it.
    """
    for plan in plans:
        problems = plan_violations(plan, limits)
        if problems:
            raise ValueError(f"plan for {plan.symbol!r} violates its limits: {'; '.join(problems)}")
    ranked = sorted(plans, key=lambda p: -p.reward_to_risk)
    best: dict[str, TradePlan] = {}
    for plan in ranked:
        best.setdefault(plan.symbol, plan)
    kept = list(best.values())[: limits.max_open_signals]

    cap = limits.total_cap_usd
    total = math.fsum(p.notional_usd for p in kept)
    if total <= cap:
        return kept
    factor = cap / total
    equity = limits.account_equity_usd
    scaled = [_scaled(p, factor, equity) for p in kept]
    while math.fsum(p.notional_usd for p in scaled) > cap:
        factor *= 1.0 - 1e-12
        scaled = [_scaled(p, factor, equity) for p in kept]
    return scaled


def _exceeds(value: float, cap: float) -> bool:
    return value > cap + REL_TOL * abs(cap)


def _differs(value: float, expected: float) -> bool:
    return not math.isclose(value, expected, rel_tol=REL_TOL, abs_tol=1e-12)


def _field_violations(plan: TradePlan) -> list[str]:
    if plan.side not in SIDES:
        return [f"side {plan.side!r} is not 'long' or 'short'"]
    out: list[str] = []
    for name in (
        "entry",
        "stop_loss",
        "take_profit",
        "reward_to_risk",
        "qty",
        "notional_usd",
        "risk_usd",
        "risk_fraction",
        "liquidation_price",
    ):
        value = getattr(plan, name)
        if not (_is_real(value) and math.isfinite(value)):
            out.append(f"{name} {value!r} is not a finite number")
        elif name != "liquidation_price" and value <= 0:
            out.append(f"{name} {value!r} is not positive")
    lev = plan.leverage
    if not _is_int(lev):
        out.append(f"leverage {lev!r} is not an int")
    return out


def _geometry_violations(plan: TradePlan, limits: RiskLimits) -> list[str]:
    out: list[str] = []
    long = plan.side == "long"
    entry, stop, target = plan.entry, plan.stop_loss, plan.take_profit
    if (stop >= entry) if long else (stop <= entry):
        out.append(f"stop_loss {stop!r} is not {'below' if long else 'above'} entry {entry!r}")
    if (target <= entry) if long else (target >= entry):
        out.append(f"take_profit {target!r} is not {'above' if long else 'below'} entry {entry!r}")
    if stop != entry:
        rr = abs(target - entry) / abs(entry - stop)
        if _differs(plan.reward_to_risk, rr):
            out.append(f"reward_to_risk {plan.reward_to_risk!r} does not match the prices ({rr!r})")
    if plan.reward_to_risk < limits.min_reward_to_risk * (1 - REL_TOL):
        out.append(
            f"reward_to_risk {plan.reward_to_risk!r} is below the minimum "
            f"{limits.min_reward_to_risk!r}"
        )
    return out


def _size_violations(plan: TradePlan, limits: RiskLimits) -> list[str]:
    out: list[str] = []
    equity = limits.account_equity_usd
    risk = plan.qty * abs(plan.entry - plan.stop_loss)
    if _differs(plan.risk_usd, risk):
        out.append(f"risk_usd {plan.risk_usd!r} != qty * |entry - stop| ({risk!r})")
    if _exceeds(plan.risk_usd, limits.risk_cap_usd):
        out.append(f"risk_usd {plan.risk_usd!r} exceeds the per-trade cap {limits.risk_cap_usd!r}")
    if _differs(plan.risk_fraction, plan.risk_usd / equity):
        out.append(
            f"risk_fraction {plan.risk_fraction!r} != risk_usd / equity ({plan.risk_usd / equity!r})"
        )
    if _exceeds(plan.risk_fraction, limits.risk_fraction):
        out.append(
            f"risk_fraction {plan.risk_fraction!r} exceeds the limit {limits.risk_fraction!r}"
        )
    if _differs(plan.notional_usd, plan.qty * plan.entry):
        out.append(f"notional_usd {plan.notional_usd!r} != qty * entry ({plan.qty * plan.entry!r})")
    if _exceeds(plan.notional_usd, limits.symbol_cap_usd):
        out.append(
            f"notional_usd {plan.notional_usd!r} exceeds the per-symbol cap "
            f"{limits.symbol_cap_usd!r}"
        )
    return out


def _leverage_violations(plan: TradePlan, limits: RiskLimits, atr_value: float | None) -> list[str]:
    lev, stop = plan.leverage, plan.stop_loss
    if not 1 <= lev <= limits.max_leverage:
        return [f"leverage {lev!r} is outside 1..{limits.max_leverage}"]
    out: list[str] = []
    equity = limits.account_equity_usd
    if _exceeds(plan.notional_usd, lev * equity):
        out.append(f"margin {plan.notional_usd / lev!r} at {lev}x exceeds equity {equity!r}")
    liq = liquidation_price(plan.side, plan.entry, lev, limits.maintenance_margin_rate)
    if _differs(plan.liquidation_price, liq):
        out.append(f"liquidation_price {plan.liquidation_price!r} != estimate at {lev}x ({liq!r})")
    long = plan.side == "long"
    if atr_value is None:
        clear = liq < stop if long else liq > stop
        wanted = "strictly"
    else:
        buffer = limits.liquidation_buffer_atr * atr_value
        bound = stop - buffer if long else stop + buffer
        slack = REL_TOL * abs(bound)
        clear = liq <= bound + slack if long else liq >= bound - slack
        wanted = f"by {limits.liquidation_buffer_atr!r} ATR ({buffer!r})"
    if not clear:
        out.append(f"liquidation_price {liq!r} is not beyond the stop {stop!r} {wanted}")
    return out


def plan_violations(
    plan: TradePlan, limits: RiskLimits, *, atr_value: float | None = None
) -> list[str]:
    """Every rule `plan` breaks under `limits`; `[]` when it is sound. Used by a blocking check.

    Checks geometry (stop beyond entry, target ahead), the reward-to-risk floor, per-trade risk,
    per-symbol notional, leverage range and margin, and that the liquidation price is beyond the
    stop: by `liquidation_buffer_atr * atr_value` when `atr_value` is given (a plan does not carry
    its ATR, so without it only "strictly beyond" can be checked). Also checks that derived fields
    agree (notional = qty * entry, risk = qty * |entry - stop|, rr and liquidation price from the
    prices), so a corrupted row cannot pass. Comparisons allow `REL_TOL` relative slack.
    """
    out = _field_violations(plan)
    if out:
        return out
    return [
        *_geometry_violations(plan, limits),
        *_size_violations(plan, limits),
        *_leverage_violations(plan, limits, atr_value),
    ]


def portfolio_violations(plans: Sequence[TradePlan], limits: RiskLimits) -> list[str]:
    """Every portfolio-level cap a set of open plans breaks (count, one per symbol, total notional),
    plus each plan's own violations prefixed by its symbol; `[]` when all is within limits.
    """
    out: list[str] = []
    if len(plans) > limits.max_open_signals:
        out.append(f"{len(plans)} plans exceed max_open_signals {limits.max_open_signals}")
    symbols = [p.symbol for p in plans]
    duplicates = sorted({s for s in symbols if symbols.count(s) > 1})
    if duplicates:
        out.append(f"more than one plan for {', '.join(duplicates)}")
    total = math.fsum(p.notional_usd for p in plans)
    if _exceeds(total, limits.total_cap_usd):
        out.append(f"total notional {total!r} exceeds the cap {limits.total_cap_usd!r}")
    for plan in plans:
        out.extend(f"{plan.symbol}: {problem}" for problem in plan_violations(plan, limits))
    return out
