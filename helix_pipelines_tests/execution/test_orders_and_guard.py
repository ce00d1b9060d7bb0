from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helix_pipelines.contracts.signals import InvalidSignal, TradeSignal, UnknownSchemaVersion
from helix_pipelines.execution.guard import AccountState, GuardLimits, guard_reason
from helix_pipelines.execution.orders import (
    Instrument,
    Position,
    order_link_id_for,
    order_size_problem,
    quantize_price,
    quantize_qty,
)
from helix_pipelines.testing.signals import make_signal

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
BTC = Instrument(
    "BTCUSDT", Decimal("0.001"), Decimal("0.001"), Decimal("100"), Decimal("0.10"), Decimal("5")
)


def signal(**overrides: object) -> TradeSignal:
    fields = make_signal(
        "sig-1", "BTCUSDT", entry=100_000.0, stop_loss=98_000.0, take_profit=105_000.0,
        qty=0.0257, leverage=2, created_at=NOW,
    ).to_row()  # fmt: skip
    fields.update(overrides)
    return TradeSignal.from_row(fields)


def test_order_link_id_is_deterministic_and_fits_bybit() -> None:
    assert order_link_id_for("sig-1") == order_link_id_for("sig-1")
    assert order_link_id_for("sig-1") != order_link_id_for("sig-2")
    assert len(order_link_id_for("x" * 200)) <= 36


def test_quantization_with_decimal() -> None:
    assert quantize_qty(0.0257, BTC) == Decimal("0.025")  # down: never more than asked
    assert quantize_qty(Decimal("0.1"), BTC) == Decimal("0.100")
    assert quantize_price(104_999.96, BTC) == Decimal("105000.00")
    assert quantize_price(98_000.04, BTC) == Decimal("98000.00")
    assert (
        str(
            quantize_price(
                0.1 + 0.2,
                Instrument("X", Decimal(1), Decimal(1), Decimal(9), Decimal("0.0001"), Decimal(1)),
            )
        )
        == "0.3000"
    )


def test_minimum_size_and_notional() -> None:
    assert (
        order_size_problem(Decimal("0.000"), Decimal("100000"), BTC)
        == "qty 0.000 below minOrderQty 0.001 of BTCUSDT"
    )
    assert "minNotionalValue" in (order_size_problem(Decimal("0.001"), Decimal("1000"), BTC) or "")
    assert order_size_problem(Decimal("0.001"), Decimal("100000"), BTC) is None
    assert "maxOrderQty" in (order_size_problem(Decimal("101"), Decimal("100000"), BTC) or "")


def test_malformed_signals_are_clear_errors() -> None:
    with pytest.raises(InvalidSignal, match="stop and target are not on both sides"):
        signal(stop_loss=101_000.0)
    with pytest.raises(InvalidSignal, match="side must be long or short"):
        signal(side="up")
    with pytest.raises(InvalidSignal, match="is malformed"):
        TradeSignal.from_row({"signal_id": "x"})
    with pytest.raises(UnknownSchemaVersion, match="schema_version 3; this build reads"):
        signal(schema_version=3)
    # A version 1 signal (before the radar fields) still reads, with the radar fields unset.
    version_1 = {
        k: v for k, v in signal(radar_rank=4).to_row().items() if not k.startswith("radar_")
    }
    old = TradeSignal.from_row({**version_1, "schema_version": 1})
    assert (old.schema_version, old.radar_rank, old.radar_tier) == (1, None, None)
    assert TradeSignal.from_row(signal(radar_rank=4, radar_tier="HOT").to_row()).radar_rank == 4
    assert signal(created_at="2026-11-25T12:00:00+00:00").created_at == NOW


LIMITS = GuardLimits(max_open_positions=2, max_order_notional_usd=5_000, max_symbol_notional_usd=6_000,
                     max_daily_loss_usd=300, max_signal_age_seconds=600, max_price_deviation_pct=1.0)  # fmt: skip
FLAT = AccountState({}, 0.0, False)
ETH_POSITION = Position("ETHUSDT", "long", Decimal(1), Decimal(3000))
SOL_POSITION = Position("SOLUSDT", "long", Decimal(1), Decimal(150))
BTC_POSITION = Position("BTCUSDT", "long", Decimal("0.05"), Decimal(100000))


@pytest.mark.parametrize(
    ("qty", "price", "state", "now", "reason"),
    [
        ("0.02", "100000", AccountState({}, 0.0, True, "manual"), NOW, "trading halted: manual"),
        ("0.02", "100000", AccountState({}, 300.0, False), NOW, "daily loss 300.00 reached the limit 300.00"),
        ("0.02", "100000", FLAT, NOW + timedelta(seconds=601), "signal is stale: 601s old, limit 600s"),
        ("0.02", "101500", FLAT, NOW, "1.50% from the signal entry"),
        ("0.06", "100000", FLAT, NOW, "order notional 6000.00 above the limit 5000.00"),
        ("0.02", "100000", AccountState({"ETHUSDT": ETH_POSITION, "SOLUSDT": SOL_POSITION}, 0, False),
         NOW, "2 positions open, limit 2"),
        ("0.02", "100000", AccountState({"BTCUSDT": BTC_POSITION}, 0, False),
         NOW, "BTCUSDT notional would be 7000.00, limit 6000.00"),
    ],
)  # fmt: skip
def test_each_guard_limit(
    qty: str, price: str, state: AccountState, now: datetime, reason: str
) -> None:
    found = guard_reason(signal(), Decimal(qty), Decimal(price), state, LIMITS, now)
    assert found is not None
    assert reason in found


def test_a_sound_order_passes() -> None:
    assert guard_reason(signal(), Decimal("0.02"), Decimal("100500"), FLAT, LIMITS, NOW) is None


@settings(max_examples=300, deadline=None)
@given(
    qty=st.decimals(min_value="0.001", max_value="1", places=3),
    price=st.decimals(min_value="90000", max_value="110000", places=1),
    held=st.decimals(min_value="0", max_value="0.1", places=3),
    others=st.integers(0, 4),
    loss=st.floats(0, 600),
    age=st.integers(0, 1200),
)
def test_no_accepted_order_exceeds_any_limit(qty, price, held, others, loss, age) -> None:
    positions = {
        f"C{i}USDT": Position(f"C{i}USDT", "long", Decimal(1), Decimal(10)) for i in range(others)
    }
    if held > 0:
        positions["BTCUSDT"] = Position("BTCUSDT", "long", held, Decimal(100000))
    state = AccountState(positions, loss, False)
    now = NOW + timedelta(seconds=age)
    if guard_reason(signal(), qty, price, state, LIMITS, now) is None:
        assert qty * price <= Decimal(LIMITS.max_order_notional_usd)
        assert held * Decimal(100000) + qty * price <= Decimal(LIMITS.max_symbol_notional_usd)
        assert len(positions) - (1 if held > 0 else 0) < LIMITS.max_open_positions or held > 0
        assert loss < LIMITS.max_daily_loss_usd
        assert age <= LIMITS.max_signal_age_seconds
        assert abs(price - Decimal(100000)) / Decimal(100000) * 100 <= Decimal(
            LIMITS.max_price_deviation_pct
        )
