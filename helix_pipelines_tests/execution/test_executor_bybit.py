"""The executor with the Bybit broker: a real pybit session against the fake Bybit v5 server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pybit.unified_trading import HTTP

from helix_pipelines.clock import utc_now
from helix_pipelines.execution.bybit import BybitBroker
from helix_pipelines.execution.executor import Executor
from helix_pipelines.execution.guard import GuardLimits
from helix_pipelines.execution.orders import Signal, order_link_id_for
from helix_pipelines.execution.store import ExecutorStore
from helix_pipelines.warehouse.duckdb_warehouse import DuckDBWarehouse
from helix_pipelines_tests.fakes.bybit_server import HEDGE, ONE_WAY, FakeBybitServer

CREATE = "/v5/order/create"


@pytest.fixture
def server() -> Iterator[FakeBybitServer]:
    with FakeBybitServer(fault_delay=2.0, ratelimit_reset_ms=100) as fake:
        yield fake


def session_for(server: FakeBybitServer, secret: str | None = None) -> HTTP:
    session = HTTP(
        testnet=True, api_key=server.api_key, api_secret=secret or server.api_secret,
        timeout=1, max_retries=2, retry_delay=0, force_retry=False, retry_codes={10002},
    )  # fmt: skip
    session.endpoint = server.endpoint
    return session


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBWarehouse:
    store = DuckDBWarehouse(tmp_path / "helix.duckdb")
    store.ensure_schema()
    return store


def executor(server: FakeBybitServer, warehouse: DuckDBWarehouse) -> Executor:
    broker = BybitBroker(session_for(server), "testnet")
    return Executor(broker, ExecutorStore(warehouse, "testnet"), GuardLimits(max_order_notional_usd=50_000,
                    max_symbol_notional_usd=50_000))  # fmt: skip


def signal(
    signal_id: str = "sig-1", qty: float = 0.0123456, created_at: datetime | None = None
) -> Signal:
    return Signal.from_mapping({
        "signal_id": signal_id, "symbol": "BTC", "side": "long", "entry": 65_000.0,
        "stop_loss": 63_012.34567, "take_profit": 69_876.54321, "qty": qty, "leverage": 3,
        "created_at": created_at or utc_now(),
    })  # fmt: skip


def test_a_signal_becomes_one_quantized_order_with_exchange_side_tp_and_sl(
    server, warehouse
) -> None:
    runner = executor(server, warehouse)
    runner.start(["BTC"], 2)
    decision = runner.process(signal())
    assert decision.action == "placed"
    (order,) = server.orders.values()
    assert order["orderLinkId"] == order_link_id_for("sig-1")
    assert order["qty"] == "0.012"  # qtyStep 0.001, rounded down
    position = server.position("BTCUSDT")
    assert position["side"] == "Buy"
    assert position["takeProfit"] == "69876.50"  # tickSize 0.10
    assert position["stopLoss"] == "63012.30"
    assert server.leverage("BTCUSDT") == (Decimal(3), Decimal(3))


def test_the_same_signal_delivered_twice_gives_one_order(server, warehouse) -> None:
    runner = executor(server, warehouse)
    assert runner.process(signal()).action == "placed"
    assert runner.process(signal()).action == "duplicate"
    assert executor(server, warehouse).process(signal()).action == "duplicate"  # after a restart
    assert server.order_count() == 1


def test_a_timeout_after_the_venue_accepted_gives_no_duplicate(server, warehouse) -> None:
    server.inject("timeout_after_accept", path=CREATE)
    runner = executor(server, warehouse)
    decision = runner.process(signal())
    assert decision.action == "placed"
    assert decision.reason == "after lookup: filled"
    assert server.order_count() == 1
    assert runner.process(signal()).action == "duplicate"
    assert server.order_count() == 1
    assert len(server.recorded(CREATE)) == 1  # never resent blindly


def test_a_duplicate_order_link_id_is_looked_up_not_resent(server, warehouse) -> None:
    session_for(server).place_order(
        category="linear", symbol="BTCUSDT", side="Buy", orderType="Market", qty="0.012",
        orderLinkId=order_link_id_for("sig-1"), positionIdx=0,
    )  # fmt: skip
    decision = executor(server, warehouse).process(signal())
    assert decision.action == "placed"
    assert decision.reason == "after lookup: filled"
    assert server.order_count() == 1
    assert server.ret_codes(CREATE)[-1] == 110072


def test_rate_limit_10006_is_waited_out_and_the_order_placed_once(server, warehouse) -> None:
    server.inject("ratelimit", path=CREATE)
    assert executor(server, warehouse).process(signal()).action == "placed"
    assert server.ret_codes(CREATE) == [10006, 0]
    assert server.order_count() == 1


def test_a_halted_executor_places_nothing(server, warehouse) -> None:
    runner = executor(server, warehouse)
    runner.store.halt("kill switch", utc_now())
    decision = runner.process(signal())
    assert decision.action == "skipped"
    assert "trading halted: kill switch" in decision.reason
    assert server.order_count() == 0
    assert server.recorded(CREATE) == []


def test_restart_reconciles_a_pending_order_with_the_venue(server, warehouse) -> None:
    store = ExecutorStore(warehouse, "testnet")
    olid = order_link_id_for("sig-9")
    now = utc_now()
    # A crash between persisting 'pending' and hearing back: the venue has the order.
    store.save_order(order_link_id=olid, signal_id="sig-9", symbol="BTC", side="Buy", qty="0.010",
                     status="pending", leverage=1, created_at=now, updated_at=now)  # fmt: skip
    session_for(server).place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Market",
                                    qty="0.010", orderLinkId=olid, positionIdx=0)  # fmt: skip
    report = executor(server, warehouse).start(["BTC"], 1)
    assert report.resolved == {olid: "filled"}
    assert report.positions.keys() == {"BTCUSDT"}
    assert report.positions["BTCUSDT"].startswith("long 0.01")
    assert store.order(olid)["status"] == "filled"
    assert executor(server, warehouse).process(signal("sig-9")).action == "duplicate"
    assert server.order_count() == 1


def test_start_up_switches_to_one_way_mode(server, warehouse) -> None:
    server.set_position_mode(HEDGE)
    executor(server, warehouse).start(["BTC", "ETH"], 2)
    assert server.position_mode("BTCUSDT") == ONE_WAY
    assert server.leverage("ETHUSDT") == (Decimal(2), Decimal(2))
    executor(server, warehouse).start(["BTC"], 2)  # 110025 / 110043 on repeat are not errors


def test_orders_below_min_notional_are_rejected_before_the_venue(server, warehouse) -> None:
    decision = executor(server, warehouse).process(signal(qty=0.00001))
    assert decision.action == "rejected"
    assert server.recorded(CREATE) == []


def test_stale_signals_are_rejected(server, warehouse) -> None:
    old = signal(created_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert executor(server, warehouse).process(old).action == "skipped"
    assert server.order_count() == 0


def test_venue_errors_never_carry_the_api_key(server, warehouse) -> None:
    from pybit.exceptions import InvalidRequestError

    broker = BybitBroker(session_for(server, secret="wrong-secret"), "testnet")
    with pytest.raises(InvalidRequestError) as caught:
        broker.prepare(["BTC"], 2)
    assert caught.value.status_code == 10004
    assert server.api_key not in str(caught.value)
    assert server.api_key not in str(caught.value.message)
    with pytest.raises(InvalidRequestError) as caught:
        broker.equity()
    assert server.api_key not in str(caught.value)


def test_an_unlisted_symbol_does_not_stop_start_up(server, warehouse) -> None:
    runner = executor(server, warehouse)
    runner.start(["PEPE", "BTC"], 2)
    assert server.leverage("BTCUSDT") == (Decimal(2), Decimal(2))
