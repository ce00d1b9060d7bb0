"""The Bybit ticker feed through real pybit clients: its websocket against the fake public stream
(`bybit_ws_server`), its REST fallback against the fake Bybit REST server (`bybit_server`).

Intervals are short (silence 0.5 s, REST every 0.1 s, backoff from 0.05 s) so the file runs in
seconds; every wait is for a condition, with a deadline.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import websocket
from pybit.unified_trading import HTTP

from helix_pipelines.live.bybit_tickers import (
    FLOWING,
    MAX_ARGS_PER_SUBSCRIBE,
    WS_URLS,
    TickerFeed,
)
from helix_pipelines.live.prices import PriceBook
from helix_pipelines.testing.bybit_server import TICKERS_PATH, FakeBybitServer
from helix_pipelines.testing.bybit_ws_server import FakeBybitWsServer

pytestmark = pytest.mark.timeout(60)

SYMBOLS = ("BTCUSDT", "ETHUSDT", "1000PEPEUSDT")
WS_PRICES = {"BTCUSDT": "56738.5", "ETHUSDT": "2401.25", "1000PEPEUSDT": "0.0190000"}
REST_PRICES = {"BTCUSDT": "56000.0", "ETHUSDT": "2300.00", "1000PEPEUSDT": "0.0185000"}
FAST = {
    "silence_seconds": 0.5,
    "rest_interval": 0.1,
    "backoff_initial": 0.05,
    "backoff_max": 0.4,
    "ping_interval": 1.0,
    "ping_timeout": 0.5,
    "join_timeout": 2.0,
}


def eventually(check: Callable[[], Any], timeout: float = 5.0, what: str = "") -> Any:
    """Poll `check` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what or check}")
        time.sleep(0.01)


@pytest.fixture
def stream() -> Iterator[FakeBybitWsServer]:
    with FakeBybitWsServer(prices=WS_PRICES, push_interval=0.05) as fake:
        yield fake


@pytest.fixture
def venue() -> Iterator[FakeBybitServer]:
    with FakeBybitServer(prices=REST_PRICES) as fake:
        yield fake


@pytest.fixture
def rest(venue: FakeBybitServer) -> HTTP:
    """A real public pybit session aimed at the fake REST server."""
    session = HTTP(testnet=False, timeout=2, max_retries=1, retry_delay=0)
    session.endpoint = venue.endpoint
    return session


@pytest.fixture
def book() -> PriceBook:
    return PriceBook()


@pytest.fixture
def make_feed(
    stream: FakeBybitWsServer, rest: HTTP, book: PriceBook
) -> Iterator[Callable[..., TickerFeed]]:
    feeds: list[TickerFeed] = []

    def make(symbols: tuple[str, ...] = SYMBOLS, **options: Any) -> TickerFeed:
        feed = TickerFeed(
            book, symbols, ws_url=stream.url, rest_session=rest, **{**FAST, **options}
        )
        feeds.append(feed)
        return feed.start()

    yield make
    for feed in feeds:
        feed.stop()


def ws_prices(book: PriceBook) -> dict[str, float]:
    return {s: t.price for s, t in book.snapshot().items() if t.origin == "ws"}


def flowing(feed: TickerFeed) -> bool:
    stats = feed.stats()
    return stats.status == "ws" and stats.reason == FLOWING


def test_the_fake_stream_speaks_bybits_protocol(stream: FakeBybitWsServer) -> None:
    """What the feed's tests lean on: Bybit's replies, its 10-args limit, snapshot then deltas."""
    client = websocket.create_connection(stream.url, timeout=5)
    try:
        client.send(json.dumps({"op": "ping"}))
        assert json.loads(client.recv())["ret_msg"] == "pong"
        eleven = [f"tickers.{s}" for s in [*SYMBOLS] * 4][:11]
        client.send(json.dumps({"op": "subscribe", "req_id": "a", "args": eleven}))
        refused = json.loads(client.recv())
        assert (refused["success"], refused["req_id"], refused["op"]) == (False, "a", "subscribe")
        client.send(json.dumps({"op": "subscribe", "req_id": "b", "args": ["tickers.DOGEUSDT"]}))
        assert json.loads(client.recv())["success"] is False  # not listed on this fake
        client.send(json.dumps({"op": "subscribe", "req_id": "c", "args": ["tickers.BTCUSDT"]}))
        reply = json.loads(client.recv())
        assert (reply["success"], reply["ret_msg"], reply["req_id"]) == (True, "", "c")
        snapshot = json.loads(client.recv())
        assert (snapshot["topic"], snapshot["type"]) == ("tickers.BTCUSDT", "snapshot")
        assert snapshot["data"]["lastPrice"] == "56738.5"
        assert isinstance(snapshot["ts"], int)
        delta = json.loads(client.recv())
        assert delta["type"] == "delta"
        assert "lastPrice" not in delta["data"]  # the price stood still
        stream.set_price("BTCUSDT", "56740.0")
        while "lastPrice" not in (delta := json.loads(client.recv()))["data"]:
            pass
        assert delta["data"] == {
            "symbol": "BTCUSDT",
            "lastPrice": "56740.0",
            "markPrice": "56740.0",
            "bid1Price": "56740.0",
            "ask1Price": "56740.0",
        }
    finally:
        client.close()
    assert [s.accepted for s in stream.subscriptions()] == [False, False, True]


def test_snapshot_and_delta_prices_land_in_the_book(
    make_feed: Callable[..., TickerFeed], stream: FakeBybitWsServer, book: PriceBook
) -> None:
    feed = make_feed()
    eventually(lambda: len(ws_prices(book)) == 3, what="a snapshot of every symbol")
    assert ws_prices(book) == {"BTCUSDT": 56738.5, "ETHUSDT": 2401.25, "1000PEPEUSDT": 0.019}
    eventually(lambda: flowing(feed))

    stream.set_price("BTCUSDT", "56801.7")
    eventually(lambda: book.tick("BTCUSDT").price == 56801.7, what="the delta's price")
    held = book.tick("BTCUSDT")
    assert held.origin == "ws"
    # The venue's timestamp (ts), not our receive time, and a recent one.
    assert abs((datetime.now(UTC) - held.at).total_seconds()) < 2
    stats = feed.stats()
    assert stats.counts.connects == 1
    assert stats.counts.subscribe_acks == 1
    assert stats.counts.bad_messages == 0
    assert stats.counts.fallbacks == 0
    assert book.updates_by_origin()["rest"] == 0


def test_a_delta_without_last_price_keeps_the_held_price_and_re_stamps_it(
    make_feed: Callable[..., TickerFeed], stream: FakeBybitWsServer, book: PriceBook
) -> None:
    feed = make_feed()
    eventually(lambda: len(ws_prices(book)) == 3)
    held = book.tick("ETHUSDT")
    version = book.version
    messages = feed.stats().counts.ws_messages
    far_future = int(time.time() * 1000) + 60_000
    assert stream.push("ETHUSDT", {"volume24h": "12345"}, ts=far_future) == 1
    # The fake also pushes volume-only deltas every 50 ms while prices stand still.
    eventually(lambda: feed.stats().counts.ws_messages >= messages + 10)
    now = book.tick("ETHUSDT")
    assert now is not None
    assert held is not None
    # Same price and origin, confirmed as of the delta: a quiet coin does not look stale.
    assert (now.price, now.origin) == (held.price, held.origin)
    assert now.at == datetime.fromtimestamp(far_future / 1000, UTC)
    assert book.version == version  # nothing moved: no re-ranking for it
    assert feed.stats().counts.bad_messages == 0


def test_malformed_messages_are_counted_and_ignored(
    make_feed: Callable[..., TickerFeed], stream: FakeBybitWsServer, book: PriceBook
) -> None:
    feed = make_feed()
    eventually(lambda: len(ws_prices(book)) == 3)
    held = book.tick("BTCUSDT")
    ts = int(time.time() * 1000) + 1000

    def raw(**message: Any) -> str:
        return json.dumps({"topic": "tickers.BTCUSDT", "type": "delta", "ts": ts, **message})

    btc = {"symbol": "BTCUSDT", "lastPrice": "1.5"}
    bad = [
        "not json at all{",
        "[1, 2, 3]",
        raw(data={**btc, "lastPrice": "abc"}),
        raw(data={**btc, "lastPrice": "-5"}),
        raw(data={**btc, "lastPrice": "NaN"}),
        raw(data={**btc, "lastPrice": None}),
        raw(data={**btc, "symbol": "ETHUSDT"}),  # data of another symbol
        raw(data=btc, ts="yesterday"),
        raw(data=btc, type="mystery"),
        raw(data=["BTCUSDT", "1.5"]),
        raw(data={"symbol": "BTCUSDT"}, type="snapshot"),  # a snapshot lacks lastPrice
        raw(topic="tickers.DOGEUSDT", data={"symbol": "DOGEUSDT", "lastPrice": "0.1"}),
        json.dumps({"topic": "orderbook.1.BTCUSDT", "data": {}}),
    ]
    for text in bad:
        assert stream.push_raw(text) == 1
    eventually(lambda: feed.stats().counts.bad_messages == len(bad), what="every bad one counted")
    assert book.tick("BTCUSDT") == held
    assert book.tick("DOGEUSDT") is None

    # Still the same, working connection.
    stream.set_price("BTCUSDT", "56900.0")
    eventually(lambda: book.tick("BTCUSDT").price == 56900.0)
    stats = feed.stats()
    assert (stats.counts.connects, stats.counts.disconnects, stats.status) == (1, 0, "ws")
    assert stream.open_connections == [1]


def test_a_burst_arrives_in_order(
    make_feed: Callable[..., TickerFeed], stream: FakeBybitWsServer, book: PriceBook
) -> None:
    feed = make_feed()
    eventually(lambda: len(ws_prices(book)) == 3)
    prices_before = feed.stats().counts.ws_prices
    seen: list[float] = []
    book.add_listener(lambda t: seen.append(t.price) if t.venue_symbol == "BTCUSDT" else None)
    burst = [f"{57000 + i / 10:.1f}" for i in range(500)]
    stream.burst("BTCUSDT", burst)
    eventually(lambda: book.tick("BTCUSDT").price == 57049.9, what="the burst's last price")
    assert feed.stats().counts.ws_prices >= prices_before + 500
    assert seen == [float(p) for p in burst]


def test_reconnects_and_resubscribes_every_symbol_after_the_server_drops_connections(
    make_feed: Callable[..., TickerFeed], stream: FakeBybitWsServer, book: PriceBook
) -> None:
    feed = make_feed()
    eventually(lambda: flowing(feed))
    assert stream.subscribed_symbols(1) == set(SYMBOLS)

    assert stream.drop_connections() == 1
    eventually(lambda: stream.subscribed_symbols(2) == set(SYMBOLS), what="resubscribed")
    stream.set_price("ETHUSDT", "2500.50")
    eventually(lambda: ws_prices(book).get("ETHUSDT") == 2500.5, what="prices over the new socket")
    eventually(lambda: flowing(feed))
    assert stream.open_connections == [2]
    stats = feed.stats()
    assert stats.counts.connects == 2
    assert stats.counts.disconnects == 1
    assert stats.counts.fallbacks == 1
    assert all(len(s.args) <= MAX_ARGS_PER_SUBSCRIBE and s.accepted for s in stream.subscriptions())


def test_silence_switches_to_rest_fallback_and_back_when_the_stream_resumes(
    make_feed: Callable[..., TickerFeed],
    stream: FakeBybitWsServer,
    venue: FakeBybitServer,
    book: PriceBook,
) -> None:
    """The dangerous case: the stream stays open and answers pings but pushes nothing."""
    feed = make_feed(ping_interval=0.3, ping_timeout=0.2)
    eventually(lambda: flowing(feed))
    assert book.updates_by_origin()["rest"] == 0
    stream.go_silent()
    quiet_from = time.monotonic()

    eventually(lambda: feed.status == "rest_fallback", what="the fallback")
    assert time.monotonic() - quiet_from >= 0.45  # silence_seconds, not earlier
    stats = feed.stats()
    assert stats.reason.startswith("no ticker message for")
    assert stats.since is not None

    rest_prices = {"BTCUSDT": 56000.0, "ETHUSDT": 2300.0, "1000PEPEUSDT": 0.0185}
    eventually(
        lambda: (
            {s: t.price for s, t in book.snapshot().items() if t.origin == "rest"} == rest_prices
        ),
        what="REST prices of every symbol",
    )
    assert {frozenset(r.params.items()) for r in venue.recorded(TICKERS_PATH)} == {
        frozenset({("category", "linear")})
    }
    # Still silent: it keeps reconnecting (and the server keeps accepting and answering pings)
    # but stays on REST.
    eventually(lambda: len(stream.subscriptions()) >= 3, what="reconnect attempts")
    assert stream.pings > 0
    assert feed.status == "rest_fallback"
    venue.venue.set_price("BTCUSDT", "56100.0")
    eventually(lambda: book.tick("BTCUSDT").price == 56100.0, what="REST keeps polling")

    stream.resume()
    eventually(lambda: flowing(feed), timeout=10, what="back on the websocket")
    stream.set_price("BTCUSDT", "57000.5")
    eventually(lambda: ws_prices(book).get("BTCUSDT") == 57000.5, what="the websocket's price")
    polls = feed.stats().counts.rest_polls
    time.sleep(0.4)
    assert feed.stats().counts.rest_polls <= polls + 1  # at most the one in flight
    stats = feed.stats()
    assert stats.counts.fallbacks == 1
    assert stats.counts.rest_prices >= 3


def test_a_server_that_stops_answering_pings_counts_as_down(
    make_feed: Callable[..., TickerFeed], stream: FakeBybitWsServer
) -> None:
    # Silence would never trigger here: only pybit's ping timeout can notice.
    feed = make_feed(silence_seconds=30.0, ping_interval=0.3, ping_timeout=0.2)
    eventually(lambda: flowing(feed))
    stream.stop_answering_pings()
    eventually(lambda: feed.status == "rest_fallback", what="the ping timeout")
    assert "ping/pong timed out" in feed.stats().reason
    stream.answer_pings()
    eventually(lambda: flowing(feed), what="reconnected")
    assert feed.stats().counts.connects >= 2


def test_refused_connections_are_retried_with_backoff_while_rest_serves_prices(
    make_feed: Callable[..., TickerFeed],
    stream: FakeBybitWsServer,
    venue: FakeBybitServer,
    book: PriceBook,
) -> None:
    stream.refuse_connections()
    feed = make_feed(backoff_initial=0.1, backoff_max=0.4)
    eventually(lambda: feed.status == "rest_fallback")
    assert feed.stats().reason.startswith("cannot connect")
    eventually(lambda: book.tick("ETHUSDT") is not None and book.tick("ETHUSDT").origin == "rest")
    refused_at_start = stream.refused
    time.sleep(1.0)
    # Delays of 0.05-0.1, 0.1-0.2, then 0.2-0.4 s: a handful of attempts (pybit makes two
    # handshakes per attempt), where a retry loop without backoff would make hundreds.
    assert 2 <= stream.refused - refused_at_start <= 24
    assert feed.stats().counts.connect_failures >= 2

    stream.accept_connections()
    eventually(lambda: flowing(feed), what="connected once accepted")
    assert stream.subscribed_symbols(1) == set(SYMBOLS)
    # A REST poll answered after the snapshot holds a later time and stays until the price moves.
    for symbol in SYMBOLS:
        stream.set_price(symbol, "1.25")
    eventually(lambda: ws_prices(book) == dict.fromkeys(SYMBOLS, 1.25), what="websocket prices")


def test_a_failing_rest_poll_is_counted_and_the_next_one_tried(
    make_feed: Callable[..., TickerFeed],
    stream: FakeBybitWsServer,
    venue: FakeBybitServer,
    book: PriceBook,
) -> None:
    stream.refuse_connections()
    venue.inject("http502", "retcode:10016", path=TICKERS_PATH)
    feed = make_feed()
    eventually(lambda: book.tick("BTCUSDT") is not None, what="a REST poll that worked")
    counts = feed.stats().counts
    assert counts.rest_failures == 2
    assert counts.rest_polls >= 1
    assert book.tick("BTCUSDT").origin == "rest"


def test_435_symbols_subscribe_in_chunks_of_ten(
    stream: FakeBybitWsServer, rest: HTTP, book: PriceBook
) -> None:
    symbols = tuple(f"COIN{i:03d}USDT" for i in range(435))
    with FakeBybitWsServer(prices=dict.fromkeys(symbols, "1.2345"), push_interval=1.0) as wide:
        options = {**FAST, "silence_seconds": 5.0}
        with TickerFeed(book, symbols, ws_url=wide.url, rest_session=rest, **options) as feed:
            eventually(lambda: len(book.snapshot()) == 435, what="a snapshot of every symbol")
            subscriptions = wide.subscriptions()
            assert [len(s.args) for s in subscriptions] == [10] * 43 + [5]
            assert all(s.accepted for s in subscriptions)
            assert [a for s in subscriptions for a in s.args] == [f"tickers.{s}" for s in symbols]
            eventually(lambda: feed.stats().counts.subscribe_acks == 44)
            assert feed.stats().counts.subscribe_rejections == 0
            assert set(book.snapshot()) == set(symbols)
            assert {t.origin for t in book.snapshot().values()} == {"ws"}


def test_stop_returns_promptly_and_closes_everything(
    make_feed: Callable[..., TickerFeed], stream: FakeBybitWsServer
) -> None:
    before = set(threading.enumerate())
    # Production ping settings: websocket-client's reader would otherwise linger up to 10 s.
    feed = make_feed(ping_interval=20.0, ping_timeout=10.0)
    eventually(lambda: flowing(feed))
    assert len(set(threading.enumerate()) - before) >= 3  # the feed's two, pybit's reader
    started = time.monotonic()
    feed.stop()
    assert time.monotonic() - started < 1.0
    assert feed.status == "stopped"
    # Every thread the feed started (its own, pybit's reader and ping timers) has ended.
    eventually(lambda: not set(threading.enumerate()) - before, timeout=0.5, what="threads")
    eventually(lambda: stream.open_connections == [], what="the socket closed")
    feed.stop()  # twice is fine
    with pytest.raises(RuntimeError, match="runs once"):
        feed.start()


def test_stop_returns_promptly_while_on_the_fallback(
    make_feed: Callable[..., TickerFeed], stream: FakeBybitWsServer
) -> None:
    stream.refuse_connections()
    feed = make_feed()
    eventually(lambda: feed.stats().counts.rest_polls >= 2)
    started = time.monotonic()
    feed.stop()
    assert time.monotonic() - started < 1.5
    assert feed.status == "stopped"


def test_urls_by_network_and_arguments_checked(book: PriceBook) -> None:
    assert TickerFeed(book, ["BTCUSDT"]).url == "wss://stream.bybit.com/v5/public/linear"
    testnet = TickerFeed(book, ["BTCUSDT"], network="testnet")
    assert testnet.url == WS_URLS["testnet"] == "wss://stream-testnet.bybit.com/v5/public/linear"
    assert TickerFeed(book, ["BTCUSDT", "ETHUSDT", "BTCUSDT"]).symbols == ("BTCUSDT", "ETHUSDT")
    assert testnet.status == "stopped"
    with pytest.raises(ValueError, match="at least one symbol"):
        TickerFeed(book, [])
    with pytest.raises(ValueError, match="ping_timeout"):
        TickerFeed(book, ["BTCUSDT"], ping_interval=10, ping_timeout=10)
