"""Risk math: hand-computed ATR / wick / sizing expectations and property-based cap invariants."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from helix_pipelines.analytics.caps import (
    apply_exposure_caps,
    plan_violations,
    portfolio_violations,
)
from helix_pipelines.analytics.risk import (
    DEFAULT_WICK_OVERSHOOT_ATR,
    REJECT_GEOMETRY,
    REJECT_KELLY,
    REJECT_LEVERAGE,
    REJECT_REWARD_TO_RISK,
    RiskLimits,
    TradePlan,
)
from helix_pipelines.analytics.sizing import kelly_fraction, liquidation_price, plan_trade
from helix_pipelines.analytics.volatility import atr, true_range, wick_overshoot_atr

REASONS = (REJECT_GEOMETRY, REJECT_KELLY, REJECT_LEVERAGE, REJECT_REWARD_TO_RISK)

# Five candles. True range (first = high - low; then max(h - l, |h - prev_c|, |l - prev_c|)):
#   0: h 10.0 l  9.0 c  9.5            -> 1.0
#   1: h 11.0 l 10.0 c 10.8  prev 9.5  -> max(1.0, 1.5, 0.5) = 1.5  (gap up from the close)
#   2: h 12.0 l 10.5 c 11.0  prev 10.8 -> max(1.5, 1.2, 0.3) = 1.5
#   3: h 10.6 l 10.0 c 10.2  prev 11.0 -> max(0.6, 0.4, 1.0) = 1.0  (gap down)
#   4: h 13.0 l 11.5 c 12.5  prev 10.2 -> max(1.5, 2.8, 1.3) = 2.8  (gap up)
HIGH = np.array([10.0, 11.0, 12.0, 10.6, 13.0])
LOW = np.array([9.0, 10.0, 10.5, 10.0, 11.5])
CLOSE = np.array([9.5, 10.8, 11.0, 10.2, 12.5])


def arrays(*rows: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    high, low, close = zip(*rows, strict=True)
    return np.array(high), np.array(low), np.array(close)


# --------------------------------------------------------------------------------------------
# True range and ATR
# --------------------------------------------------------------------------------------------


def test_true_range_of_known_candles() -> None:
    np.testing.assert_allclose(true_range(HIGH, LOW, CLOSE), [1.0, 1.5, 1.5, 1.0, 2.8])


def test_atr_period_3_is_wilder_smoothed() -> None:
    # seed = mean(1.0, 1.5, 1.5) = 4/3
    # candle 3: (4/3 * 2 + 1.0) / 3 = 11/9
    # candle 4: (11/9 * 2 + 2.8) / 3 = (110/45 + 126/45) / 3 = 236/135 = 1.748148...
    assert atr(HIGH, LOW, CLOSE, period=3) == pytest.approx(236 / 135, rel=1e-12)


def test_atr_with_exactly_period_candles_is_the_seed_mean() -> None:
    assert atr(HIGH, LOW, CLOSE, period=5) == pytest.approx(7.8 / 5, rel=1e-12)


def test_atr_with_fewer_candles_than_period_is_the_mean_true_range() -> None:
    assert atr(HIGH, LOW, CLOSE, period=14) == pytest.approx(1.56, rel=1e-12)
    assert atr(HIGH[:1], LOW[:1], CLOSE[:1]) == pytest.approx(1.0)


def test_atr_period_1_is_the_last_true_range() -> None:
    assert atr(HIGH, LOW, CLOSE, period=1) == pytest.approx(2.8)


def test_wilder_recursion_decays_a_shock_by_period_minus_one_over_period() -> None:
    # Closes all 10.0 and ranges 9.5..10.5 give TR 1.0 each; one shock candle 8..12 gives TR 4.0.
    calm = (10.5, 9.5, 10.0)
    shock = (12.0, 8.0, 10.0)
    high, low, close = arrays(calm, calm, calm, shock, calm, calm)
    np.testing.assert_allclose(true_range(high, low, close), [1, 1, 1, 4, 1, 1])
    # seed 1.0; shock: (1*2 + 4)/3 = 2.0; then (2*2 + 1)/3 = 5/3; then (5/3*2 + 1)/3 = 13/9
    assert atr(high[:4], low[:4], close[:4], period=3) == pytest.approx(2.0)
    assert atr(high[:5], low[:5], close[:5], period=3) == pytest.approx(5 / 3)
    assert atr(high, low, close, period=3) == pytest.approx(13 / 9)


@pytest.mark.parametrize(
    ("high", "low", "close", "period", "message"),
    [
        ([], [], [], 3, "high is empty"),
        ([1.0, 2.0], [0.5], [1.0, 1.5], 3, "same length"),
        (
            [1.0, float("nan")],
            [0.5, 1.0],
            [1.0, 1.5],
            3,
            "high has a non-finite value nan at index 1",
        ),
        ([1.0, 2.0], [0.5, 1.0], [1.0, float("inf")], 3, "close has a non-finite value"),
        ([1.0, 2.0], [0.5, 2.5], [1.0, 2.0], 3, "candle 1 has high 2.0 below low 2.5"),
        ([[1.0]], [[0.5]], [[1.0]], 3, "high must be one-dimensional"),
        ([1.0], [0.5], [1.0], 0, "period must be an int >= 1, got 0"),
        ([1.0], [0.5], [1.0], 2.0, "period must be an int >= 1, got 2.0"),
    ],
)
def test_atr_rejects_bad_input(high, low, close, period, message) -> None:
    with pytest.raises(ValueError, match=message):
        atr(np.array(high), np.array(low), np.array(close), period=period)


# --------------------------------------------------------------------------------------------
# Wick overshoot
# --------------------------------------------------------------------------------------------

# Levels 100 and 110, ATR 2. Body = [min, max] of (previous close, close).
WICK_CANDLES = arrays(
    (105.0, 103.0, 104.0),  # 0: first candle, no previous close: not scored
    (106.0, 99.0, 105.0),  # 1: body 104..105; low 99 < 100 <= 104 -> (100 - 99) / 2 = 0.5
    (111.5, 104.0, 108.0),  # 2: body 105..108; high 111.5 > 110 >= 108 -> 1.5 / 2 = 0.75
    (109.0, 97.0, 98.0),  # 3: closes below 100: a break, not a wick -> nothing
    (101.0, 96.0, 99.0),  # 4: body 98..99; high 101 > 100 >= 99 -> (101 - 100) / 2 = 0.5
    (99.5, 97.0, 98.0),  # 5: nothing reaches a level
    (102.0, 97.5, 99.8),  # 6: body 98..99.8; high 102 > 100 >= 99.8 -> 2 / 2 = 1.0
    (100.0, 99.0, 99.5),  # 7: high == 100 only touches the level -> nothing
)
WICK_LEVELS = np.array([100.0, 110.0])


def test_wick_overshoot_quantiles_of_a_crafted_series() -> None:
    high, low, close = WICK_CANDLES
    # overshoots sorted: [0.5, 0.5, 0.75, 1.0]; q=0.8 -> position 2.4 -> 0.75 + 0.4 * 0.25 = 0.85
    assert wick_overshoot_atr(high, low, close, WICK_LEVELS, 2.0) == pytest.approx(0.85)
    # q=0.5 -> position 1.5 -> 0.5 + 0.5 * 0.25 = 0.625
    assert wick_overshoot_atr(high, low, close, WICK_LEVELS, 2.0, quantile=0.5) == pytest.approx(
        0.625
    )
    assert wick_overshoot_atr(high, low, close, WICK_LEVELS, 2.0, quantile=1.0) == pytest.approx(
        1.0
    )
    assert wick_overshoot_atr(high, low, close, WICK_LEVELS, 2.0, quantile=0.0) == pytest.approx(
        0.5
    )
    # The same overshoots measured with a 4.0 ATR are half as many ATR.
    assert wick_overshoot_atr(high, low, close, WICK_LEVELS, 4.0) == pytest.approx(0.425)


def test_wick_overshoot_defaults_when_no_wick_crosses_a_level() -> None:
    high, low, close = WICK_CANDLES
    assert (
        wick_overshoot_atr(high, low, close, np.array([200.0]), 2.0) == DEFAULT_WICK_OVERSHOOT_ATR
    )
    assert wick_overshoot_atr(high, low, close, np.array([]), 2.0) == DEFAULT_WICK_OVERSHOOT_ATR
    assert DEFAULT_WICK_OVERSHOOT_ATR == 0.5


def test_wick_overshoot_ignores_the_first_candle_and_breaks() -> None:
    # The first candle's long lower wick cannot be scored (no previous close as its open).
    high, low, close = arrays((105.0, 90.0, 104.0))
    assert (
        wick_overshoot_atr(high, low, close, np.array([100.0]), 1.0) == DEFAULT_WICK_OVERSHOOT_ATR
    )
    # A candle that closes through the level broke it; only the later wick-through counts.
    high, low, close = arrays((105.0, 103.0, 104.0), (104.5, 95.0, 97.0), (103.0, 96.0, 99.0))
    # candle 1: body 97..104 contains 100 -> nothing; candle 2: body 97..99, high 103 > 100 -> 3.0
    assert wick_overshoot_atr(high, low, close, np.array([100.0]), 1.0) == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("levels", "atr_value", "quantile", "message"),
    [
        ([100.0], 0.0, 0.8, "atr_value must be a positive finite number"),
        ([100.0], float("nan"), 0.8, "atr_value must be a positive finite number"),
        ([100.0], 1.0, 1.5, "quantile must be in"),
        ([float("nan")], 1.0, 0.8, "levels has a non-finite value"),
        ([[100.0]], 1.0, 0.8, "levels must be one-dimensional"),
    ],
)
def test_wick_overshoot_rejects_bad_input(levels, atr_value, quantile, message) -> None:
    high, low, close = WICK_CANDLES
    with pytest.raises(ValueError, match=message):
        wick_overshoot_atr(high, low, close, np.array(levels), atr_value, quantile=quantile)


# --------------------------------------------------------------------------------------------
# Kelly and liquidation price
# --------------------------------------------------------------------------------------------


def test_kelly_fraction_hand_values() -> None:
    assert kelly_fraction(0.6, 2.0) == pytest.approx(0.4)  # 0.6 - 0.4 / 2
    assert kelly_fraction(0.5, 2.5) == pytest.approx(0.3)  # 0.5 - 0.5 / 2.5
    assert kelly_fraction(0.5, 1.0) == 0.0  # a coin flip at even money has no edge
    assert kelly_fraction(0.3, 2.0) == 0.0  # 0.3 - 0.35 < 0 is clipped
    assert kelly_fraction(1.0, 0.5) == 1.0


@pytest.mark.parametrize(
    ("win_rate", "rr", "message"),
    [
        (1.2, 2.0, "win_rate"),
        (-0.1, 2.0, "win_rate"),
        (0.5, 0.0, "reward_to_risk"),
        (0.5, math.inf, "reward_to_risk"),
    ],
)
def test_kelly_fraction_rejects_bad_input(win_rate: float, rr: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        kelly_fraction(win_rate, rr)


def test_liquidation_price_formula() -> None:
    assert liquidation_price("long", 100.0, 10, 0.005) == pytest.approx(90.5)  # 100*(1-0.1+0.005)
    assert liquidation_price("short", 100.0, 10, 0.005) == pytest.approx(109.5)  # 100*(1+0.1-0.005)
    assert liquidation_price("long", 100.0, 1, 0.005) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="side"):
        liquidation_price("flat", 100.0, 1, 0.005)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# plan_trade: hand-computed plans
# --------------------------------------------------------------------------------------------


def long_plan(limits: RiskLimits, **overrides: float) -> TradePlan | str:
    args: dict = {
        "symbol": "BTCUSDT",
        "side": "long",
        "entry": 100.0,
        "same_side_cluster_edge": 98.5,
        "opposite_magnet_edge": 105.1,
        "atr_value": 1.0,
        "wick_buffer_atr": 0.5,
        "limits": limits,
    }
    args.update(overrides)
    return plan_trade(**args)


def short_plan(limits: RiskLimits, **overrides: float) -> TradePlan | str:
    args: dict = {
        "symbol": "ETHUSDT",
        "side": "short",
        "entry": 50.0,
        "same_side_cluster_edge": 50.3,
        "opposite_magnet_edge": 48.04,
        "atr_value": 0.4,
        "wick_buffer_atr": 0.5,
        "limits": limits,
    }
    args.update(overrides)
    return plan_trade(**args)


def test_long_plan_hand_computed() -> None:
    limits = RiskLimits(risk_fraction=0.05, max_symbol_exposure_fraction=3.0)
    plan = long_plan(limits)
    assert isinstance(plan, TradePlan)
    # stop = 98.5 - 0.5 * 1.0 = 98.0; target = 105.1 - 0.1 * 1.0 = 105.0; rr = 5 / 2 = 2.5
    assert (plan.symbol, plan.side, plan.entry) == ("BTCUSDT", "long", 100.0)
    assert plan.stop_loss == pytest.approx(98.0)
    assert plan.take_profit == pytest.approx(105.0)
    assert plan.reward_to_risk == pytest.approx(2.5)
    # Kelly bound 0.25 * (0.5 - 0.5 / 2.5) = 0.075 > 0.05 -> risk 5% of 10,000 = 500 USD
    assert plan.risk_usd == pytest.approx(500.0)
    assert plan.risk_fraction == pytest.approx(0.05)
    # qty = 500 / 2 = 250; notional 25,000 <= symbol cap 30,000
    assert plan.qty == pytest.approx(250.0)
    assert plan.notional_usd == pytest.approx(25_000.0)
    # margin: 1x -> 25,000 > 10,000; 2x -> 12,500 > 10,000; 3x -> 8,333 fits
    assert plan.leverage == 3
    # liquidation 100 * (1 - 1/3 + 0.005) = 67.1667, below stop - 1 ATR = 97
    assert plan.liquidation_price == pytest.approx(100 * (1 - 1 / 3 + 0.005))
    assert plan_violations(plan, limits, atr_value=1.0) == []


def test_short_plan_hand_computed_with_symbol_cap() -> None:
    limits = RiskLimits(risk_fraction=0.02, max_symbol_exposure_fraction=1.5)
    plan = short_plan(limits)
    assert isinstance(plan, TradePlan)
    # stop = 50.3 + 0.5 * 0.4 = 50.5; target = 48.04 + 0.1 * 0.4 = 48.08; rr = 1.92 / 0.5 = 3.84
    assert plan.side == "short"
    assert plan.stop_loss == pytest.approx(50.5)
    assert plan.take_profit == pytest.approx(48.08)
    assert plan.reward_to_risk == pytest.approx(3.84)
    # risk budget 2% = 200 USD -> qty 400, notional 20,000 > cap 1.5 * 10,000 = 15,000
    # -> qty scaled to 300, risk 300 * 0.5 = 150 USD = 1.5% of equity
    assert plan.qty == pytest.approx(300.0)
    assert plan.notional_usd == pytest.approx(15_000.0)
    assert plan.risk_usd == pytest.approx(150.0)
    assert plan.risk_fraction == pytest.approx(0.015)
    # margin at 2x = 7,500 fits; liquidation 50 * (1 + 0.5 - 0.005) = 74.75 >= stop + 1 ATR = 50.9
    assert plan.leverage == 2
    assert plan.liquidation_price == pytest.approx(74.75)
    assert plan_violations(plan, limits, atr_value=0.4) == []


def test_short_plan_with_default_limits_uses_one_x() -> None:
    plan = short_plan(RiskLimits())
    assert isinstance(plan, TradePlan)
    # 0.5% of 10,000 = 50 USD / 0.5 per unit = 100 units = 5,000 notional -> 1x fits
    assert plan.qty == pytest.approx(100.0)
    assert plan.notional_usd == pytest.approx(5_000.0)
    assert plan.leverage == 1
    assert plan.liquidation_price == pytest.approx(50 * (1 + 1 - 0.005))


def test_kelly_bound_caps_the_fixed_fraction() -> None:
    limits = RiskLimits(risk_fraction=1.0, max_symbol_exposure_fraction=20.0, max_leverage=50)
    plan = long_plan(limits)
    assert isinstance(plan, TradePlan)
    # min(1.0, 0.25 * 0.3) = 0.075 -> risk 750 -> qty 375 -> notional 37,500 -> lowest fitting 4x
    assert plan.risk_fraction == pytest.approx(0.075)
    assert plan.qty == pytest.approx(375.0)
    assert plan.leverage == 4
    assert plan.liquidation_price == pytest.approx(75.5)  # 100 * (1 - 0.25 + 0.005)
    # A better win rate raises the Kelly bound: 0.25 * (0.7 - 0.3 / 2.5) = 0.145
    better = long_plan(limits, win_rate=0.7)
    assert isinstance(better, TradePlan)
    assert better.risk_fraction == pytest.approx(0.145)


def test_notional_is_capped_by_what_a_liquidation_safe_leverage_can_carry() -> None:
    limits = RiskLimits(
        risk_fraction=1.0,
        kelly_fraction=1.0,
        max_symbol_exposure_fraction=20.0,
        max_leverage=50,
        liquidation_buffer_atr=9.5,
    )
    plan = long_plan(limits, win_rate=0.9)
    assert isinstance(plan, TradePlan)
    # risk budget min(1.0, 0.9 - 0.1 / 2.5 = 0.86) -> qty 4,300 -> notional 430,000.
    # Liquidation must be <= 98 - 9.5 = 88.5: 8x gives 100 * (1 - 0.125 + 0.005) = 88.0, 9x gives
    # 89.39 -> at most 8x -> notional capped at 8 * 10,000 = 80,000 -> qty 800, risk 1,600.
    assert plan.leverage == 8
    assert plan.notional_usd == pytest.approx(80_000.0)
    assert plan.qty == pytest.approx(800.0)
    assert plan.risk_usd == pytest.approx(1_600.0)
    assert plan.liquidation_price == pytest.approx(88.0)
    assert plan_violations(plan, limits, atr_value=1.0) == []


# --------------------------------------------------------------------------------------------
# plan_trade: rejections
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "overrides", "expected"),
    [
        # long stop 101.5 - 0.5 = 101.0 is above entry 100
        (
            long_plan,
            {"same_side_cluster_edge": 101.5},
            "geometry: long stop 101 is not between 0 and entry 100",
        ),
        # long stop 0.3 - 0.5 = -0.2 is not a price
        (
            long_plan,
            {"same_side_cluster_edge": 0.3},
            "geometry: long stop -0.2 is not between 0 and entry 100",
        ),
        # long target 100.05 - 0.1 = 99.95 is not above entry
        (
            long_plan,
            {"opposite_magnet_edge": 100.05},
            "geometry: long target 99.95 is not above entry 100",
        ),
        # short stop 49.5 + 0.2 = 49.7 is below entry 50
        (
            short_plan,
            {"same_side_cluster_edge": 49.5},
            "geometry: short stop 49.7 is not above entry 50",
        ),
        # short target 50.5 + 0.04 = 50.54 is not below entry
        (
            short_plan,
            {"opposite_magnet_edge": 50.5},
            "geometry: short target 50.54 is not between 0 and entry 50",
        ),
        # long target 102.1 - 0.1 = 102 -> rr 2 / 2 = 1.0 < 1.5
        (
            long_plan,
            {"opposite_magnet_edge": 102.1},
            "reward_to_risk: reward-to-risk 1 is below the minimum 1.5",
        ),
        # rr 2.5 at p = 0.25: 0.25 - 0.75 / 2.5 = -0.05 -> no edge
        (
            long_plan,
            {"win_rate": 0.25},
            "kelly: no edge at win rate 0.25 and reward-to-risk 2.5 (Kelly fraction -0.05)",
        ),
    ],
)
def test_rejection_reasons(make, overrides, expected: str) -> None:
    assert make(RiskLimits(), **overrides) == expected


def test_leverage_rejection_when_even_one_x_liquidates_before_the_stop() -> None:
    # stop 2.5 - 0.5 = 2.0; 1x liquidation 100 * 0.005 = 0.5 is not 2 ATR below 2.0 (needs <= 0)
    limits = RiskLimits(liquidation_buffer_atr=2.0)
    reason = long_plan(limits, same_side_cluster_edge=2.5, opposite_magnet_edge=300.0)
    assert reason == "leverage: even at 1x the liquidation price 0.5 is not 2 ATR beyond the stop 2"
    # Same stop with a 1 ATR buffer: liquidation 0.5 <= 2.0 - 1.0 -> planned at 1x.
    plan = long_plan(RiskLimits(), same_side_cluster_edge=2.5, opposite_magnet_edge=300.0)
    assert isinstance(plan, TradePlan)
    assert plan.leverage == 1


def test_max_leverage_limits_the_position_instead_of_rejecting_it() -> None:
    # Same as test_long_plan_hand_computed, which needs 3x, but with max_leverage 2:
    # the notional is capped at 2 * 10,000 = 20,000 -> qty 200, risk 400.
    limits = RiskLimits(risk_fraction=0.05, max_symbol_exposure_fraction=3.0, max_leverage=2)
    plan = long_plan(limits)
    assert isinstance(plan, TradePlan)
    assert plan.leverage == 2
    assert plan.notional_usd == pytest.approx(20_000.0)
    assert plan.risk_usd == pytest.approx(400.0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"symbol": ""}, "symbol must be a non-empty string"),
        ({"side": "flat"}, "side must be 'long' or 'short'"),
        ({"entry": 0.0}, "entry and atr_value must be positive"),
        ({"entry": float("nan")}, "entry must be a finite number"),
        ({"atr_value": -1.0}, "entry and atr_value must be positive"),
        ({"wick_buffer_atr": -0.1}, "wick_buffer_atr >= 0"),
        (
            {"same_side_cluster_edge": float("inf")},
            "same_side_cluster_edge must be a finite number",
        ),
        ({"opposite_magnet_edge": None}, "opposite_magnet_edge must be a finite number"),
        ({"win_rate": 1.5}, "win_rate must be a probability"),
    ],
)
def test_plan_trade_rejects_malformed_input(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        long_plan(RiskLimits(), **overrides)


# --------------------------------------------------------------------------------------------
# RiskLimits validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "account_equity_usd",
            0.0,
            "RiskLimits.account_equity_usd must be a positive finite number, got 0.0",
        ),
        (
            "account_equity_usd",
            float("inf"),
            "account_equity_usd must be a positive finite number, got inf",
        ),
        (
            "risk_fraction",
            0.0,
            "RiskLimits.risk_fraction must be a positive finite number, got 0.0",
        ),
        ("risk_fraction", 1.5, r"RiskLimits.risk_fraction must be a fraction in \(0, 1\], got 1.5"),
        (
            "kelly_fraction",
            -0.25,
            "RiskLimits.kelly_fraction must be a positive finite number, got -0.25",
        ),
        (
            "kelly_fraction",
            2.0,
            r"RiskLimits.kelly_fraction must be a fraction in \(0, 1\], got 2.0",
        ),
        ("max_leverage", 0, "RiskLimits.max_leverage must be an int >= 1, got 0"),
        ("max_leverage", 5.0, "RiskLimits.max_leverage must be an int >= 1, got 5.0"),
        ("max_leverage", True, "RiskLimits.max_leverage must be an int >= 1, got True"),
        ("maintenance_margin_rate", 1.01, "RiskLimits.maintenance_margin_rate must be a fraction"),
        (
            "maintenance_margin_rate",
            float("nan"),
            "maintenance_margin_rate must be a positive finite number, got nan",
        ),
        (
            "liquidation_buffer_atr",
            0.0,
            "RiskLimits.liquidation_buffer_atr must be a positive finite number, got 0.0",
        ),
        (
            "min_reward_to_risk",
            -1.0,
            "RiskLimits.min_reward_to_risk must be a positive finite number, got -1.0",
        ),
        (
            "max_symbol_exposure_fraction",
            0.0,
            "max_symbol_exposure_fraction must be a positive finite number",
        ),
        (
            "max_total_exposure_fraction",
            "3",
            "max_total_exposure_fraction must be a positive finite number, got '3'",
        ),
        ("max_open_positions", -2, "RiskLimits.max_open_positions must be an int >= 1, got -2"),
    ],
)
def test_risk_limits_validation(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RiskLimits(**{field: value})


def test_risk_limits_accepts_exposure_multiples_above_one_and_numpy_scalars() -> None:
    limits = RiskLimits(
        account_equity_usd=np.float64(5_000.0),
        max_symbol_exposure_fraction=2.5,
        max_total_exposure_fraction=8.0,
        max_leverage=np.int64(25),
    )
    assert limits.symbol_cap_usd == 12_500.0
    assert limits.total_cap_usd == 40_000.0
    assert limits.risk_cap_usd == 25.0


def test_risk_limits_are_frozen() -> None:
    limits = RiskLimits()
    with pytest.raises(AttributeError):
        limits.risk_fraction = 0.5  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# plan_violations: the blocking check catches corrupted plans
# --------------------------------------------------------------------------------------------

VIOLATION_LIMITS = RiskLimits(risk_fraction=0.05, max_symbol_exposure_fraction=3.0)


def sound_long() -> TradePlan:
    plan = long_plan(VIOLATION_LIMITS)
    assert isinstance(plan, TradePlan)
    return plan


def scaled_size(plan: TradePlan, factor: float) -> TradePlan:
    qty = plan.qty * factor
    risk = qty * abs(plan.entry - plan.stop_loss)
    return replace(
        plan, qty=qty, notional_usd=qty * plan.entry, risk_usd=risk, risk_fraction=risk / 10_000.0
    )


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        (lambda p: replace(p, side="flat"), ["side 'flat' is not 'long' or 'short'"]),
        (lambda p: replace(p, qty=float("nan")), ["qty nan is not a finite number"]),
        (lambda p: replace(p, leverage=2.5), ["leverage 2.5 is not an int"]),
        (lambda p: replace(p, leverage=11), ["leverage 11 is outside 1..10"]),
        (
            lambda p: replace(p, reward_to_risk=3.0),
            ["reward_to_risk 3.0 does not match the prices (2.5)"],
        ),
        (
            lambda p: replace(p, notional_usd=26_000.0),
            ["notional_usd 26000.0 != qty * entry (25000.0)"],
        ),
        (
            lambda p: replace(p, liquidation_price=80.0),
            ["liquidation_price 80.0 != estimate at 3x (67.16666666666667)"],
        ),
        (
            lambda p: replace(
                p, leverage=2, liquidation_price=liquidation_price("long", 100.0, 2, 0.005)
            ),
            ["margin 12500.0 at 2x exceeds equity 10000.0"],
        ),
        (
            lambda p: scaled_size(p, 1.1),
            [
                "risk_usd 550.0 exceeds the per-trade cap 500.0",
                "risk_fraction 0.055 exceeds the limit 0.05",
            ],
        ),
        (
            lambda p: replace(scaled_size(p, 1.25), leverage=4, liquidation_price=75.5),
            [
                "risk_usd 625.0 exceeds the per-trade cap 500.0",
                "risk_fraction 0.0625 exceeds the limit 0.05",
                "notional_usd 31250.0 exceeds the per-symbol cap 30000.0",
            ],
        ),
    ],
)
def test_plan_violations_catch_corrupted_plans(corrupt, expected: list[str]) -> None:
    assert plan_violations(corrupt(sound_long()), VIOLATION_LIMITS) == expected


def test_plan_violations_geometry_and_reward_floor() -> None:
    plan = sound_long()
    flipped = replace(plan, stop_loss=102.0, take_profit=95.0, reward_to_risk=2.5)
    problems = plan_violations(flipped, VIOLATION_LIMITS)
    assert problems[:2] == [
        "stop_loss 102.0 is not below entry 100.0",
        "take_profit 95.0 is not above entry 100.0",
    ]
    stricter = replace(VIOLATION_LIMITS, min_reward_to_risk=3.0)
    assert plan_violations(plan, stricter) == ["reward_to_risk 2.5 is below the minimum 3.0"]


def test_plan_violations_liquidation_buffer_needs_the_atr() -> None:
    plan = sound_long()  # stop 98, liquidation 67.17 at 3x
    assert plan_violations(plan, VIOLATION_LIMITS) == []
    assert plan_violations(plan, VIOLATION_LIMITS, atr_value=30.0) == []  # 98 - 30 = 68 >= 67.17
    assert plan_violations(plan, VIOLATION_LIMITS, atr_value=31.0) == [
        "liquidation_price 67.16666666666667 is not beyond the stop 98.0 by 1.0 ATR (31.0)"
    ]


# --------------------------------------------------------------------------------------------
# Exposure caps: hand-computed
# --------------------------------------------------------------------------------------------


def test_apply_exposure_caps_hand_computed() -> None:
    limits = RiskLimits(
        risk_fraction=0.05,
        max_symbol_exposure_fraction=3.0,
        max_total_exposure_fraction=4.0,
        max_open_positions=2,
    )
    btc = long_plan(limits)  # rr 2.5, qty 250, notional 25,000, 3x
    btc_worse = long_plan(limits, opposite_magnet_edge=104.1)  # target 104, rr 2.0
    # ETH: risk 500 / 0.5 = 1,000 units = 50,000 > symbol cap 30,000 -> qty 600; 3x
    eth = short_plan(limits)  # rr 3.84
    # SOL: stop 19.5 - 0.1 = 19.4, target 21.02 - 0.02 = 21.0 -> rr 1.0 / 0.6 = 1.667
    sol = long_plan(
        limits,
        symbol="SOLUSDT",
        entry=20.0,
        same_side_cluster_edge=19.5,
        opposite_magnet_edge=21.02,
        atr_value=0.2,
    )
    plans = [btc_worse, sol, btc, eth]
    assert all(isinstance(p, TradePlan) for p in plans)
    assert (eth.qty, eth.notional_usd, eth.leverage) == pytest.approx((600.0, 30_000.0, 3))

    capped = apply_exposure_caps(plans, limits)

    # One per symbol (BTC keeps rr 2.5), best two by rr: ETH 3.84, BTC 2.5; SOL 1.667 is dropped.
    # Total 30,000 + 25,000 = 55,000 > 4 * 10,000 -> everything scaled by 40,000 / 55,000 = 8/11.
    assert [(p.symbol, p.reward_to_risk) for p in capped] == [
        ("ETHUSDT", pytest.approx(3.84)),
        ("BTCUSDT", pytest.approx(2.5)),
    ]
    eth_c, btc_c = capped
    assert eth_c.qty == pytest.approx(600 * 8 / 11)
    assert eth_c.notional_usd == pytest.approx(30_000 * 8 / 11)
    assert eth_c.risk_usd == pytest.approx(600 * 8 / 11 * 0.5)
    assert btc_c.qty == pytest.approx(250 * 8 / 11)
    assert btc_c.notional_usd == pytest.approx(25_000 * 8 / 11)
    assert btc_c.risk_usd == pytest.approx(500 * 8 / 11)
    assert btc_c.risk_fraction == pytest.approx(0.05 * 8 / 11)
    assert math.fsum(p.notional_usd for p in capped) <= 40_000.0
    # Prices and leverage are unchanged.
    for before, after in ((eth, eth_c), (btc, btc_c)):
        assert (
            after.entry,
            after.stop_loss,
            after.take_profit,
            after.leverage,
            after.liquidation_price,
        ) == (
            before.entry,
            before.stop_loss,
            before.take_profit,
            before.leverage,
            before.liquidation_price,
        )
    assert portfolio_violations(capped, limits) == []
    assert portfolio_violations(plans, limits) == [
        "4 plans exceed max_open_positions 2",
        "more than one plan for BTCUSDT",
        f"total notional {math.fsum(p.notional_usd for p in plans)!r} exceeds the cap 40000.0",
    ]


def test_apply_exposure_caps_leaves_plans_within_caps_untouched() -> None:
    limits = RiskLimits()
    plans = [long_plan(limits), short_plan(limits)]
    assert apply_exposure_caps(plans, limits) == [plans[1], plans[0]]  # best rr first
    assert apply_exposure_caps([], limits) == []


def test_apply_exposure_caps_refuses_a_plan_that_breaks_its_own_limits() -> None:
    limits = RiskLimits()
    plan = long_plan(limits)
    assert isinstance(plan, TradePlan)
    with pytest.raises(ValueError, match="plan for 'BTCUSDT' violates its limits: leverage 99"):
        apply_exposure_caps([replace(plan, leverage=99)], limits)


# --------------------------------------------------------------------------------------------
# Property-based: every plan and every capped portfolio stays inside every limit
# --------------------------------------------------------------------------------------------

limits_strategy = st.builds(
    RiskLimits,
    account_equity_usd=st.floats(100.0, 1e7),
    risk_fraction=st.floats(1e-4, 1.0),
    kelly_fraction=st.floats(0.01, 1.0),
    max_leverage=st.integers(1, 125),
    maintenance_margin_rate=st.floats(1e-4, 0.05),
    liquidation_buffer_atr=st.floats(0.01, 5.0),
    min_reward_to_risk=st.floats(0.5, 3.0),
    max_symbol_exposure_fraction=st.floats(0.01, 20.0),
    max_total_exposure_fraction=st.floats(0.01, 50.0),
    max_open_positions=st.integers(1, 12),
)


def mostly(
    sound: st.SearchStrategy[float], odd: st.SearchStrategy[float]
) -> st.SearchStrategy[float]:
    """Mostly draws from the sound range, so most examples become plans to check; the rest
    (about one in ten) come from the odd range and exercise the rejections."""
    return st.sampled_from([sound] * 9 + [odd]).flatmap(lambda strategy: strategy)


candidate_strategy = st.fixed_dictionaries(
    {
        "side": st.sampled_from(["long", "short"]),
        "entry": st.floats(1e-3, 1e5),
        "atr_pct": st.floats(1e-4, 0.04),  # ATR as a fraction of entry
        # same-side cluster distance from entry, in ATR (negative: on the wrong side of entry)
        "cluster_atr": mostly(st.floats(0.05, 4.0), st.floats(-1.0, 15.0)),
        # opposite magnet distance from entry, in ATR
        "magnet_atr": mostly(st.floats(2.0, 20.0), st.floats(-1.0, 2.0)),
        "wick_buffer_atr": mostly(st.floats(0.0, 1.5), st.floats(0.0, 5.0)),
        "win_rate": mostly(st.floats(0.35, 0.95), st.floats(0.0, 1.0)),
    }
)


def plan_candidate(symbol: str, c: dict, limits: RiskLimits) -> tuple[TradePlan | str, float]:
    entry, side = c["entry"], c["side"]
    atr_value = entry * c["atr_pct"]
    direction = -1.0 if side == "long" else 1.0  # the same-side cluster lies on the stop's side
    result = plan_trade(
        symbol=symbol,
        side=side,
        entry=entry,
        same_side_cluster_edge=entry + direction * c["cluster_atr"] * atr_value,
        opposite_magnet_edge=entry - direction * c["magnet_atr"] * atr_value,
        atr_value=atr_value,
        wick_buffer_atr=c["wick_buffer_atr"],
        limits=limits,
        win_rate=c["win_rate"],
    )
    return result, atr_value


def assert_plan_within_limits(plan: TradePlan, limits: RiskLimits, atr_value: float) -> None:
    equity = limits.account_equity_usd
    assert plan.risk_usd <= equity * limits.risk_fraction * (1 + 1e-9)
    assert plan.risk_fraction <= limits.risk_fraction * (1 + 1e-9)
    assert plan.notional_usd <= limits.max_symbol_exposure_fraction * equity
    assert plan.notional_usd <= plan.leverage * equity  # margin fits
    assert isinstance(plan.leverage, int)
    assert 1 <= plan.leverage <= limits.max_leverage
    assert plan.reward_to_risk >= limits.min_reward_to_risk
    buffer = limits.liquidation_buffer_atr * atr_value
    if plan.side == "long":
        assert plan.stop_loss < plan.entry < plan.take_profit
        assert plan.liquidation_price <= plan.stop_loss - buffer
    else:
        assert plan.take_profit < plan.entry < plan.stop_loss
        assert plan.liquidation_price >= plan.stop_loss + buffer
    assert plan.qty > 0
    assert plan.notional_usd == pytest.approx(plan.qty * plan.entry, rel=1e-12)
    assert plan.risk_usd == pytest.approx(plan.qty * abs(plan.entry - plan.stop_loss), rel=1e-12)
    assert plan_violations(plan, limits, atr_value=atr_value) == []


@settings(max_examples=400, deadline=None)
@given(limits=limits_strategy, candidate=candidate_strategy)
def test_every_plan_respects_every_limit(limits: RiskLimits, candidate: dict) -> None:
    result, atr_value = plan_candidate("BTCUSDT", candidate, limits)
    if isinstance(result, str):
        event(f"rejected: {result.split(':', 1)[0]}")
        assert result.split(":", 1)[0] in REASONS
        return
    event(f"planned at {'1x' if result.leverage == 1 else '>1x'}")
    assert_plan_within_limits(result, limits, atr_value)
    # Risk never exceeds the fractional-Kelly bound either.
    kelly = kelly_fraction(candidate["win_rate"], result.reward_to_risk)
    assert result.risk_fraction <= limits.kelly_fraction * kelly * (1 + 1e-9)
    # Leverage is the lowest that works: one notch lower fails the margin or the liquidation buffer.
    if result.leverage > 1:
        lower = result.leverage - 1
        liq = liquidation_price(result.side, result.entry, lower, limits.maintenance_margin_rate)
        buffer = limits.liquidation_buffer_atr * atr_value
        liq_clear = (
            liq <= result.stop_loss - buffer
            if result.side == "long"
            else liq >= result.stop_loss + buffer
        )
        assert result.notional_usd > lower * limits.account_equity_usd or not liq_clear


@settings(max_examples=300, deadline=None)
@given(
    limits=limits_strategy,
    candidates=st.lists(
        st.tuples(
            st.sampled_from(["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"]),
            candidate_strategy,
        ),
        min_size=2,
        max_size=20,
    ),
)
def test_exposure_caps_hold_for_any_set_of_plans(limits: RiskLimits, candidates: list) -> None:
    planned: list[tuple[TradePlan, float]] = []
    for symbol, candidate in candidates:
        result, atr_value = plan_candidate(symbol, candidate, limits)
        if isinstance(result, TradePlan):
            planned.append((result, atr_value))
    plans = [p for p, _ in planned]
    atr_of = {id(p): a for p, a in planned}

    capped = apply_exposure_caps(plans, limits)
    event(f"{len(plans)} plans in" if len(plans) < 2 else "2+ plans in")
    if any(
        c.qty < p.qty
        for c in capped
        for p in plans
        if c.symbol == p.symbol and c.reward_to_risk == p.reward_to_risk
    ):
        event("total cap scaled the plans")

    assert len(capped) <= limits.max_open_positions
    assert len({p.symbol for p in capped}) == len(capped)
    assert len(capped) == min(limits.max_open_positions, len({p.symbol for p in plans}))
    assert (
        math.fsum(p.notional_usd for p in capped)
        <= limits.max_total_exposure_fraction * limits.account_equity_usd
    )
    assert portfolio_violations(capped, limits) == []
    originals: dict[str, float] = {}  # each symbol's best reward-to-risk
    for p in plans:
        originals[p.symbol] = max(originals.get(p.symbol, -math.inf), p.reward_to_risk)
    for plan in capped:
        source = next(
            p
            for p in plans
            if p.symbol == plan.symbol
            and (p.entry, p.stop_loss, p.take_profit, p.leverage)
            == (plan.entry, plan.stop_loss, plan.take_profit, plan.leverage)
        )
        assert plan.reward_to_risk == originals[plan.symbol]  # the symbol's best plan was kept
        assert plan.qty <= source.qty  # caps only ever shrink a position
        assert plan.liquidation_price == source.liquidation_price
        assert_plan_within_limits(plan, limits, atr_of[id(source)])
    # The kept plans are the best by reward-to-risk, best first.
    rrs = [p.reward_to_risk for p in capped]
    assert rrs == sorted(rrs, reverse=True)
    dropped = set(originals) - {p.symbol for p in capped}
    if dropped and capped:
        assert max(originals[s] for s in dropped) <= rrs[-1]
