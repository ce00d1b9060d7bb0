"""Portfolio caps and validation: the set of plans to open inside every cap, and every rule a
plan or a set of plans breaks (what the blocking `signals_within_risk_caps` check runs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from helix_pipelines.analytics.risk import REL_TOL, RiskLimits, TradePlan, is_int, is_real
from helix_pipelines.analytics.sizing import liquidation_price
from helix_pipelines.contracts.vocabulary import SIDES


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
    could even offset each other), then the `max_open_positions` best. If their total notional exceeds
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
    kept = list(best.values())[: limits.max_open_positions]

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
        if not (is_real(value) and math.isfinite(value)):
            out.append(f"{name} {value!r} is not a finite number")
        elif name != "liquidation_price" and value <= 0:
            out.append(f"{name} {value!r} is not positive")
    lev = plan.leverage
    if not is_int(lev):
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
    if len(plans) > limits.max_open_positions:
        out.append(f"{len(plans)} plans exceed max_open_positions {limits.max_open_positions}")
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
