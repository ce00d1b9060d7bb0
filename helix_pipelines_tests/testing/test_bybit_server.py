"""The fake Bybit v5 server, driven by a real pybit `HTTP` session over a real socket.

These tests pin down that the fake behaves as docs/real-apis.md records the venue to, and the pybit
behaviour the broker relies on: which exception each failure surfaces as, and which retries
pybit makes on its own.
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

from helix_pipelines.testing.bybit_server import ORDER_CREATE_PATH, FakeBybitServer
from helix_pipelines.testing.bybit_venue import HEDGE, ONE_WAY


@pytest.fixture
def server() -> Iterator[FakeBybitServer]:
    with FakeBybitServer(fault_delay=1.5) as fake:
        yield fake


def make_session(server: FakeBybitServer, **overrides: Any) -> HTTP:
    """A real pybit session aimed at the fake, configured the way the broker configures it:
    no resending after network errors, 10006 left to surface (pybit's default set would sleep
    and resend on its own; an empty set is replaced by the defaults, hence {10002})."""
    options: dict[str, Any] = {
        "testnet": True, "api_key": server.api_key, "api_secret": server.api_secret,
        "timeout": 1, "max_retries": 1, "retry_delay": 0, "force_retry": False,
        "retry_codes": {10002},
    }  # fmt: skip
    options.update(overrides)
    session = HTTP(**options)
    session.endpoint = server.endpoint
    return session


@pytest.fixture
def session(server: FakeBybitServer) -> HTTP:
    return make_session(server)


def market(session: HTTP, qty: str = "0.010", link: str = "l1", **kw: Any) -> dict[str, Any]:
    params = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market",
              "qty": qty, "orderLinkId": link, "positionIdx": 0, **kw}  # fmt: skip
    return session.place_order(**params)["result"]


def lookup(session: HTTP, link: str = "l1") -> list[dict[str, Any]]:
    return session.get_open_orders(category="linear", symbol="BTCUSDT", orderLinkId=link)["result"][
        "list"
    ]


def test_a_market_order_fills_at_the_last_price_with_cum_exec_qty(server, session) -> None:
    created = market(session)
    (order,) = lookup(session)
    assert order["orderId"] == created["orderId"]
    assert (order["orderStatus"], order["cumExecQty"], order["avgPrice"]) == (
        "Filled", "0.010", "65000.0"
    )  # fmt: skip
    position = session.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"][0]
    assert (position["side"], position["size"], position["positionIdx"]) == ("Buy", "0.010", 0)


def test_thin_liquidity_gives_partial_and_zero_fills(server, session) -> None:
    server.venue.liquidity["BTCUSDT"] = Decimal("0.004")
    market(session, link="part")
    (part,) = lookup(session, "part")
    assert (part["orderStatus"], part["cumExecQty"]) == ("PartiallyFilledCanceled", "0.004")
    server.venue.liquidity["BTCUSDT"] = Decimal(0)
    market(session, link="none")
    (none,) = lookup(session, "none")
    assert (none["orderStatus"], none["cumExecQty"], none["avgPrice"]) == ("Cancelled", "0", "")


def test_new_orders_become_visible_only_after_a_moment(server, session) -> None:
    server.venue.visibility_delay = 0.4
    created = market(session)
    assert created["orderId"]
    assert lookup(session) == []
    assert (
        session.get_order_history(category="linear", symbol="BTCUSDT", orderLinkId="l1")["result"][
            "list"
        ]
        == []
    )
    time.sleep(0.45)
    assert lookup(session)[0]["orderStatus"] == "Filled"


@pytest.mark.parametrize("code", [10000, 10016])
def test_10000_and_10016_after_accepting_leave_the_order_behind(server, session, code: int) -> None:
    server.inject(f"retcode_after_accept:{code}", path=ORDER_CREATE_PATH)
    with pytest.raises(InvalidRequestError) as caught:
        market(session)
    assert caught.value.status_code == code
    assert server.venue.order_count() == 1


def test_filters_match_the_venue(server, session) -> None:
    server.venue.instruments["BTCUSDT"]["lotSizeFilter"]["minNotionalValue"] = "100"
    for kw, code, says in (
        ({"qty": "0.0105"}, 10001, "Qty invalid"),
        ({"qty": "120.000"}, 10001, "exceeds maximum"),  # maxMktOrderQty 119 for market orders
        ({"qty": "1e-3"}, 10001, "plain decimal"),
        ({"qty": "0.001"}, 110094, "minimum order value"),
        ({"positionIdx": 1}, 10001, "position idx"),
        ({"takeProfit": "60000.0"}, 10001, "wrong side"),
        ({"stopLoss": "60000.05"}, 10001, "multiple of"),
    ):
        with pytest.raises(InvalidRequestError, match=says) as caught:
            market(session, link=f"bad-{code}-{says[:4]}", **kw)
        assert caught.value.status_code == code
    assert server.venue.order_count() == 0
    market(session)
    with pytest.raises(InvalidRequestError) as dup:
        market(session)
    assert dup.value.status_code == 110072


def test_lists_page_with_a_cursor(server, session) -> None:
    for i in range(23):
        server.venue.open_position("BTCUSDT", "Buy", "0.001", "65000", idx=0)
        server.venue.instruments[f"P{i}USDT"] = server.venue.instruments["BTCUSDT"] | {
            "symbol": f"P{i}USDT"
        }
        server.venue.set_price(f"P{i}USDT", "1")
        server.venue.open_position(f"P{i}USDT", "Buy", "1", "1")
    first = session.get_positions(category="linear", settleCoin="USDT")["result"]
    assert (len(first["list"]), first["nextPageCursor"]) == (20, "20")  # Bybit's default 20
    rest = session.get_positions(category="linear", settleCoin="USDT", cursor="20")["result"]
    assert (len(rest["list"]), rest["nextPageCursor"]) == (4, "")
    listing = session.get_instruments_info(category="linear", limit=10)["result"]
    assert len(listing["list"]) == 10
    assert listing["nextPageCursor"] == "10"


def test_switching_by_coin_leaves_busy_symbols_in_hedge_mode_and_answers_ok(
    server, session
) -> None:
    server.venue.set_position_mode(HEDGE)
    server.venue.open_position("SOLUSDT", "Buy", "1", "150", idx=1)
    result = session.switch_position_mode(category="linear", coin="USDT", mode=ONE_WAY)
    assert result["retCode"] == 0
    assert server.venue.position_mode("BTCUSDT") == ONE_WAY
    assert server.venue.position_mode("SOLUSDT") == HEDGE
    rows = session.get_positions(category="linear", symbol="SOLUSDT")["result"]["list"]
    assert [r["positionIdx"] for r in rows] == [1, 2]
    with pytest.raises(InvalidRequestError) as caught:
        session.switch_position_mode(category="linear", symbol="SOLUSDT", mode=ONE_WAY)
    assert caught.value.status_code == 110024
    with pytest.raises(InvalidRequestError) as caught:
        session.switch_position_mode(category="linear", symbol="BTCUSDT", mode=ONE_WAY)
    assert caught.value.status_code == 110025


def test_leverage_is_set_once_then_not_modified(server, session) -> None:
    session.set_leverage(category="linear", symbol="BTCUSDT", buyLeverage="3", sellLeverage="3")
    assert server.venue.leverage("BTCUSDT") == (Decimal(3), Decimal(3))
    with pytest.raises(InvalidRequestError) as caught:
        session.set_leverage(category="linear", symbol="BTCUSDT", buyLeverage="3", sellLeverage="3")
    assert caught.value.status_code == 110043


def test_signatures_keys_and_recv_window_are_checked(server) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        make_session(server, api_secret="wrong").get_wallet_balance(accountType="UNIFIED")
    assert caught.value.status_code == 10004
    assert server.api_key in caught.value.message  # the origin string echoes the key, as Bybit's
    with pytest.raises(InvalidRequestError) as caught:
        make_session(server, api_key="nope").get_wallet_balance(accountType="UNIFIED")
    assert caught.value.status_code == 10003
    server.clock_offset_ms = 60_000
    with pytest.raises(InvalidRequestError) as caught:  # (pybit retries 10002 when told to)
        make_session(server, retry_codes={99999}).get_wallet_balance(accountType="UNIFIED")
    assert caught.value.status_code == 10002
    assert int(make_session(server).get_server_time()["result"]["timeSecond"]) >= time.time() + 59


def test_timeouts_and_drops_surface_as_pybit_does(server, session) -> None:
    server.inject("timeout_after_accept", path=ORDER_CREATE_PATH)
    with pytest.raises(requests.exceptions.ReadTimeout):
        market(session, link="t1")
    server.inject("drop_after_accept", path=ORDER_CREATE_PATH)
    with pytest.raises(requests.exceptions.ConnectionError):
        market(session, link="t2")
    server.inject("drop_before", path=ORDER_CREATE_PATH)
    with pytest.raises(requests.exceptions.ConnectionError):
        market(session, link="t3")
    assert sorted(server.venue.orders) == ["t1", "t2"]  # the venue acted on the first two


def test_rate_limits_and_http_errors_surface_as_pybit_does(server, session) -> None:
    server.inject("ratelimit", path=ORDER_CREATE_PATH)
    with pytest.raises(InvalidRequestError) as caught:
        market(session)
    assert caught.value.status_code == 10006
    assert int(caught.value.resp_headers["X-Bapi-Limit-Reset-Timestamp"]) > time.time() * 1000
    server.inject("http502", path=ORDER_CREATE_PATH)
    with pytest.raises(FailedRequestError) as failed:
        market(session)
    assert failed.value.status_code == 502
    assert server.venue.order_count() == 0
    assert server.ret_codes(ORDER_CREATE_PATH) == [10006, None]
    with pytest.raises(ValueError, match="unknown fault"):
        server.inject("explode")
