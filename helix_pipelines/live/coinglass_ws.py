"""CoinGlass's realized liquidations (websocket channel `liquidationOrders`) as an asyncio feed.

The protocol: connect to `wss://open-ws.coinglass.com/ws-api?cg-api-key=KEY`, send
`{"method":"subscribe","channels":["liquidationOrders"]}`, then read messages like
`{"channel":"liquidationOrders","data":[{"baseAsset":"BTC","exName":"Binance","price":56738.0,
"side":2,"symbol":"BTCUSDT","time":1725416318379,"volUsd":3858.18}]}` (time in ms; numbers as
numbers or strings). The client keeps the subscription alive by sending the text `ping` every
20 s; the server answers `pong`.

Liquidations are sporadic: minutes without a message are no failure. A broken connection is:
the socket closed, or no `pong` within `pong_timeout` of a ping. Then the feed reconnects with
exponential backoff and full jitter (capped) and subscribes again. A malformed message is
counted, logged with its reason and kept (the last N, bounded) for inspection; the valid items
of a message are delivered even when others in it are not. The API key travels in the query
string, so it is redacted from every log line, exception text and kept message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import sys
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from helix_pipelines.clock import utc_now
from helix_pipelines.contracts.live import LiquidationEvent
from helix_pipelines.secrets import redact

log = logging.getLogger(__name__)

DEFAULT_URL = "wss://open-ws.coinglass.com/ws-api"
CHANNEL = "liquidationOrders"
SUBSCRIBE = orjson.dumps({"method": "subscribe", "channels": [CHANNEL]}).decode()
PING, PONG = "ping", "pong"
SIDE_CODES = frozenset({1, 2})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Exchange times outside 2009-01-01 .. 2100-01-01 (ms) are no real order's; the bounds also keep
# a garbage number from overflowing datetime.
_TIME_MS_RANGE = (1_230_768_000_000, 4_102_444_800_000)
RAW_SAMPLE_CHARS = 4096  # of a kept malformed message: a bounded list of bounded texts
LOG_PREVIEW_CHARS = 200

Sink = Callable[[Sequence[LiquidationEvent]], Awaitable[object]]
"""Where parsed events go (e.g. `EventWriter.put_many`); awaiting it is how backpressure
reaches the socket."""


class PongTimeoutError(ConnectionError):
    """The server did not answer our `ping` in time: the connection is treated as broken."""


@dataclass(slots=True)
class FeedStats:
    """What one feed has done since it was made, over all its connections."""

    connects: int = 0  # handshakes that succeeded
    disconnects: int = 0  # connections lost (the one `stop` closes is not counted)
    messages: int = 0  # messages read, pongs not counted
    events: int = 0  # events handed to the sink
    malformed: int = 0  # messages with at least one invalid part
    last_event_at: datetime | None = None  # when the last message with events was read
    last_message_at: datetime | None = None
    connected: bool = False
    last_error: str | None = None  # why the last connection ended or failed, key redacted


@dataclass(frozen=True, slots=True)
class MalformedSample:
    """A malformed message as read (key redacted, cut at RAW_SAMPLE_CHARS) and why."""

    received_at: datetime
    reasons: tuple[str, ...]
    raw: str


def _number(item: dict[str, Any], key: str) -> float:
    """A finite, non-negative number sent as a JSON number or a numeric string."""
    value = item.get(key)
    if value is None:
        raise ValueError(f"{key} is missing")
    # bool is an int to Python, never a number to CoinGlass.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{key} is a {type(value).__name__}, not a number")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise ValueError(f"{key} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{key} {value!r} is not finite")
    if number < 0:
        raise ValueError(f"{key} {value!r} is negative")
    return number


def _whole(item: dict[str, Any], key: str) -> int:
    number = _number(item, key)
    if not number.is_integer():
        raise ValueError(f"{key} {item[key]!r} is not a whole number")
    return int(number)


def _text(item: dict[str, Any], key: str) -> str:
    value = item.get(key)
    if value is None:
        raise ValueError(f"{key} is missing")
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key} {value!r} is not a name")
    return value


def parse_event(item: object, received_at: datetime) -> LiquidationEvent:
    """One item of a message's `data`, validated; ValueError says what is wrong with it."""
    if not isinstance(item, dict):
        raise ValueError(f"item is a {type(item).__name__}, not an object")
    time_ms = _whole(item, "time")
    if not _TIME_MS_RANGE[0] <= time_ms < _TIME_MS_RANGE[1]:
        raise ValueError(f"time {item['time']!r} is not a time in ms between 2009 and 2100")
    price = _number(item, "price")
    if price == 0:
        raise ValueError("price is 0")
    side = _whole(item, "side")
    if side not in SIDE_CODES:
        raise ValueError(f"side {item['side']!r} is neither 1 nor 2")
    return LiquidationEvent(
        event_time=_EPOCH + timedelta(milliseconds=time_ms),  # exact: no float seconds
        received_at=received_at,
        base_asset=_text(item, "baseAsset"),
        exchange=_text(item, "exName"),
        symbol=_text(item, "symbol"),
        price=price,
        side_code=side,
        usd=_number(item, "volUsd"),
    )


def parse_message(text: str, received_at: datetime) -> tuple[list[LiquidationEvent], list[str]]:
    """The events of one message and why any part of it is malformed (empty when none is).

    A message of another channel is not ours: no events, no problems. One without a channel is
    malformed: what CoinGlass sends there is kept for someone to look at."""
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return [], [f"not JSON: {exc}"]
    if not isinstance(document, dict):
        return [], [f"a JSON {type(document).__name__}, not an object"]
    channel = document.get("channel")
    if channel is None:
        return [], ["no channel"]
    if channel != CHANNEL:
        return [], []
    data = document.get("data")
    if not isinstance(data, list):
        return [], [f"data is a {type(data).__name__}, not a list"]
    events, problems = [], []
    for index, item in enumerate(data):
        try:
            events.append(parse_event(item, received_at))
        except ValueError as exc:
            problems.append(f"data[{index}]: {exc}")
    return events, problems


class _RedactingLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The websockets library's logger for the feed's connections: its debug lines print the
    request line, query string (the key) included, so every line is formatted and scrubbed
    before it reaches a handler, tracebacks too."""

    def __init__(self, logger: logging.Logger, scrub: Callable[[str], str]) -> None:
        super().__init__(logger, {})
        self._scrub = scrub

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        text = str(msg) % args if args else str(msg)
        exc_info = kwargs.pop("exc_info", None)
        if exc_info:
            if isinstance(exc_info, BaseException):
                exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
            elif not isinstance(exc_info, tuple):
                exc_info = sys.exc_info()
            text += "\n" + "".join(traceback.format_exception(*exc_info)).rstrip()
        self.logger.log(level, "%s", self._scrub(text), **kwargs)


class LiquidationFeed:
    """Consume CoinGlass's `liquidationOrders` until told to stop, reconnecting as needed.

    Only `run` touches the network; `stats` and `malformed_samples` can be read at any time
    from the event loop's thread. `clock` stamps `received_at`; `rng` draws the jitter."""

    def __init__(
        self,
        api_key: str,
        *,
        url: str = DEFAULT_URL,
        ping_interval: float = 20.0,
        pong_timeout: float = 10.0,
        open_timeout: float = 10.0,
        close_timeout: float = 2.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        keep_malformed: int = 100,
        clock: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("the CoinGlass websocket needs an API key")
        self.url = url  # without the key: safe to show
        self._api_key = api_key
        self._secrets = (api_key, quote(api_key, safe=""))
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._clock = clock
        self._rng = rng or random.Random()
        self.stats = FeedStats()
        self.malformed_samples: deque[MalformedSample] = deque(maxlen=keep_malformed)
        self._ws_logger = _RedactingLogger(logging.getLogger(f"{__name__}.websockets"), self.scrub)
        self._proved = False  # this connection answered a ping or delivered events
        # The reader's state for the keepalive: busy with a message (parsing it, or awaiting
        # the sink under backpressure), else waiting on the socket since `_idle_since`.
        self._busy = False
        self._idle_since = 0.0

    def scrub(self, text: str) -> str:
        """`text` without the API key (as given or URL-encoded)."""
        for secret in self._secrets:
            text = redact(text, secret)
        return text

    def _connect_url(self) -> str:
        separator = "&" if "?" in self.url else "?"
        return f"{self.url}{separator}cg-api-key={quote(self._api_key, safe='')}"

    def backoff_delay(self, failures: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**failures)], so clients that lost the
        server together do not come back together."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** min(failures, 32))
        return self._rng.uniform(0.0, ceiling)

    async def run(self, sink: Sink, stop: asyncio.Event) -> None:
        """Connect, subscribe and hand every message's events to `sink` until `stop` is set;
        then close the socket (a normal close) and return. Connection failures are logged and
        retried, never raised; an exception of the sink is (it is a bug, not the network). A
        stop during a handshake waits for it to end, `open_timeout` at most."""
        failures = 0  # consecutive connections that never proved healthy
        while not stop.is_set():
            self._proved = False
            try:
                async with connect(
                    self._connect_url(),
                    # The library's own ping frames are off: CoinGlass asks for the text `ping`,
                    # which proves the service (not just a proxy's socket) is answering, and a
                    # second keepalive with its own timeout would also misfire while the reader
                    # is held up by backpressure (see _keepalive). One mechanism, one reason.
                    ping_interval=None,
                    open_timeout=self.open_timeout,
                    close_timeout=self.close_timeout,
                    logger=self._ws_logger,
                ) as ws:
                    self.stats.connects += 1
                    self.stats.connected = True
                    log.info("connected to %s, subscribing to %s", self.url, CHANNEL)
                    await ws.send(SUBSCRIBE)
                    await self._session(ws, sink, stop)
            except (OSError, TimeoutError, WebSocketException) as exc:
                self.stats.last_error = self.scrub(f"{type(exc).__name__}: {exc}")
            finally:
                if self.stats.connected:
                    self.stats.connected = False
                    if not stop.is_set():
                        self.stats.disconnects += 1
            if stop.is_set():
                break
            failures = 0 if self._proved else failures + 1
            delay = self.backoff_delay(failures)
            log.warning(
                "CoinGlass websocket %s: %s; reconnecting in %.2f s",
                self.url,
                self.stats.last_error,
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
        log.info("CoinGlass websocket %s closed", self.url)

    async def _session(self, ws: ClientConnection, sink: Sink, stop: asyncio.Event) -> None:
        """Read and keep alive one connection until it breaks (raises) or `stop` is set."""
        pong = asyncio.Event()
        reader = asyncio.create_task(self._read(ws, sink, pong))
        keepalive = asyncio.create_task(self._keepalive(ws, pong))
        stopped = asyncio.create_task(stop.wait())
        tasks = (reader, keepalive, stopped)
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in (reader, keepalive):
            if task in done and (error := task.exception()) is not None:
                raise error
        if reader in done:
            reason = f" {ws.close_reason}" if ws.close_reason else ""
            raise ConnectionError(f"the server closed the connection ({ws.close_code}{reason})")

    async def _read(self, ws: ClientConnection, sink: Sink, pong: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        self._busy, self._idle_since = False, loop.time()
        async for message in ws:
            self._busy = True
            try:
                await self._handle(message, sink, pong)
            finally:
                self._busy, self._idle_since = False, loop.time()

    async def _handle(self, message: str | bytes, sink: Sink, pong: asyncio.Event) -> None:
        text = message if isinstance(message, str) else message.decode("utf-8", "replace")
        if text == PONG:
            pong.set()
            self._proved = True
            return
        received_at = self._clock()
        self.stats.messages += 1
        self.stats.last_message_at = received_at
        events, problems = parse_message(text, received_at)
        if problems:
            self._record_malformed(text, problems, received_at)
        if events:
            self._proved = True
            await sink(events)
            self.stats.events += len(events)
            self.stats.last_event_at = received_at

    async def _keepalive(self, ws: ClientConnection, pong: asyncio.Event) -> None:
        """`ping` every `ping_interval`; raise PongTimeoutError when the reader has waited on
        the socket for `pong_timeout` since the ping without reading the pong or anything else.

        Only the reader's idle time counts: while it works through a backlog, or awaits the
        sink under backpressure, the pong sits unread behind the messages before it, and a
        connection that is delivering messages is alive. Silence between events is fine as
        long as the pongs come back."""
        loop = asyncio.get_running_loop()
        next_ping = loop.time() + self.ping_interval
        while True:
            await asyncio.sleep(max(0.0, next_ping - loop.time()))
            pong.clear()
            await ws.send(PING)
            sent_at = loop.time()
            next_ping = sent_at + self.ping_interval
            while not pong.is_set():
                waited = 0.0 if self._busy else loop.time() - max(sent_at, self._idle_since)
                if waited >= self.pong_timeout:
                    raise PongTimeoutError(f"no pong within {self.pong_timeout:g} s of a ping")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(pong.wait(), self.pong_timeout - waited)

    def _record_malformed(self, text: str, problems: list[str], received_at: datetime) -> None:
        self.stats.malformed += 1
        # Scrubbed before it is cut, so no piece of a key survives at the cut.
        raw = self.scrub(text)[:RAW_SAMPLE_CHARS]
        reasons = tuple(self.scrub(p) for p in problems)
        self.malformed_samples.append(MalformedSample(received_at, reasons, raw))
        shown = "; ".join(reasons[:3]) + (f"; {len(reasons) - 3} more" if len(reasons) > 3 else "")
        log.warning("malformed CoinGlass message (%s): %s", shown, raw[:LOG_PREVIEW_CHARS])
