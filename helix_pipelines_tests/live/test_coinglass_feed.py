"""The CoinGlass liquidation feed against the fake websocket server (real sockets on 127.0.0.1):
subscribe, parse, survive malformed messages, tell silence from a dead server, reconnect and
resubscribe, keep the key out of every log line, close cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from helix_pipelines.contracts.live import LiquidationEvent
from helix_pipelines.live.coinglass_ws import SUBSCRIBE, LiquidationFeed
from helix_pipelines.testing.coinglass_ws_server import (
    FIRST_TIME_MS,
    FakeCoinGlassWS,
    liquidation_item,
)

AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PING_INTERVAL, PONG_TIMEOUT = 0.1, 0.2


@pytest.fixture
def server() -> Iterator[FakeCoinGlassWS]:
    with FakeCoinGlassWS() as fake:
        yield fake


def make_feed(
    server: FakeCoinGlassWS, api_key: str | None = None, **options: Any
) -> LiquidationFeed:
    settings: dict[str, Any] = {
        "url": server.url,
        "ping_interval": PING_INTERVAL,
        "pong_timeout": PONG_TIMEOUT,
        "backoff_base": 0.02,
        "backoff_cap": 0.2,
        "clock": lambda: AT,
        "rng": random.Random(7),
        **options,
    }
    return LiquidationFeed(api_key or server.api_key, **settings)


class Collected:
    """A sink that keeps what it is given."""

    def __init__(self) -> None:
        self.events: list[LiquidationEvent] = []

    async def __call__(self, events: Sequence[LiquidationEvent]) -> None:
        self.events.extend(events)


@contextlib.asynccontextmanager
async def running(feed: LiquidationFeed, sink: Any) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(feed.run(sink, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        await asyncio.sleep(0.005)


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), timeout=30))


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A fake-server call from the test's event loop: in a thread, so the feed keeps reading
    while the server writes (a big push would otherwise wait on a loop it blocks)."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def test_the_feed_subscribes_and_delivers_parsed_events(server: FakeCoinGlassWS) -> None:
    feed, sink = make_feed(server), Collected()

    async def scenario() -> None:
        async with running(feed, sink):
            await call(server.wait_for_subscribers, 1)
            assert feed.stats.connected is True
            await call(server.push, liquidation_item(),
                       liquidation_item(base_asset="ETH", price="2400.5", side="1",
                                        time_ms=str(FIRST_TIME_MS + 1), usd="120"))  # fmt: skip
            await eventually(lambda: len(sink.events) == 2)

    run(scenario)
    btc, eth = sink.events
    assert (btc.base_asset, btc.exchange, btc.symbol, btc.price, btc.side_code, btc.usd) == (
        "BTC", "Binance", "BTCUSDT", 56738.0, 2, 3858.18,
    )  # fmt: skip
    assert (eth.symbol, eth.price, eth.side_code, eth.usd) == ("ETHUSDT", 2400.5, 1, 120.0)
    assert eth.event_time == datetime(2024, 9, 4, 2, 18, 38, 380_000, tzinfo=UTC)
    assert btc.received_at == eth.received_at == AT
    assert (
        server.received[0] == SUBSCRIBE == '{"method":"subscribe","channels":["liquidationOrders"]}'
    )
    stats = feed.stats
    assert (stats.connects, stats.disconnects, stats.messages, stats.events) == (1, 0, 1, 2)
    assert (stats.malformed, stats.last_event_at, stats.last_message_at) == (0, AT, AT)
    assert stats.connected is False  # after stop


def test_malformed_messages_are_counted_kept_bounded_and_survived(
    server: FakeCoinGlassWS, caplog: pytest.LogCaptureFixture
) -> None:
    feed, sink = make_feed(server, keep_malformed=3), Collected()

    async def scenario() -> None:
        async with running(feed, sink):
            await call(server.wait_for_subscribers, 1)
            await call(server.push_raw, "{broken", "[]", '{"channel":"liquidationOrders"}')
            await call(server.push, liquidation_item(), liquidation_item(side=7))
            await call(server.push_raw, '{"data":[]}')
            await call(server.push, liquidation_item(time_ms=FIRST_TIME_MS + 1))
            await eventually(lambda: feed.stats.messages == 6 and len(sink.events) == 2)

    with caplog.at_level(logging.WARNING, logger="helix_pipelines.live"):
        run(scenario)
    assert feed.stats.malformed == 5
    assert (feed.stats.connects, feed.stats.disconnects, feed.stats.events) == (1, 0, 2)
    # The last three, as read, with their reasons.
    assert [(s.raw, s.reasons) for s in feed.malformed_samples] == [
        ('{"channel":"liquidationOrders"}', ("data is a NoneType, not a list",)),
        (
            '{"channel":"liquidationOrders","data":[{"baseAsset":"BTC","exName":"Binance",'
            '"price":56738.0,"side":2,"symbol":"BTCUSDT","time":1725416318379,"volUsd":3858.18},'
            '{"baseAsset":"BTC","exName":"Binance","price":56738.0,"side":7,"symbol":"BTCUSDT",'
            '"time":1725416318379,"volUsd":3858.18}]}',
            ("data[1]: side 7 is neither 1 nor 2",),
        ),
        ('{"data":[]}', ("no channel",)),
    ]
    warnings = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    assert len(warnings) == 5
    assert "(not JSON:" in warnings[0]
    assert "{broken" in warnings[0]


def test_a_dropped_connection_is_reconnected_and_resubscribed(server: FakeCoinGlassWS) -> None:
    feed, sink = make_feed(server), Collected()

    async def scenario() -> None:
        async with running(feed, sink):
            await call(server.wait_for_subscribers, 1)
            await call(server.push, liquidation_item())
            await eventually(lambda: len(sink.events) == 1)
            assert await call(server.drop_connections) == 1
            await eventually(lambda: server.subscribes == 2 and server.subscribers == 1)
            await call(server.push, liquidation_item(time_ms=FIRST_TIME_MS + 1))
            await eventually(lambda: len(sink.events) == 2)

    run(scenario)
    assert (feed.stats.connects, feed.stats.disconnects) == (2, 1)
    assert "no close frame" in (feed.stats.last_error or "")
    assert [r for r in server.received if r != "ping"] == [SUBSCRIBE, SUBSCRIBE]
    assert [e.event_time.microsecond for e in sink.events] == [379_000, 380_000]


def test_silence_longer_than_the_ping_interval_is_no_reconnect(server: FakeCoinGlassWS) -> None:
    feed, sink = make_feed(server), Collected()

    async def scenario() -> None:
        async with running(feed, sink):
            await call(server.wait_for_subscribers, 1)
            server.go_silent()
            await call(server.push, liquidation_item())  # dropped: nothing is sent
            await asyncio.sleep(8 * PING_INTERVAL)
            assert feed.stats.connected is True
            server.speak()
            await call(server.push, liquidation_item(time_ms=FIRST_TIME_MS + 1))
            await eventually(lambda: len(sink.events) == 1)

    run(scenario)
    assert (feed.stats.connects, feed.stats.disconnects) == (1, 0)
    assert server.suppressed == 1
    assert server.pings >= 6  # a ping every interval through the silence, each answered
    assert server.pongs == server.pings
    assert sink.events[0].event_time.microsecond == 380_000


def test_a_server_that_stops_answering_pings_is_reconnected(server: FakeCoinGlassWS) -> None:
    feed, sink = make_feed(server), Collected()

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        async with running(feed, sink):
            await call(server.wait_for_subscribers, 1)
            server.answer_pings = False
            stopped_answering = loop.time()
            await eventually(lambda: feed.stats.disconnects == 1)
            # At most one interval to the next ping, then the timeout (and scheduling slack).
            assert loop.time() - stopped_answering < PING_INTERVAL + PONG_TIMEOUT + 0.3
            server.answer_pings = True
            await eventually(lambda: server.subscribes == 2 and feed.stats.connected)
            await call(server.push, liquidation_item())
            await eventually(lambda: len(sink.events) == 1)

    run(scenario)
    assert feed.stats.last_error == "PongTimeoutError: no pong within 0.2 s of a ping"
    assert feed.stats.connects == 2


def test_a_sink_slower_than_the_pong_timeout_is_no_reconnect(server: FakeCoinGlassWS) -> None:
    """Backpressure: while the reader waits on the sink, the pong waits unread behind the
    messages before it; that is not a dead server."""
    feed, delivered = make_feed(server), []

    async def slow_sink(events: Sequence[LiquidationEvent]) -> None:
        await asyncio.sleep(3 * PONG_TIMEOUT)
        delivered.extend(events)

    async def scenario() -> None:
        async with running(feed, slow_sink):
            await call(server.wait_for_subscribers, 1)
            for i in range(3):
                await call(server.push, liquidation_item(time_ms=FIRST_TIME_MS + i))
            await eventually(lambda: len(delivered) == 3)

    run(scenario)
    assert (feed.stats.connects, feed.stats.disconnects) == (1, 0)
    # The first ping's pong queued behind the messages pushed before it: read some 9 pong
    # timeouts later, once the sink had taken all three.
    assert server.pings >= 1


def test_a_burst_of_5000_events_all_arrive_in_order(server: FakeCoinGlassWS) -> None:
    feed, sink, sent = make_feed(server), Collected(), []

    async def scenario() -> None:
        async with running(feed, sink):
            await call(server.wait_for_subscribers, 1)
            sent.extend(await call(server.push_burst, 4000))
            sent.extend(await call(server.push_burst, 1000, per_message=100, base_asset="ETH"))
            await eventually(lambda: len(sink.events) == 5000, timeout=20)

    run(scenario)
    assert [(e.base_asset, e.event_time, e.price, e.side_code, e.usd) for e in sink.events] == [
        (i["baseAsset"], EPOCH + timedelta(milliseconds=i["time"]), i["price"], i["side"],
         i["volUsd"])
        for i in sent
    ]  # fmt: skip
    assert (feed.stats.connects, feed.stats.disconnects) == (1, 0)
    assert (feed.stats.messages, feed.stats.events, feed.stats.malformed) == (4010, 5000, 0)


def test_a_wrong_key_is_refused_retried_and_never_shown(
    server: FakeCoinGlassWS, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wrongCoinGlassKey-5e3f"
    feed = make_feed(server, api_key=wrong)

    async def scenario() -> None:
        async with running(feed, Collected()):
            await eventually(lambda: server.rejected >= 3)

    with caplog.at_level(logging.DEBUG):
        run(scenario)
    assert server.connections == 0
    assert feed.stats.events == 0
    assert "1008" in (feed.stats.last_error or "")
    assert "invalid cg-api-key" in (feed.stats.last_error or "")
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("helix_pipelines.live")]
    # The websockets library's own debug lines went through the feed's scrubber ...
    assert any("cg-api-key=***" in line for line in ours)
    # ... and no line, nor the kept error, shows the key.
    assert not [line for line in ours if wrong in line]
    assert wrong not in (feed.stats.last_error or "")


def test_backoff_is_full_jitter_doubling_to_a_cap(server: FakeCoinGlassWS) -> None:
    class Highest(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    highest = make_feed(server, backoff_base=0.5, backoff_cap=10.0, rng=Highest())
    assert [highest.backoff_delay(n) for n in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    jittered = make_feed(server, backoff_base=0.5, backoff_cap=10.0, rng=random.Random(1))
    delays = [jittered.backoff_delay(4) for _ in range(200)]
    assert all(0.0 <= d <= 8.0 for d in delays)
    assert min(delays) < 1.0  # spread over the whole range
    assert max(delays) > 7.0


def test_stop_closes_the_socket_with_a_normal_close(server: FakeCoinGlassWS) -> None:
    feed = make_feed(server)

    async def scenario() -> None:
        async with running(feed, Collected()):
            await call(server.wait_for_subscribers, 1)

    run(scenario)

    async def closed() -> None:
        await eventually(lambda: server.close_codes == [1000], timeout=2)

    asyncio.run(closed())
    assert server.subscribers == 0
    assert (feed.stats.connected, feed.stats.disconnects) == (False, 0)


def test_the_url_shown_has_no_key_and_the_key_is_required() -> None:
    feed = LiquidationFeed("k" * 20)
    assert feed.url == "wss://open-ws.coinglass.com/ws-api"
    assert feed.scrub("GET /ws-api?cg-api-key=" + "k" * 20) == "GET /ws-api?cg-api-key=***"
    with pytest.raises(ValueError, match="needs an API key"):
        LiquidationFeed("")
