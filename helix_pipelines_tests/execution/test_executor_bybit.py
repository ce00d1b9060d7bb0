"""The executor with the Bybit broker: a real pybit session against the fake Bybit v5 server,
which answers as the real venue is recorded to (asynchronous orders, partial fills, 10000 /
10016 after accepting, paged lists, position modes that do not always switch)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pybit.unified_trading import HTTP

from helix_pipelines.clock import utc_now
from helix_pipelines.contracts.records import OrderRecord
from helix_pipelines.contracts.signals import TradeSignal
from helix_pipelines.execution.bybit import BybitBroker
from helix_pipelines.execution.executor import Executor
from helix_pipelines.execution.guard import GuardLimits
from helix_pipelines.execution.orders import order_link_id_for
from helix_pipelines.execution.ports import ExecutorStore, halt
from helix_pipelines.testing.bybit_instruments import DEFAULT_INSTRUMENTS, make_instrument
from helix_pipelines.testing.bybit_server import FakeBybitServer
from helix_pipelines.testing.bybit_venue import HEDGE, ONE_WAY
from helix_pipelines.testing.signals import make_signal
from helix_pipelines.testing.warehouses import duckdb_warehouse
from helix_pipelines.warehouse import Warehouse

CREATE = "/v5/order/create"
REALTIME = "/v5/order/realtime"
LEVERAGE = "/v5/position/set-leverage"
POSITIONS = "/v5/position/list"


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
def warehouse(tmp_path: Path) -> Iterator[Warehouse]:
    opened = duckdb_warehouse(tmp_path / "helix.duckdb")
    yield opened
    opened.close()


def store_of(warehouse: Warehouse) -> ExecutorStore:
    return warehouse.executor_store("testnet")


class Clock:
    def __init__(self) -> None:
        self.shift = timedelta(0)

    def __call__(self) -> datetime:
        return utc_now() + self.shift


def executor(
    server: FakeBybitServer,
    warehouse: Warehouse,
    *,
    clock: Clock | None = None,
    **broker_options: object,
) -> Executor:
    options: dict = {"confirm_seconds": 0.6, "visibility_grace_seconds": 5.0, **broker_options}
    broker = BybitBroker(session_for(server), "testnet", **options)
    limits = GuardLimits(max_order_notional_usd=50_000, max_symbol_notional_usd=50_000)
    return Executor(broker, store_of(warehouse), limits, clock=clock or utc_now)


def signal(
    signal_id: str = "sig-1",
    qty: float = 0.0123456,
    created_at: datetime | None = None,
    symbol: str = "BTC",
    side: str = "long",
) -> TradeSignal:
    entry = {"BTC": 65_000.0, "ETH": 3_200.0, "PEPE": 0.000019, "SHIB": 0.000024}[symbol]
    return make_signal(
        signal_id, symbol, side, entry=entry, qty=qty, leverage=3, created_at=created_at
    )


def row(warehouse: Warehouse, signal_id: str = "sig-1") -> OrderRecord:
    found = store_of(warehouse).order(order_link_id_for(signal_id))
    assert found is not None
    return found


# -- the plain path ------------------------------------------------------------------------------


def test_a_signal_becomes_one_quantized_order_with_exchange_side_tp_and_sl(
    server, warehouse
) -> None:
    runner = executor(server, warehouse)
    runner.start(["BTC"], 2)
    decision = runner.process(signal())
    assert decision.action == "placed"
    assert decision.reason == "long 0.012 BTCUSDT filled at 65,000"
    (order,) = server.venue.orders.values()
    assert order["orderLinkId"] == order_link_id_for("sig-1")
    assert order["qty"] == "0.012"  # qtyStep 0.001, rounded down
    position = server.venue.position("BTCUSDT")
    assert position["side"] == "Buy"
    assert position["takeProfit"] == "69875.00"  # tickSize 0.10 (65,000 x 1.075)
    assert position["stopLoss"] == "63050.00"
    assert server.venue.leverage("BTCUSDT") == (Decimal(3), Decimal(3))
    stored = row(warehouse)
    assert (stored.status, stored.filled_qty, stored.venue_status) == (
        "filled", "0.012", "Filled"
    )  # fmt: skip
    assert stored.venue_symbol == "BTCUSDT"


def test_the_same_signal_delivered_twice_gives_one_order(server, warehouse) -> None:
    runner = executor(server, warehouse)
    assert runner.process(signal()).action == "placed"
    assert runner.process(signal()).action == "duplicate"
    assert executor(server, warehouse).process(signal()).action == "duplicate"  # after a restart
    assert server.venue.order_count() == 1


def test_a_halted_executor_places_nothing(server, warehouse) -> None:
    runner = executor(server, warehouse)
    halt(runner.store, "kill switch", utc_now())
    decision = runner.process(signal())
    assert decision.action == "skipped"
    assert "trading halted: kill switch" in decision.reason
    assert server.venue.order_count() == 0
    assert server.recorded(CREATE) == []


def test_orders_below_min_notional_are_rejected_before_the_venue(server, warehouse) -> None:
    decision = executor(server, warehouse).process(signal(qty=0.00001))
    assert decision.action == "rejected"
    assert server.recorded(CREATE) == []


def test_stale_signals_are_skipped(server, warehouse) -> None:
    old = signal(created_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert executor(server, warehouse).process(old).action == "skipped"
    assert server.venue.order_count() == 0


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


def test_an_unlisted_coin_does_not_stop_start_up_and_is_rejected_with_a_reason(
    server, warehouse
) -> None:
    runner = executor(server, warehouse)
    runner.start(["NOPE", "BTC"], 2)
    assert server.venue.leverage("BTCUSDT") == (Decimal(2), Decimal(2))
    nope = replace(signal(), signal_id="n", symbol="NOPE")
    decision = runner.process(nope)
    assert decision.action == "rejected"
    assert "Bybit lists no trading USDT perpetual for NOPE" in decision.reason


# -- unknown outcomes are looked up, never assumed (point 1) --------------------------------------


def test_a_timeout_after_the_venue_accepted_gives_no_duplicate(server, warehouse) -> None:
    server.inject("timeout_after_accept", path=CREATE)
    runner = executor(server, warehouse)
    decision = runner.process(signal())
    assert decision.action == "placed"
    assert decision.reason.startswith("long 0.012 BTCUSDT filled at 65,000 (found by orderLinkId")
    assert "ReadTimeout" in decision.reason
    assert server.venue.order_count() == 1
    assert runner.process(signal()).action == "duplicate"
    assert server.venue.order_count() == 1
    assert len(server.recorded(CREATE)) == 1  # never resent blindly


@pytest.mark.parametrize("code", ["10000", "10016"])
def test_10000_and_10016_after_accepting_are_looked_up_not_rejected(
    server, warehouse, code: str
) -> None:
    server.inject(f"retcode_after_accept:{code}", path=CREATE)
    decision = executor(server, warehouse).process(signal())
    assert decision.action == "placed"
    assert f"retCode {code}" in decision.reason
    assert row(warehouse).status == "filled"
    assert len(server.recorded(CREATE)) == 1


def test_10016_without_an_order_is_unconfirmed_then_never_placed_after_its_deadline(
    server, warehouse
) -> None:
    clock = Clock()
    server.inject("retcode:10016", path=CREATE)
    runner = executor(server, warehouse, clock=clock)
    decision = runner.process(signal())
    assert decision.action == "unconfirmed"
    assert "not visible at Bybit after" in decision.reason
    assert "recv_window" in decision.reason
    assert "clock runs" in decision.reason
    assert row(warehouse).status == "unconfirmed"
    again = runner.process(signal())  # a redelivery within the deadline: still unknown
    assert again.action == "unconfirmed"
    clock.shift = timedelta(seconds=30)  # past recv_window + grace: it can no longer appear
    assert runner.process(signal()).action == "duplicate"
    assert row(warehouse).status == "not_placed"
    assert "past its acceptance deadline" in row(warehouse).reason
    assert server.venue.order_count() == 0
    assert len(server.recorded(CREATE)) == 1


def test_a_network_error_while_setting_leverage_defers_and_the_redelivery_places(
    server, warehouse
) -> None:
    server.inject("drop_before", path=LEVERAGE)
    runner = executor(server, warehouse)
    first = runner.process(signal())
    assert first.action == "deferred"
    assert "leverage of BTCUSDT unknown" in first.reason
    assert row(warehouse).status == "deferred"
    assert server.recorded(CREATE) == []
    second = runner.process(signal())  # decided afresh, same orderLinkId
    assert second.action == "placed"
    assert server.venue.order_count() == 1


def test_a_bybit_error_on_the_lookup_after_submit_keeps_looking(server, warehouse) -> None:
    server.inject("timeout_after_accept", path=CREATE)
    server.inject("retcode:10016", "http502", path=REALTIME)
    decision = executor(server, warehouse, confirm_seconds=3.0).process(signal())
    assert decision.action == "placed"
    assert row(warehouse).status == "filled"


@pytest.mark.parametrize("path", [CREATE, "/v5/market/tickers", POSITIONS, REALTIME])
def test_a_rate_limit_on_any_call_is_waited_out(server, warehouse, path: str) -> None:
    server.inject("ratelimit", "ratelimit", path=path)
    assert executor(server, warehouse).process(signal()).action == "placed"
    assert server.ret_codes(path)[:2] == [10006, 10006]
    assert server.venue.order_count() == 1


def test_a_rate_limit_past_patience_defers_never_rejects(server, warehouse) -> None:
    server.inject(*["ratelimit"] * 40, path=CREATE)
    runner = executor(server, warehouse, rate_limit_patience_seconds=0.3)
    decision = runner.process(signal())
    assert decision.action == "deferred"
    assert "10006" in decision.reason
    assert row(warehouse).status == "deferred"
    server.clear_faults()
    assert runner.process(signal()).action == "placed"


def test_restart_reconciles_a_pending_order_with_the_venue(server, warehouse) -> None:
    store = store_of(warehouse)
    olid = order_link_id_for("sig-9")
    now = utc_now()
    # A crash between persisting 'pending' and hearing back: the venue has the order.
    store.save_order(
        OrderRecord(
            order_link_id=olid,
            signal_id="sig-9",
            symbol="BTC",
            side="long",
            qty="0.010",
            status="pending",
            leverage=1,
            created_at=now,
            updated_at=now,
        )
    )
    session_for(server).place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Market",
                                    qty="0.010", orderLinkId=olid, positionIdx=0)  # fmt: skip
    report = executor(server, warehouse).start(["BTC"], 1)
    assert report.resolved == {olid: "filled"}
    assert report.positions == {"BTCUSDT": "long 0.01 @ 65,000"}
    assert (order := store.order(olid)) is not None
    assert order.status == "filled"
    assert executor(server, warehouse).process(signal("sig-9")).action == "duplicate"
    assert server.venue.order_count() == 1


# -- asynchronous creation (point 2) --------------------------------------------------------------


def test_an_order_that_shows_up_late_is_polled_for_with_its_order_id(server, warehouse) -> None:
    server.venue.visibility_delay = 0.3
    decision = executor(server, warehouse, confirm_seconds=2.0).process(signal())
    assert decision.action == "placed"
    lookups = server.recorded(REALTIME)
    assert len(lookups) >= 2  # the first lookups found nothing yet
    (order,) = server.venue.orders.values()
    assert {r.params.get("orderId") for r in lookups} == {order["orderId"]}


def test_an_order_invisible_past_the_poll_budget_is_unconfirmed_then_resolved_at_start_up(
    server, warehouse
) -> None:
    server.venue.visibility_delay = 1.0
    runner = executor(server, warehouse, confirm_seconds=0.3)
    decision = runner.process(signal())
    assert decision.action == "unconfirmed"
    assert "may still appear" in decision.reason
    server.venue.visibility_delay = 0.0
    report = executor(server, warehouse).start(["BTC"], 3)
    assert report.resolved == {order_link_id_for("sig-1"): "filled"}
    assert runner.process(signal()).action == "duplicate"
    assert server.venue.order_count() == 1


def test_the_acceptance_deadline_counts_the_venues_clock_lead(server) -> None:
    server.clock_offset_ms = 2_000  # Bybit's clock runs 2 s ahead of ours
    broker = BybitBroker(session_for(server), "testnet", visibility_grace_seconds=0.0)
    sent = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    deadline = broker.acceptance_deadline(sent)
    assert broker.clock_offset_ms == pytest.approx(2_000, abs=150)
    # recv_window 5 s, less the 2 s the venue is ahead: it stops accepting 3 s after signing.
    assert (deadline - sent).total_seconds() == pytest.approx(3.0, abs=0.15)


# -- fills from cumExecQty (point 3) ---------------------------------------------------------------


def test_a_partial_fill_is_recorded_as_such(server, warehouse) -> None:
    server.venue.liquidity["BTCUSDT"] = Decimal("0.005")
    decision = executor(server, warehouse).process(signal())
    assert decision.action == "placed"
    assert decision.reason == (
        "long 0.012 BTCUSDT: 0.005 filled at 65,000, the rest cancelled by the venue "
        "(Bybit: PartiallyFilledCanceled)"
    )
    stored = row(warehouse)
    assert (stored.status, stored.qty, stored.filled_qty) == (
        "partially_filled", "0.012", "0.005"
    )  # fmt: skip
    assert server.venue.position("BTCUSDT")["size"] == "0.005"


def test_a_market_order_cancelled_with_nothing_filled_is_not_placed(server, warehouse) -> None:
    server.venue.liquidity["BTCUSDT"] = Decimal(0)
    runner = executor(server, warehouse)
    decision = runner.process(signal())
    assert decision.action == "not_filled"
    assert "cancelled by the venue with nothing filled (Bybit: Cancelled)" in decision.reason
    assert row(warehouse).status == "cancelled"
    assert runner.book() == {}


def test_a_duplicate_order_link_id_is_looked_up_not_resent(server, warehouse) -> None:
    """An earlier attempt (that died before writing anything) had sent it; nothing filled."""
    server.venue.liquidity["BTCUSDT"] = Decimal(0)
    session_for(server).place_order(
        category="linear", symbol="BTCUSDT", side="Buy", orderType="Market", qty="0.012",
        orderLinkId=order_link_id_for("sig-1"), positionIdx=0,
    )  # fmt: skip
    decision = executor(server, warehouse).process(signal())
    assert decision.action == "not_filled"
    assert "duplicate orderLinkId (110072)" in decision.reason
    assert server.venue.order_count() == 1
    assert server.ret_codes(CREATE)[-1] == 110072


def test_an_order_the_venue_already_filled_is_recorded_not_skipped(server, warehouse) -> None:
    session_for(server).place_order(
        category="linear", symbol="BTCUSDT", side="Buy", orderType="Market", qty="0.012",
        orderLinkId=order_link_id_for("sig-1"), positionIdx=0,
    )  # fmt: skip
    decision = executor(server, warehouse).process(signal())
    assert decision.action == "placed"
    assert "found at the venue by orderLinkId" in decision.reason
    assert row(warehouse).status == "filled"
    assert len(server.recorded(CREATE)) == 1  # only the earlier attempt's


# -- lists, caps, formats (point 4) ---------------------------------------------------------------


def test_positions_are_read_across_pages(server, warehouse) -> None:
    for i in range(205):
        symbol = f"C{i:03d}USDT"
        server.venue.instruments[symbol] = make_instrument(
            symbol, tick_size="0.01", qty_step="1", min_order_qty="1", max_order_qty="1000"
        )
        server.venue.set_price(symbol, "10")
        server.venue.open_position(symbol, "Buy", "3", "10")
    broker = BybitBroker(session_for(server), "testnet")
    assert len(broker.positions()) == 205
    pages = [r.params.get("cursor") for r in server.recorded(POSITIONS)]
    assert pages == [None, "200"]  # pages of the largest size Bybit allows (200)


def test_market_orders_are_capped_by_max_mkt_order_qty(server, warehouse) -> None:
    limits = GuardLimits(max_order_notional_usd=1e9, max_symbol_notional_usd=1e9)
    broker = BybitBroker(session_for(server), "testnet", confirm_seconds=0.5)
    runner = Executor(broker, store_of(warehouse), limits)
    decision = runner.process(signal(qty=150.0))
    assert decision.action == "placed"
    assert decision.reason.endswith("; capped from 150.000 to maxMktOrderQty 119.000")
    assert server.venue.orders[order_link_id_for("sig-1")]["qty"] == "119.000"


def test_quantities_and_prices_go_out_as_plain_decimals(server, warehouse) -> None:
    """1000PEPEUSDT has a tick of 1E-7: a float or Decimal printed as is would say so."""
    decision = executor(server, warehouse).process(signal(symbol="PEPE", qty=20_000_000))
    assert decision.action == "placed"
    (sent,) = server.recorded(CREATE)
    for name in ("qty", "takeProfit", "stopLoss"):
        assert "E" not in sent.params[name].upper(), sent.params
    assert sent.params["stopLoss"] == "0.0184300"


# -- multipliers (point 5) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("coin", "symbol", "qty", "entry_scale"),
    [("PEPE", "1000PEPEUSDT", "20000", 1000), ("SHIB", "SHIB1000USDT", "16660", 1000)],
)
def test_coins_trade_on_their_multiplied_instruments(
    server, warehouse, coin: str, symbol: str, qty: str, entry_scale: int
) -> None:
    coin_qty = {"PEPE": 20_000_000, "SHIB": 16_666_666}[coin]
    decision = executor(server, warehouse).process(signal(symbol=coin, qty=coin_qty))
    assert decision.action == "placed"
    order = server.venue.orders[order_link_id_for("sig-1")]
    assert (order["symbol"], order["qty"]) == (symbol, qty)  # coins / 1000, to the qtyStep
    entry = signal(symbol=coin).entry * entry_scale
    assert float(order["takeProfit"]) == pytest.approx(entry * 1.075, rel=1e-4)
    assert row(warehouse).venue_symbol == symbol


def test_a_scale_mismatch_between_coin_and_instrument_is_caught_before_trading(
    server, warehouse
) -> None:
    server.venue.set_price("1000PEPEUSDT", "0.0000190")  # quoted per coin, not per 1,000: 1000x off
    decision = executor(server, warehouse).process(signal(symbol="PEPE", qty=20_000_000))
    assert decision.action == "skipped"
    assert "from the signal entry" in decision.reason
    assert server.venue.order_count() == 0


# -- one trade idea, one position (point 6) --------------------------------------------------------


def test_a_new_signal_on_an_open_position_is_skipped_in_either_direction(server, warehouse) -> None:
    runner = executor(server, warehouse)
    assert runner.process(signal("a")).action == "placed"
    same = runner.process(signal("b"))
    assert same.action == "skipped"
    assert same.reason == "already long 0.012 BTCUSDT @ 65,000: one trade idea, one position"
    opposite = runner.process(signal("c", side="short"))
    assert opposite.action == "skipped"
    assert "Helix neither flips nor hedges" in opposite.reason
    assert server.venue.order_count() == 1
    assert runner.book() == {"BTCUSDT": "long 0.012 @ 65,000"}


def test_a_position_opened_by_hand_also_counts(server, warehouse) -> None:
    server.venue.open_position("ETHUSDT", "Sell", "1.5", "3210.50")
    decision = executor(server, warehouse).process(signal(symbol="ETH", qty=1.0))
    assert decision.action == "skipped"
    assert decision.reason.startswith("opposite to the open short 1.5 ETHUSDT @ 3,210.5")


def test_a_signal_waits_while_an_order_for_its_symbol_is_unconfirmed(server, warehouse) -> None:
    server.inject("retcode:10016", path=CREATE)
    runner = executor(server, warehouse)
    assert runner.process(signal("a")).action == "unconfirmed"
    decision = runner.process(signal("b"))
    assert decision.action == "skipped"
    assert decision.reason == (
        f"order {order_link_id_for('a')} for BTC is still unconfirmed: one trade idea, one position"
    )


# -- position modes (point 7) ---------------------------------------------------------------------


def test_start_up_switches_to_one_way_mode(server, warehouse) -> None:
    server.venue.set_position_mode(HEDGE)
    executor(server, warehouse).start(["BTC", "ETH"], 2)
    assert server.venue.position_mode("BTCUSDT") == ONE_WAY
    assert server.venue.leverage("ETHUSDT") == (Decimal(2), Decimal(2))
    executor(server, warehouse).start(["BTC"], 2)  # 110025 / 110043 on repeat are not errors


def test_a_symbol_that_kept_hedge_mode_is_traded_with_its_position_idx(server, warehouse) -> None:
    server.venue.set_position_mode(HEDGE)
    # A resting order placed by hand keeps ETHUSDT in hedge mode when USDT switches.
    session_for(server).place_order(
        category="linear", symbol="ETHUSDT", side="Buy", orderType="Limit", qty="0.10",
        price="2500.00", orderLinkId="by-hand", positionIdx=1,
    )  # fmt: skip
    runner = executor(server, warehouse)
    runner.start(["BTC", "ETH"], 2)
    assert server.venue.position_mode("ETHUSDT") == HEDGE  # Bybit answered OK all the same
    assert server.venue.position_mode("BTCUSDT") == ONE_WAY
    decision = runner.process(signal(symbol="ETH", qty=1.0, side="short"))
    assert decision.action == "placed"
    (sent,) = server.recorded(CREATE)[1:]
    assert sent.params["positionIdx"] == 2  # hedge mode: the short side's index


def test_instruments_come_from_the_whole_listing(server, warehouse) -> None:
    for i in range(600):
        symbol = f"Z{i:03d}USDT"
        server.venue.instruments[symbol] = {**DEFAULT_INSTRUMENTS["BTCUSDT"], "symbol": symbol,
                                      "baseCoin": symbol[:-4]}  # fmt: skip
    broker = BybitBroker(session_for(server), "testnet")
    assert broker.instrument("Z599").symbol == "Z599USDT"
    assert broker.instrument("BTC").symbol == "BTCUSDT"
    assert len(server.recorded("/v5/market/instruments-info")) == 1  # 607 rows, one 1000-row page
