"""The live repository on DuckDB and on the real PostgreSQL: realized liquidations stored once
however often they are replayed, and summed by coin and by price band over half-open windows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from helix_pipelines.contracts.live import LiquidationEvent
from helix_pipelines.testing.warehouses import (
    duckdb_warehouse,
    postgres_warehouse,
    read_table,
)
from helix_pipelines.warehouse import Warehouse

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def liquidation(
    minute: float,
    coin: str = "BTC",
    price: float = 60_000.0,
    usd: float = 1_000.0,
    **changes: object,
) -> LiquidationEvent:
    event = LiquidationEvent(
        event_time=T0 + timedelta(minutes=minute), received_at=T0 + timedelta(minutes=minute, seconds=1),
        base_asset=coin, exchange="Binance", symbol=f"{coin}USDT", price=price, side_code=2, usd=usd,
    )  # fmt: skip
    return replace(event, **changes)  # type: ignore[arg-type]


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    if request.param == "duckdb":
        opened = duckdb_warehouse(tmp_path / "helix.duckdb")
    else:
        opened = postgres_warehouse(request.getfixturevalue("pg_dsn"))
    yield opened
    opened.close()


def test_events_are_stored_as_given(warehouse: Warehouse) -> None:
    events = [
        liquidation(0),
        liquidation(1, "ETH", price=2_400.25, usd=12.5, side_code=1),
        liquidation(2.5, "1000PEPE", price=0.01234, exchange="Bybit", symbol="1000PEPEUSDT"),
    ]
    assert warehouse.live.add_liquidation_events(events) == 3
    stored = read_table(warehouse, "liquidation_events").sort("event_time")
    assert [LiquidationEvent(**row) for row in stored.iter_rows(named=True)] == events


def test_a_replayed_batch_is_stored_once(warehouse: Warehouse) -> None:
    first = [liquidation(m) for m in range(5)]
    live = warehouse.live
    assert live.add_liquidation_events(first) == 5
    # The same orders read again after a reconnect (received later), and a batch retried whole.
    again = [replace(e, received_at=e.received_at + timedelta(minutes=9)) for e in first]
    assert live.add_liquidation_events(again) == 0
    assert live.add_liquidation_events(first) == 0
    # Overlapping with two new orders, one of them repeated within the batch.
    new = [liquidation(5), liquidation(6)]
    assert live.add_liquidation_events([*first[3:], new[0], new[1], new[0]]) == 2
    assert read_table(warehouse, "liquidation_events").height == 7
    assert live.add_liquidation_events([]) == 0


def test_orders_differing_in_any_key_column_are_distinct(warehouse: Warehouse) -> None:
    base = liquidation(0)
    variants = [
        base,
        replace(base, exchange="OKX"),
        replace(base, symbol="BTCUSD_PERP"),
        replace(base, event_time=base.event_time + timedelta(milliseconds=1)),
        replace(base, side_code=1),
        replace(base, price=60_000.5),
        replace(base, usd=1_000.01),
    ]
    assert warehouse.live.add_liquidation_events(variants) == 7


def test_realized_by_coin_sums_usd_and_counts_over_a_half_open_window(
    warehouse: Warehouse,
) -> None:
    warehouse.live.add_liquidation_events([
        liquidation(0, usd=100.0), liquidation(10, usd=250.5), liquidation(59.99, usd=1.5),
        liquidation(60, usd=10_000.0),  # the window's end: not in it
        liquidation(-0.01, usd=7.0),  # before the window
        liquidation(5, "ETH", price=2_400.0, usd=40.0), liquidation(6, "ETH", price=2_401.0, usd=2.0),
    ])  # fmt: skip
    realized = warehouse.live.realized_by_coin(T0, T0 + timedelta(hours=1))
    assert realized == {"BTC": (352.0, 3), "ETH": (42.0, 2)}
    assert warehouse.live.realized_by_coin(T0 + timedelta(hours=2), T0 + timedelta(hours=3)) == {}


def test_events_of_some_coins_in_a_half_open_window_in_utc(warehouse: Warehouse) -> None:
    warehouse.live.add_liquidation_events([
        liquidation(0, usd=1.0),  # the window's start: in
        liquidation(30, usd=20.0),
        liquidation(60, usd=300.0),  # the window's end: out
        liquidation(10, "ETH", usd=4_000.0),
        liquidation(20, "SOL", usd=50_000.0),  # a coin not asked for
    ])  # fmt: skip
    events = warehouse.live.events(["BTC", "ETH"], T0, T0 + timedelta(hours=1)).sort("event_time")
    assert events["usd"].to_list() == [1.0, 4_000.0, 20.0]
    assert events["base_asset"].to_list() == ["BTC", "ETH", "BTC"]
    assert events["event_time"].dtype.time_zone == "UTC"  # type: ignore[attr-defined]
    assert events["event_time"][0] == T0
