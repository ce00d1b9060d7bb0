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
- **Exposure caps** limit notional per symbol and in total, and the number of open positions.

This module holds the budget (`RiskLimits`) and the plan (`TradePlan`); `volatility` has the ATR
and wick statistics, `sizing` the plan of one trade, `caps` the portfolio caps and the validation
a blocking check runs. Pure functions over numpy and floats; no Dagster, no I/O. Prices are in
quote units (USD for USDT-margined perpetuals), sizes in base-asset units, money in USD.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields

from helix_pipelines.contracts.vocabulary import Side

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
_INT_FIELDS = frozenset({"max_leverage", "max_open_positions"})


def is_real(value: object) -> bool:
    """A real number (numpy scalars included), but not a bool: `True` as a price is a bug."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_int(value: object) -> bool:
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
    max_open_positions: int = 5

    def __post_init__(self) -> None:
        for field in fields(self):
            name = field.name
            value = getattr(self, name)
            if name in _INT_FIELDS:
                if not is_int(value) or value < 1:
                    raise ValueError(f"RiskLimits.{name} must be an int >= 1, got {value!r}")
                continue
            if not is_real(value) or not math.isfinite(value) or value <= 0:
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
