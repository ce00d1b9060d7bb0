"""Sweep confirmation: realized liquidations near a touched level, in coin units, in the window
from the subject's time to an hour after the touch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from helix_pipelines.analytics.sweeps import coin_price, confirm_sweeps, confirmable
from helix_pipelines.contracts.live import LiquidationEvent
from helix_pipelines.contracts.tables import OUTCOMES_SCHEMA
from helix_pipelines.warehouse.live_store import events_frame

T0 = datetime(2026, 12, 1, 12, tzinfo=UTC)


def outcome(subject: str, symbol: str, level: float, *, touched: bool, hours: float | None) -> dict:
    return {
        "subject_kind": "cluster",
        "subject_id": subject,
        "symbol": symbol,
        "level_price": level,
        "observed_from": T0,
        "horizon_hours": 24.0,
        "touched": touched,
        "hours_to_touch": hours,
        "max_adverse_pct": 0.0,
        "evaluated_at": T0 + timedelta(days=1),
    }


def event(base: str, symbol: str, price: float, usd: float, minutes: float) -> LiquidationEvent:
    at = T0 + timedelta(minutes=minutes)
    return LiquidationEvent(at, at, base, "Binance", symbol, price, 1, usd)


@pytest.mark.parametrize(
    ("symbol", "base", "price", "expected"),
    [
        ("BTCUSDT", "BTC", 100_000.0, 100_000.0),
        ("1000PEPEUSDT", "PEPE", 0.019, 0.000019),
        ("PEPE-USDT-SWAP", "PEPE", 0.000019, 0.000019),
        ("SHIB1000USDT", "SHIB", 0.02, 0.00002),
        ("1INCHUSDT", "1INCH", 0.3, 0.3),  # a digit of the coin's own name is no multiplier
        ("10000SATSUSDT", "10000SATS", 0.0003, 0.0003),  # CoinGlass's coin is the multiplied one
    ],
)
def test_event_prices_are_compared_per_coin(
    symbol: str, base: str, price: float, expected: float
) -> None:
    assert coin_price(symbol, price, base) == pytest.approx(expected)


def test_touched_levels_count_the_liquidations_in_their_band_and_window() -> None:
    outcomes = pl.DataFrame(
        [
            outcome("btc", "BTC", 100_000.0, touched=True, hours=2.0),
            outcome("pepe", "PEPE", 0.00002, touched=True, hours=0.5),
            outcome("eth", "ETH", 3_000.0, touched=True, hours=1.0),
            outcome("sol", "SOL", 150.0, touched=False, hours=None),
        ],
        schema=OUTCOMES_SCHEMA,
    )
    events = events_frame(
        [
            event("BTC", "BTCUSDT", 100_200.0, 400_000.0, 125),  # 0.2% away, 5 min after touch
            event("BTC", "BTCUSDT", 99_900.0, 100_000.0, 30),
            event("BTC", "BTCUSDT", 101_000.0, 9_000_000.0, 60),  # 1% away: not at this level
            event("BTC", "BTCUSDT", 100_000.0, 7_000_000.0, 200),  # after touch + 1 h
            event("BTC", "BTCUSDT", 100_000.0, 5_000_000.0, -10),  # before the subject
            event("PEPE", "1000PEPEUSDT", 0.02002, 50_000.0, 20),  # 0.00002002 a coin
            event("SOL", "SOLUSDT", 150.0, 1_000.0, 5),
        ]
    )
    # Confirmable once an hour has passed after the touch; SOL was never touched.
    ready = confirmable(outcomes, T0 + timedelta(hours=3, minutes=1))
    assert set(ready["subject_id"]) == {"btc", "pepe", "eth"}
    assert confirmable(outcomes, T0 + timedelta(hours=2, minutes=59))["subject_id"].to_list() == [
        "pepe",
        "eth",
    ]
    confirmed = {r["subject_id"]: r for r in confirm_sweeps(outcomes, events).iter_rows(named=True)}
    assert (confirmed["btc"]["confirmed_liq_usd"], confirmed["btc"]["confirmed_liq_events"]) == (
        500_000.0,
        2,
    )
    assert confirmed["pepe"]["confirmed_liq_usd"] == 50_000.0
    # Touched without a recorded liquidation: unconfirmed (0), not unknown.
    assert (confirmed["eth"]["confirmed_liq_usd"], confirmed["eth"]["confirmed_liq_events"]) == (
        0.0,
        0,
    )
    # Not touched: nothing to confirm.
    assert confirmed["sol"]["confirmed_liq_usd"] is None
    assert confirmed["sol"]["confirmed_liq_events"] is None
