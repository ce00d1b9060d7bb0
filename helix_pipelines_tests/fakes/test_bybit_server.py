"""The fake Bybit v5 server, driven by a real pybit `HTTP` session over a real socket.

These tests pin down both the fake's behaviour and the pybit behaviour the executor relies on:
which exception each failure surfaces as, and which retries pybit makes on its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests
from pybit.exceptions import FailedRequestError, InvalidRequestError
from pybit.unified_trading import HTTP

from helix_pipelines_tests.fakes.bybit_server import (
    DEFAULT_INSTRUMENTS,
    FAULTS,
    HEDGE,
    ONE_WAY,
    ORDER_CREATE_PATH,
    POSITIONS_PATH,
    FakeBybitServer,
)


@pytest.fixture
def server() -> Iterator[FakeBybitServer]:
    with FakeBybitServer() as fake:
        yield fake


def make_session(server: FakeBybitServer, **overrides: Any) -> HTTP:
    """A real pybit session aimed at the fake, configured the way the executor should be.

    `max_retries=1`: one attempt (0 would make pybit's retry loop never run and crash).
    `retry_delay=0`, `force_retry=False`: no resending after a network error.
    `retry_codes={10002}`: pybit's default set also holds 10006, which makes it sleep until the
    rate-limit reset and resend on its own; with one attempt that ends in an opaque
    FailedRequestError, so 10006 is left to surface as InvalidRequestError instead.
    (An empty set would be replaced by pybit's defaults, hence a non-empty one.)
    """
    options: dict[str, Any] = {
        "testnet": True,
        "api_key": server.api_key,
        "api_secret": server.api_secret,
        "timeout": 1,
        "max_retries": 1,
        "retry_delay": 0,
        "force_retry": False,
        "retry_codes": {10002},
    }
    options.update(overrides)
    session = HTTP(**options)
    session.endpoint = server.endpoint
    return session


@pytest.fixture
def session(server: FakeBybitServer) -> HTTP:
    return make_session(server)


def market(session: HTTP, link: str, **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "category": "linear",
        "symbol": "BTCUSDT",
        "side": "Buy",
        "orderType": "Market",
        "qty": "0.010",
        "orderLinkId": link,
        "positionIdx": 0,
    }
    params.update(extra)
    return session.place_order(**params)


def bybit_code(excinfo: pytest.ExceptionInfo[InvalidRequestError]) -> int:
    return int(excinfo.value.status_code)


# -- market data and account ------------------------------------------------------------------


def test_instruments_info_has_bybit_filters(session: HTTP) -> None:
    one = session.get_instruments_info(category="linear", symbol="BTCUSDT")
    assert one["retCode"] == 0
    assert one["retMsg"] == "OK"
    [btc] = one["result"]["list"]
    assert btc["symbol"] == "BTCUSDT"
    assert btc["lotSizeFilter"]["qtyStep"] == "0.001"
    assert btc["lotSizeFilter"]["minOrderQty"] == "0.001"
    assert btc["lotSizeFilter"]["maxOrderQty"] == "1190.000"
    assert btc["lotSizeFilter"]["minNotionalValue"] == "5"
    assert btc["priceFilter"] == {"minPrice": "0.10", "maxPrice": "1999999.80", "tickSize": "0.10"}
    assert btc["leverageFilter"]["maxLeverage"] == "100.00"

    everything = session.get_instruments_info(category="linear")["result"]["list"]
    assert [i["symbol"] for i in everything] == list(DEFAULT_INSTRUMENTS)
    doge = next(i for i in everything if i["symbol"] == "DOGEUSDT")
    assert doge["priceFilter"]["tickSize"] == "0.00001"
    assert doge["lotSizeFilter"]["qtyStep"] == "1"

    unknown = session.get_instruments_info(category="linear", symbol="NOPEUSDT")
    assert unknown["retCode"] == 0
    assert unknown["result"]["list"] == []


def test_tickers_follow_set_price(server: FakeBybitServer, session: HTTP) -> None:
    server.set_price("ETHUSDT", "3456.78", mark_price="3456.00")
    [eth] = session.get_tickers(category="linear", symbol="ETHUSDT")["result"]["list"]
    assert eth["lastPrice"] == "3456.78"
    assert eth["markPrice"] == "3456.00"
    assert len(session.get_tickers(category="linear")["result"]["list"]) == 5
    with pytest.raises(InvalidRequestError) as excinfo:
        session.get_tickers(category="linear", symbol="NOPEUSDT")
    assert bybit_code(excinfo) == 10001


def test_wallet_balance_reports_configured_equity() -> None:
    with FakeBybitServer(equity="2500") as server:
        session = make_session(server)
        [account] = session.get_wallet_balance(accountType="UNIFIED")["result"]["list"]
        assert account["accountType"] == "UNIFIED"
        assert account["totalEquity"] == "2500"
        assert account["totalAvailableBalance"] == "2500"
        assert account["coin"][0]["coin"] == "USDT"
        assert account["coin"][0]["walletBalance"] == "2500"
        server.set_equity("1234.5")
        [account] = session.get_wallet_balance(accountType="UNIFIED")["result"]["list"]
        assert account["totalEquity"] == "1234.5"
        with pytest.raises(InvalidRequestError) as excinfo:
            session.get_wallet_balance(accountType="CONTRACT")
        assert bybit_code(excinfo) == 10001


# -- orders and positions ---------------------------------------------------------------------


def test_market_order_fills_and_shows_in_position_list(
    server: FakeBybitServer, session: HTTP
) -> None:
    reply = market(session, "sig-1", takeProfit="70000", stopLoss="60000")
    assert reply["retCode"] == 0
    assert reply["result"]["orderLinkId"] == "sig-1"
    order_id = reply["result"]["orderId"]

    [pos] = session.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert pos["positionIdx"] == 0
    assert pos["side"] == "Buy"
    assert pos["size"] == "0.010"
    assert Decimal(pos["avgPrice"]) == Decimal("65000")
    assert pos["leverage"] == "10"
    assert pos["takeProfit"] == "70000.00"
    assert pos["stopLoss"] == "60000.00"
    by_coin = session.get_positions(category="linear", settleCoin="USDT")["result"]["list"]
    assert [p["symbol"] for p in by_coin] == ["BTCUSDT"]

    [order] = session.get_open_orders(category="linear", symbol="BTCUSDT", orderLinkId="sig-1")[
        "result"
    ]["list"]
    assert order["orderId"] == order_id
    assert order["orderStatus"] == "Filled"
    assert order["cumExecQty"] == "0.010"
    assert Decimal(order["avgPrice"]) == Decimal("65000")
    # Without an id, realtime lists open orders only; history has the filled one.
    assert session.get_open_orders(category="linear", symbol="BTCUSDT")["result"]["list"] == []
    history = session.get_order_history(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert [o["orderLinkId"] for o in history] == ["sig-1"]

    [fill] = server.fills
    assert fill["orderLinkId"] == "sig-1"
    assert fill["execQty"] == "0.010"
    assert fill["execPrice"] == "65000.00"
    fee = Decimal("0.010") * Decimal("65000") * Decimal("0.00055")
    assert Decimal(fill["execFee"]) == fee
    assert server.orders["sig-1"]["orderStatus"] == "Filled"
    assert server.positions[("BTCUSDT", 0)]["size"] == "0.010"
    assert server.order_count() == 1
    [account] = session.get_wallet_balance(accountType="UNIFIED")["result"]["list"]
    assert Decimal(account["totalWalletBalance"]) == Decimal(100000) - fee


def test_closing_and_take_profit_trigger(server: FakeBybitServer, session: HTTP) -> None:
    market(session, "open-1", qty="0.100", takeProfit="66000")
    market(session, "close-part", side="Sell", qty="0.040", reduceOnly=True)
    assert server.position("BTCUSDT")["size"] == "0.060"
    server.set_price("BTCUSDT", "66000.00")
    closed = server.position("BTCUSDT")
    assert closed["size"] == "0.000"
    assert closed["side"] == ""
    assert [f["stopOrderType"] for f in server.fills] == ["", "", "TakeProfit"]
    assert server.order_count() == 2
    with pytest.raises(InvalidRequestError) as excinfo:
        market(session, "close-none", side="Sell", qty="0.010", reduceOnly=True)
    assert bybit_code(excinfo) == 110017


def test_limit_order_rests_then_cancels(server: FakeBybitServer, session: HTTP) -> None:
    placed = session.place_order(
        category="linear",
        symbol="ETHUSDT",
        side="Buy",
        orderType="Limit",
        qty="0.50",
        price="3100.00",
        timeInForce="GTC",
        orderLinkId="lim-1",
        positionIdx=0,
    )
    order_id = placed["result"]["orderId"]
    [open_order] = session.get_open_orders(category="linear", symbol="ETHUSDT")["result"]["list"]
    assert open_order["orderId"] == order_id
    assert open_order["orderStatus"] == "New"
    assert open_order["price"] == "3100.00"
    assert open_order["leavesQty"] == "0.50"
    assert server.fills == []

    cancelled = session.cancel_order(category="linear", symbol="ETHUSDT", orderLinkId="lim-1")
    assert cancelled["result"] == {"orderId": order_id, "orderLinkId": "lim-1"}
    assert session.get_open_orders(category="linear", symbol="ETHUSDT")["result"]["list"] == []
    assert server.orders["lim-1"]["orderStatus"] == "Cancelled"
    with pytest.raises(InvalidRequestError) as excinfo:
        session.cancel_order(category="linear", symbol="ETHUSDT", orderId=order_id)
    assert bybit_code(excinfo) == 110001


def test_resting_limit_fills_when_price_crosses(server: FakeBybitServer, session: HTTP) -> None:
    session.place_order(
        category="linear",
        symbol="SOLUSDT",
        side="Sell",
        orderType="Limit",
        qty="10.0",
        price="155.000",
        orderLinkId="lim-sol",
    )
    server.set_price("SOLUSDT", "154.990")
    assert server.orders["lim-sol"]["orderStatus"] == "New"
    server.set_price("SOLUSDT", "155.500")
    assert server.orders["lim-sol"]["orderStatus"] == "Filled"
    pos = server.position("SOLUSDT")
    assert pos["side"] == "Sell"
    assert pos["size"] == "10.0"
    assert Decimal(pos["avgPrice"]) == Decimal("155")
    assert server.fills[0]["isMaker"] is True


def test_duplicate_order_link_id_is_rejected_with_110072(
    server: FakeBybitServer, session: HTTP
) -> None:
    market(session, "dup-1")
    with pytest.raises(InvalidRequestError) as excinfo:
        market(session, "dup-1")
    assert bybit_code(excinfo) == 110072
    assert excinfo.value.message == "OrderLinkedID is duplicate"
    assert server.order_count() == 1
    assert server.position("BTCUSDT")["size"] == "0.010"
    assert server.ret_codes(ORDER_CREATE_PATH) == [0, 110072]


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"qty": "0.0105"}, 10001),  # not a multiple of qtyStep 0.001
        ({"qty": "0.0001"}, 10001),  # not a multiple either, and below minOrderQty
        ({"qty": "120.000"}, 10001),  # above maxMktOrderQty
        ({"symbol": "XRPUSDT", "qty": "5"}, 110094),  # 5 * 0.6 = 3 USDT < minNotionalValue 5
        ({"side": "Long"}, 10001),
        ({"orderType": "Stop"}, 10001),
        ({"orderLinkId": "x" * 37}, 10001),
        ({"takeProfit": "60000"}, 10001),  # below the price for a Buy
        ({"stopLoss": "60000.05"}, 10001),  # not on the 0.10 tick
        ({"qty": "1000.000", "orderType": "Limit", "price": "65000.00"}, 110007),  # margin
        ({"orderType": "Limit", "price": "65000.05"}, 10001),  # not on the tick
        ({"orderType": "Limit"}, 10001),  # price missing
    ],
)
def test_invalid_orders_are_rejected(
    server: FakeBybitServer, session: HTTP, overrides: dict[str, Any], code: int
) -> None:
    with pytest.raises(InvalidRequestError) as excinfo:
        market(session, "bad-1", **overrides)
    assert bybit_code(excinfo) == code
    assert server.order_count() == 0
    assert server.fills == []
    # A rejected order does not consume its orderLinkId.
    assert market(session, "bad-1")["retCode"] == 0


def test_position_idx_must_match_position_mode(server: FakeBybitServer, session: HTTP) -> None:
    with pytest.raises(InvalidRequestError) as excinfo:
        market(session, "idx-1", positionIdx=1)
    assert bybit_code(excinfo) == 10001
    assert "position idx not match position mode" in excinfo.value.message

    server.set_position_mode(HEDGE)
    with pytest.raises(InvalidRequestError) as excinfo:
        market(session, "idx-2", positionIdx=0)
    assert bybit_code(excinfo) == 10001
    with pytest.raises(InvalidRequestError) as excinfo:
        market(session, "idx-3", side="Sell", positionIdx=1)  # opening a short on the long idx
    assert bybit_code(excinfo) == 10001
    market(session, "idx-4", positionIdx=1)
    market(session, "idx-5", side="Sell", qty="0.020", positionIdx=2)
    rows = session.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert [(p["positionIdx"], p["side"], p["size"]) for p in rows] == [
        (1, "Buy", "0.010"),
        (2, "Sell", "0.020"),
    ]
    assert server.order_count() == 2


def test_set_leverage_and_110043_when_unchanged(server: FakeBybitServer, session: HTTP) -> None:
    done = session.set_leverage(
        category="linear", symbol="BTCUSDT", buyLeverage="5", sellLeverage="5"
    )
    assert done["retCode"] == 0
    assert server.leverage("BTCUSDT") == (Decimal(5), Decimal(5))
    with pytest.raises(InvalidRequestError) as excinfo:
        session.set_leverage(category="linear", symbol="BTCUSDT", buyLeverage="5", sellLeverage="5")
    assert bybit_code(excinfo) == 110043
    with pytest.raises(InvalidRequestError) as excinfo:
        session.set_leverage(
            category="linear", symbol="XRPUSDT", buyLeverage="80", sellLeverage="80"
        )
    assert bybit_code(excinfo) == 10001  # above XRPUSDT's maxLeverage 75
    market(session, "lev-1")
    [pos] = session.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert pos["leverage"] == "5"
    # pybit's ignore_codes turns a retCode into a plain answer instead of an exception.
    tolerant = make_session(server, ignore_codes={110043})
    again = tolerant.set_leverage(
        category="linear", symbol="BTCUSDT", buyLeverage="5", sellLeverage="5"
    )
    assert again["retCode"] == 110043


def test_switch_mode(server: FakeBybitServer, session: HTTP) -> None:
    assert server.position_mode("BTCUSDT") == ONE_WAY
    with pytest.raises(InvalidRequestError) as excinfo:
        session.switch_position_mode(category="linear", symbol="BTCUSDT", mode=0)
    assert bybit_code(excinfo) == 110025
    assert session.switch_position_mode(category="linear", coin="USDT", mode=3)["retCode"] == 0
    assert server.position_mode("BTCUSDT") == HEDGE
    assert server.position_mode("DOGEUSDT") == HEDGE
    rows = session.get_positions(category="linear", symbol="ETHUSDT")["result"]["list"]
    assert [(p["positionIdx"], p["size"]) for p in rows] == [(1, "0.00"), (2, "0.00")]
    market(session, "hedge-1", positionIdx=1)
    with pytest.raises(InvalidRequestError) as excinfo:
        session.switch_position_mode(category="linear", symbol="BTCUSDT", mode=0)
    assert bybit_code(excinfo) == 110024  # an open position blocks the switch
    assert session.switch_position_mode(category="linear", symbol="ETHUSDT", mode=0)["retCode"] == 0
    assert server.position_mode("ETHUSDT") == ONE_WAY


# -- authentication ---------------------------------------------------------------------------


def test_wrong_secret_is_rejected_with_10004(server: FakeBybitServer) -> None:
    session = make_session(server, api_secret="not-the-secret")
    with pytest.raises(InvalidRequestError) as excinfo:
        session.get_wallet_balance(accountType="UNIFIED")
    assert bybit_code(excinfo) == 10004
    with pytest.raises(InvalidRequestError) as excinfo:
        market(session, "sig-bad")
    assert bybit_code(excinfo) == 10004
    assert server.order_count() == 0
    # Public endpoints need no signature.
    assert session.get_tickers(category="linear", symbol="BTCUSDT")["retCode"] == 0


def test_wrong_key_is_rejected_with_10003(server: FakeBybitServer) -> None:
    session = make_session(server, api_key="someone-else")
    with pytest.raises(InvalidRequestError) as excinfo:
        session.get_positions(category="linear", settleCoin="USDT")
    assert bybit_code(excinfo) == 10003


def test_timestamp_outside_recv_window_is_rejected_with_10002(server: FakeBybitServer) -> None:
    server.clock_offset_ms = -5000  # the client looks 5 s ahead of the venue
    session = make_session(server, retry_codes={10006})
    with pytest.raises(InvalidRequestError) as excinfo:
        session.get_wallet_balance(accountType="UNIFIED")
    assert bybit_code(excinfo) == 10002
    server.clock_offset_ms = 0
    assert session.get_wallet_balance(accountType="UNIFIED")["retCode"] == 0


# -- faults -----------------------------------------------------------------------------------


def test_timeout_after_accept_leaves_the_order_on_the_venue(
    server: FakeBybitServer, session: HTTP
) -> None:
    server.inject("timeout_after_accept", path=ORDER_CREATE_PATH)
    with pytest.raises(requests.exceptions.ReadTimeout):
        market(session, "lost-1")
    # The venue created and filled it although the client never heard back.
    found = session.get_open_orders(category="linear", symbol="BTCUSDT", orderLinkId="lost-1")
    [order] = found["result"]["list"]
    assert order["orderLinkId"] == "lost-1"
    assert order["orderStatus"] == "Filled"
    assert server.order_count() == 1
    [record] = server.recorded(ORDER_CREATE_PATH)
    assert record.fault == "timeout_after_accept"
    assert record.ret_code == 0
    assert record.http_status is None
    # Sending it again is answered with 110072, never a second order.
    with pytest.raises(InvalidRequestError) as excinfo:
        market(session, "lost-1")
    assert bybit_code(excinfo) == 110072
    assert server.order_count() == 1


def test_force_retry_resends_after_a_timeout(server: FakeBybitServer) -> None:
    """Why the executor keeps force_retry off: pybit resends, and only the id saves us."""
    session = make_session(server, force_retry=True, max_retries=2)
    server.inject("timeout_after_accept", path=ORDER_CREATE_PATH)
    with pytest.raises(InvalidRequestError) as excinfo:
        market(session, "resent-1")
    assert bybit_code(excinfo) == 110072
    assert server.ret_codes(ORDER_CREATE_PATH) == [0, 110072]
    assert server.order_count() == 1


def test_timeout_before_processing_acts_after_the_client_gave_up(
    server: FakeBybitServer, session: HTTP
) -> None:
    server.inject("timeout_before:1.3", path=ORDER_CREATE_PATH)
    with pytest.raises(requests.exceptions.ReadTimeout):
        market(session, "late-1")
    assert server.wait_until_idle(timeout=5)
    assert server.orders["late-1"]["orderStatus"] == "Filled"
    assert server.order_count() == 1


def test_drop_after_accept_surfaces_as_connection_error(
    server: FakeBybitServer, session: HTTP
) -> None:
    server.inject("drop_after_accept", path=ORDER_CREATE_PATH)
    with pytest.raises(requests.exceptions.ConnectionError):
        market(session, "drop-1")
    assert server.order_count(order_link_id="drop-1") == 1
    # The session recovers on a fresh connection.
    assert session.get_positions(category="linear", symbol="BTCUSDT")["retCode"] == 0


def test_rate_limit_surfaces_as_invalid_request_10006(
    server: FakeBybitServer, session: HTTP
) -> None:
    server.inject("ratelimit", path=ORDER_CREATE_PATH)
    with pytest.raises(InvalidRequestError) as excinfo:
        market(session, "rl-1")
    assert bybit_code(excinfo) == 10006
    headers = excinfo.value.resp_headers
    assert headers["X-Bapi-Limit-Status"] == "0"
    assert int(headers["X-Bapi-Limit-Reset-Timestamp"]) > 0
    assert server.order_count() == 0
    # Nothing was created, so sending again is safe and succeeds.
    assert market(session, "rl-1")["retCode"] == 0
    ok = server.recorded(ORDER_CREATE_PATH)[-1]
    assert int(ok.ret_code or 0) == 0


def test_pybit_default_retry_codes_sleep_and_resend_on_10006(server: FakeBybitServer) -> None:
    """pybit's defaults retry 10006 itself, sleeping until X-Bapi-Limit-Reset-Timestamp."""
    server.ratelimit_reset_ms = 150
    session = make_session(server, retry_codes=None, max_retries=2)
    server.inject("ratelimit", path=ORDER_CREATE_PATH)
    started = time.monotonic()
    assert market(session, "rl-auto")["retCode"] == 0
    assert time.monotonic() - started >= 0.1
    assert server.ret_codes(ORDER_CREATE_PATH) == [10006, 0]
    assert server.order_count() == 1
    # With a single attempt the same path ends in an opaque FailedRequestError (status 400).
    single = make_session(server, retry_codes=None, max_retries=1)
    server.inject("ratelimit", path=ORDER_CREATE_PATH)
    with pytest.raises(FailedRequestError) as excinfo:
        market(single, "rl-single")
    assert excinfo.value.status_code == 400
    assert server.order_count(order_link_id="rl-single") == 0


def test_http500_surfaces_as_failed_request(server: FakeBybitServer, session: HTTP) -> None:
    server.inject("http500", path=POSITIONS_PATH)
    with pytest.raises(FailedRequestError) as excinfo:
        session.get_positions(category="linear", symbol="BTCUSDT")
    assert excinfo.value.status_code == 500
    assert session.get_positions(category="linear", symbol="BTCUSDT")["retCode"] == 0
    assert [r.http_status for r in server.recorded(POSITIONS_PATH)] == [500, 200]


def test_faults_are_validated_and_consumed_once(server: FakeBybitServer, session: HTTP) -> None:
    assert "timeout_after_accept" in FAULTS
    with pytest.raises(ValueError, match="unknown fault"):
        server.inject("timeout_sometimes")
    server.inject("ok", "http503")
    assert server.pending_faults() == 2
    assert session.get_tickers(category="linear", symbol="BTCUSDT")["retCode"] == 0
    with pytest.raises(FailedRequestError) as excinfo:
        session.get_tickers(category="linear", symbol="BTCUSDT")
    assert excinfo.value.status_code == 503
    assert server.pending_faults() == 0


def test_records_requests_over_one_keep_alive_connection(
    server: FakeBybitServer, session: HTTP
) -> None:
    session.get_tickers(category="linear", symbol="BTCUSDT")
    market(session, "rec-1")
    session.get_positions(category="linear", symbol="BTCUSDT")
    records = server.recorded()
    assert [(r.method, r.path, r.ret_code) for r in records] == [
        ("GET", "/v5/market/tickers", 0),
        ("POST", ORDER_CREATE_PATH, 0),
        ("GET", POSITIONS_PATH, 0),
    ]
    assert records[1].params["orderLinkId"] == "rec-1"
    assert records[1].params["qty"] == "0.010"
    assert records[2].params == {"category": "linear", "symbol": "BTCUSDT"}
    assert records[1].api_key == server.api_key
    assert len({r.peer_port for r in records}) == 1
