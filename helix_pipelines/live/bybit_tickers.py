"""Live Bybit prices: the public linear tickers websocket, through pybit, into a PriceBook; a
watchdog that switches to REST polling (visibly) when the stream dies or goes quiet, and
reconnects with capped, jittered exponential backoff.

How much of pybit is kept: the connection itself (websocket-client on its own thread), ping
frames and Bybit's `{"op":"ping"}` heartbeat, and `exit()`. Not kept:

- Its reconnects (`restart_on_error=False`). pybit reconnects inside websocket-client's error
  callback, on the socket's own thread, tries again back to back with no delay, and after
  `retries` attempts raises inside that callback, where websocket-client only logs it: the
  stream then stays down for good. It does not reconnect at all after errors it does not
  list (a refused handshake, a message it could not parse). And it only reacts to errors: a
  stream that stays open, answers pings and pushes nothing never errors. So the feed's watchdog
  owns reconnecting: it watches ticker messages, falls back to REST, and backs off so a flapping
  stream does not hammer Bybit (which limits how often one IP may connect).
- Its retries inside one connect (`retries=2`). pybit counts the attempt that connects against
  `retries` and raises after the last one even when it connected, so `retries=1` always fails;
  2 means one attempt and one immediate retry, the backoff being the watchdog's.
- Its message handling. `_on_message` parses JSON and dispatches by topic, and anything odd in
  there (text that is not JSON, a delta before its snapshot, a message without a topic) raises,
  which pybit answers by closing the socket for good. It also merges each ticker delta into the
  snapshot and hands on the whole, relabelled "snapshot": a delta without lastPrice would look
  like a fresh push of the old price. The feed reads every text frame itself, and ignores (and
  counts) what it cannot use.
- Its `subscribe()`: it sends every symbol in one request (Bybit takes at most 10 args per
  public subscribe request) and, before sending, waits for a connection with no deadline, so a
  socket that died between the handshake and the request would park the caller forever. The feed
  sends the requests itself, in chunks; a send on a closed socket raises at once.

Known gap: websocket-client has no handshake timeout (only the process-wide
`websocket.setdefaulttimeout`), so a server that accepts TCP and never answers the upgrade holds
that connect attempt, and with it the watchdog, until the connection breaks. The feed stays on
the REST fallback meanwhile (visibly), and `stop()` waits for it no longer than `join_timeout`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import random
import socket as pysocket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, Self

from pybit.unified_trading import HTTP, WebSocket

from helix_pipelines.clock import utc_now
from helix_pipelines.contracts.live import PriceTick
from helix_pipelines.live.prices import PriceBook

logger = logging.getLogger(__name__)

Network = Literal["mainnet", "testnet"]
FeedStatus = Literal["ws", "rest_fallback", "stopped"]

WS_URLS: dict[Network, str] = {
    "mainnet": "wss://stream.bybit.com/v5/public/linear",
    "testnet": "wss://stream-testnet.bybit.com/v5/public/linear",
}
MAX_ARGS_PER_SUBSCRIBE = 10
"""Bybit's limit on args in one subscribe request to a public channel."""
BAD_MESSAGE_LOG_INTERVAL = 5.0
"""Seconds between log lines about ignored messages: a stream gone wrong sends thousands."""
CONNECTING, FLOWING = "connecting", "ticker messages flowing"
_MAX_BACKOFF_DOUBLINGS = 30  # 2**30 times the first delay is past any sane cap already


@dataclass(slots=True)
class FeedCounts:
    """What the feed did so far (the watchdog and pybit's thread add to it under the feed's lock;
    callers get copies)."""

    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    """Connected sockets given up on: closed under the feed, or quiet too long."""
    fallbacks: int = 0
    """Switches from the websocket to the REST fallback."""
    subscribe_requests: int = 0
    subscribe_acks: int = 0
    subscribe_rejections: int = 0
    ws_messages: int = 0
    """Well-formed ticker messages of the current socket (with or without a new price)."""
    ws_prices: int = 0
    """Prices handed to the book from the websocket (the book keeps only the newest)."""
    bad_messages: int = 0
    rest_polls: int = 0
    rest_failures: int = 0
    rest_prices: int = 0


@dataclass(frozen=True, slots=True)
class FeedStats:
    """The feed's state at one moment, for the status page, the logs and the tests."""

    status: FeedStatus
    reason: str
    """Why the feed is in `status` (for rest_fallback: what went wrong with the websocket)."""
    since: datetime | None
    """When the feed entered `status` for `reason` (None before `start()`)."""
    counts: FeedCounts


class _TickerSocket(WebSocket):
    """pybit's public linear WebSocket at `url`, handing every text frame to the feed and
    recording why it closed instead of reconnecting. Connects in the constructor (pybit does),
    raising when it cannot."""

    def __init__(
        self,
        url: str,
        on_text: Callable[[_TickerSocket, str], None],
        on_down: Callable[[], None],
        *,
        ping_interval: float,
        ping_timeout: float,
    ) -> None:
        self._url = url
        self._on_text = on_text
        self._on_down = on_down
        # Until pybit's connect returns, errors belong to its connect attempts, not to a live
        # socket; a close in the gap before this turns True is still seen by is_connected().
        self._live = False
        self.close_reason: str | None = None
        self.requests: dict[str, tuple[str, ...]] = {}
        """req_id -> symbols of each subscribe request sent, to name them if Bybit refuses."""
        super().__init__(
            channel_type="linear",
            testnet=False,  # unused: the URL is ours (see _connect)
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            retries=2,
            restart_on_error=False,
        )
        self._live = True

    def _connect(self, url: str) -> None:
        # pybit builds the public URL itself (always on bybit.com; no argument takes a URL) and
        # passes it through str.format to fill in the subdomain: a URL without placeholders comes
        # out unchanged, so handing ours in here points all of pybit's machinery at mainnet,
        # testnet or a local fake.
        super()._connect(self._url)

    def _on_message(self, message: str) -> None:
        self._on_text(self, message)

    def _on_error(self, error: Exception) -> None:
        self._closed(f"{type(error).__name__}: {error}")

    def _on_close(self) -> None:
        self._closed("closed by the server or the network")

    def _closed(self, reason: str) -> None:
        if self._live and self.close_reason is None:
            self.close_reason = reason
            self._on_down()

    def subscribe_tickers(self, req_id: str, symbols: Sequence[str]) -> None:
        """Send one subscribe request; raises (websocket-client's exception) if the socket is
        closed."""
        self.requests[req_id] = tuple(symbols)
        args = [f"tickers.{symbol}" for symbol in symbols]
        self.ws.send(json.dumps({"op": "subscribe", "req_id": req_id, "args": args}))

    def shut(self, join_timeout: float) -> None:
        """Close the connection (closing handshake included) and end pybit's threads."""
        # websocket-client's reader waits in select() for up to ping_timeout at a time (10 s in
        # production) and does not notice its socket being closed by another thread, so exit()
        # alone would leave it running that long. Instead: tell it to stop, wake it by shutting
        # the read side (socket.socket's shutdown: SSLSocket's would drop TLS), and let it tear
        # down itself (its teardown sends the close frame); then exit() stops pybit's
        # heartbeat timer and closes whatever is left.
        app = getattr(self, "ws", None)
        raw = getattr(getattr(app, "sock", None), "sock", None)
        if app is not None and isinstance(raw, pysocket.socket):
            app.keep_running = False
            with contextlib.suppress(OSError):
                pysocket.socket.shutdown(raw, pysocket.SHUT_RD)
        thread = getattr(self, "wst", None)
        if thread is not None:
            thread.join(join_timeout)
        self.exit()


def _venue_time(ms: Any) -> datetime:
    if isinstance(ms, bool) or not isinstance(ms, int) or ms <= 0:
        raise ValueError(f"timestamp {ms!r} is not milliseconds since the epoch")
    return datetime.fromtimestamp(ms / 1000, UTC)


def _price(raw: Any) -> float:
    """A Bybit price field (a decimal string) as a positive finite float, else ValueError."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise ValueError(f"lastPrice {raw!r} is not a number")
    price = float(raw)
    if not (math.isfinite(price) and price > 0):
        raise ValueError(f"lastPrice {raw!r} is not a positive price")
    return price


class TickerFeed:
    """Keeps `book` filled with the last traded prices of `symbols` (Bybit USDT linear
    perpetuals, e.g. BTCUSDT, 1000PEPEUSDT): from the tickers websocket while it flows, from
    `get_tickers(category="linear")` every `rest_interval` seconds while it does not.

    The websocket counts as down when pybit reports it closed, or when no ticker message arrived
    for `silence_seconds` (Bybit pushes every 100 ms for an active symbol, so a quiet stream is a
    dead one even if it answers pings). Then the feed switches to the REST fallback (`status`,
    `stats()`, a log line), drops the socket and reconnects after a backoff delay; the first
    ticker message on a new socket switches back.

    `ws_url` (default: the network's public linear stream) and `rest_session` (default: a public
    pybit session on the network) exist for tests and unusual endpoints. Use as
    `with TickerFeed(book, symbols) as feed:`, or `start()` / `stop()`; a feed runs once.
    """

    def __init__(
        self,
        book: PriceBook,
        symbols: Iterable[str],
        *,
        network: Network = "mainnet",
        ws_url: str | None = None,
        rest_session: HTTP | None = None,
        silence_seconds: float = 10.0,
        rest_interval: float = 2.0,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        ping_interval: float = 20.0,
        ping_timeout: float = 10.0,
        join_timeout: float = 5.0,
    ) -> None:
        self._symbols = tuple(dict.fromkeys(symbols))
        if not self._symbols:
            raise ValueError("TickerFeed needs at least one symbol")
        if not 0 < ping_timeout < ping_interval:
            # websocket-client refuses otherwise, inside the socket's thread, on every connect.
            raise ValueError("need 0 < ping_timeout < ping_interval")
        self._book = book
        self._universe = frozenset(self._symbols)
        self.url = ws_url or WS_URLS[network]
        self._rest = rest_session or HTTP(testnet=network == "testnet", timeout=5, max_retries=1)
        self._silence = silence_seconds
        self._rest_interval = rest_interval
        self._backoff_initial, self._backoff_max = backoff_initial, backoff_max
        self._ping_interval, self._ping_timeout = ping_interval, ping_timeout
        self._join_timeout = join_timeout
        # Often enough that silence is noticed within a few percent of silence_seconds.
        self._check_interval = min(0.25, silence_seconds / 10)

        self._lock = threading.Lock()
        self._rest_wanted = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._threads: tuple[threading.Thread, ...] = ()
        self._started = False
        self._status: FeedStatus = "stopped"
        self._reason = "not started"
        self._since: datetime | None = None
        self._counts = FeedCounts()
        self._socket: _TickerSocket | None = None
        self._last_ticker = 0.0  # monotonic; the connect time until the first ticker message
        self._flowing = False  # a ticker message arrived on the current socket
        self._failures = 0  # consecutive; sets the next backoff delay
        self._next_connect = 0.0  # monotonic
        self._req_ids = itertools.count(1)
        self._bad_logged_at = float("-inf")

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def symbols(self) -> tuple[str, ...]:
        return self._symbols

    def start(self) -> Self:
        with self._lock:
            if self._started:
                raise RuntimeError("a TickerFeed runs once")
            self._started = True
            # "ws" from the start: the websocket is the source relied on until it fails to
            # connect or stays quiet for silence_seconds, which the watchdog then reports.
            self._set_status("ws", CONNECTING)
            self._threads = (
                threading.Thread(target=self._supervise, name="bybit-tickers", daemon=True),
                threading.Thread(target=self._poll_rest, name="bybit-tickers-rest", daemon=True),
            )
        for thread in self._threads:
            thread.start()
        logger.info("Bybit tickers: %d symbols from %s", len(self._symbols), self.url)
        return self

    def stop(self) -> None:
        """Close the socket and end the threads, waiting at most about 2 x `join_timeout`."""
        with self._lock:
            threads, self._threads = self._threads, ()
            self._started = True  # stopped before it started: it never will
            self._stopping.set()
            self._rest_wanted.notify_all()
        self._wake.set()
        for thread in threads:
            thread.join(self._join_timeout)
            if thread.is_alive():
                logger.warning("Bybit tickers: thread %s did not end in time", thread.name)
        with self._lock:
            if self._status != "stopped":
                self._set_status("stopped", "stopped")
        if threads:
            logger.info("Bybit tickers: stopped")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what callers read -------------------------------------------------------------------------

    @property
    def status(self) -> FeedStatus:
        with self._lock:
            return self._status

    def stats(self) -> FeedStats:
        with self._lock:
            return FeedStats(self._status, self._reason, self._since, replace(self._counts))

    def _set_status(self, status: FeedStatus, reason: str) -> None:
        """The caller holds the lock."""
        self._status, self._reason, self._since = status, reason, utc_now()

    # -- the watchdog thread -----------------------------------------------------------------------

    def _supervise(self) -> None:
        try:
            while not self._stopping.is_set():
                self._step()
                self._wake.wait(self._check_interval)
                self._wake.clear()
        finally:
            self._drop_socket()

    def _step(self) -> None:
        socket = self._socket
        if socket is None:
            if time.monotonic() >= self._next_connect:
                self._open()
            return
        problem = self._problem(socket)
        if problem:
            self._fall_back(problem)
            self._drop_socket()
            self._schedule_reconnect()
        else:
            self._note_flowing()

    def _problem(self, socket: _TickerSocket) -> str | None:
        if socket.close_reason:
            return f"closed: {socket.close_reason}"
        if not socket.is_connected():
            return "no longer connected"
        with self._lock:
            quiet, flowing = time.monotonic() - self._last_ticker, self._flowing
        if quiet > self._silence:
            since = "since the last one" if flowing else "since connecting"
            return f"no ticker message for {quiet:.1f} s {since}"
        return None

    def _open(self) -> None:
        try:
            socket = _TickerSocket(
                self.url,
                self._on_text,
                self._wake.set,
                ping_interval=self._ping_interval,
                ping_timeout=self._ping_timeout,
            )
        except Exception as exc:
            # pybit raises WebSocketTimeoutException after its attempts, but whatever it raises,
            # the watchdog must live on and try again later.
            with self._lock:
                self._counts.connect_failures += 1
            logger.warning("Bybit tickers: cannot connect to %s: %s", self.url, exc)
            self._fall_back(f"cannot connect ({type(exc).__name__})")
            self._schedule_reconnect()
            return
        with self._lock:
            self._socket = socket
            self._last_ticker = time.monotonic()
            self._flowing = False
            self._counts.connects += 1
        try:
            for start in range(0, len(self._symbols), MAX_ARGS_PER_SUBSCRIBE):
                if self._stopping.is_set():
                    return
                chunk = self._symbols[start : start + MAX_ARGS_PER_SUBSCRIBE]
                socket.subscribe_tickers(str(next(self._req_ids)), chunk)
                with self._lock:
                    self._counts.subscribe_requests += 1
        except Exception as exc:
            # websocket-client raises its own exceptions or OSError on a socket closed under us.
            self._fall_back(f"subscribing failed ({type(exc).__name__}: {exc})")
            self._drop_socket()
            self._schedule_reconnect()

    def _drop_socket(self) -> None:
        with self._lock:
            socket, self._socket = self._socket, None
            self._flowing = False
            if socket is not None:
                self._counts.disconnects += 1
        if socket is not None:
            socket.shut(self._join_timeout)

    def _schedule_reconnect(self) -> None:
        """Wait `backoff_initial` doubled per consecutive failure, capped at `backoff_max`, then
        between half and all of it at random, so many clients cut off together do not all come
        back in the same instant."""
        with self._lock:
            doublings = min(self._failures, _MAX_BACKOFF_DOUBLINGS)
            ceiling = min(self._backoff_max, self._backoff_initial * 2**doublings)
            self._failures += 1
            delay = ceiling / 2 + random.uniform(0, ceiling / 2)
            self._next_connect = time.monotonic() + delay
        logger.info("Bybit tickers: reconnecting in %.2f s", delay)

    def _fall_back(self, reason: str) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            if self._status == "rest_fallback":
                self._reason = reason  # still down; `since` stays when it went down
                return
            self._set_status("rest_fallback", reason)
            self._counts.fallbacks += 1
            self._rest_wanted.notify_all()
        logger.warning(
            "Bybit tickers: websocket down (%s); prices from REST every %.1f s until it is back",
            reason,
            self._rest_interval,
        )

    def _note_flowing(self) -> None:
        """Once ticker messages arrive on the current socket: status "ws" ("flowing"), leaving
        the REST fallback if the feed was on it."""
        with self._lock:
            if not self._flowing or (self._status, self._reason) == ("ws", FLOWING):
                return
            was, since = self._status, self._since
            self._set_status("ws", FLOWING)
            # Reset only now, not on connect: a server that accepts and then stays quiet must
            # keep backing off.
            self._failures = 0
        if was == "rest_fallback":
            took = (utc_now() - since).total_seconds() if since else 0.0
            logger.info("Bybit tickers: websocket flowing again after %.1f s on REST", took)
        else:
            logger.info("Bybit tickers: websocket flowing")

    # -- the socket's thread -----------------------------------------------------------------------

    def _on_text(self, socket: _TickerSocket, text: str) -> None:
        """Every text frame, on pybit's thread: must be cheap and must never raise."""
        try:
            self._read(socket, text)
        except Exception as exc:
            self._bad(f"unexpected {type(exc).__name__}: {exc}", text)

    def _read(self, socket: _TickerSocket, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            self._bad("not JSON", text)
            return
        if not isinstance(message, dict):
            self._bad("not a JSON object", text)
            return
        op = message.get("op")
        if op == "ping" or message.get("ret_msg") == "pong":
            # A pong says the connection lives, not that prices flow: it never counts as a
            # ticker message (the quiet-but-answering stream is the case the watchdog is for).
            return
        if op == "subscribe":
            self._subscribed(socket, message)
            return
        try:
            symbol, price, at = self._parse_ticker(message)
        except ValueError as exc:
            self._bad(str(exc), text)
            return
        with self._lock:
            if socket is not self._socket:
                return  # a socket given up on: its late messages say nothing about the current
            self._last_ticker = time.monotonic()
            self._flowing = True
            self._counts.ws_messages += 1
            if price is not None:
                self._counts.ws_prices += 1
        if price is not None:
            self._book.update(PriceTick(symbol, price, at, "ws"))
        else:
            self._book.confirm(symbol, at)

    def _parse_ticker(self, message: dict[str, Any]) -> tuple[str, float | None, datetime]:
        """(symbol, lastPrice or None for a delta that does not carry one, venue time)."""
        topic, kind, data = message.get("topic"), message.get("type"), message.get("data")
        if not isinstance(topic, str) or not topic.startswith("tickers."):
            raise ValueError(f"not a tickers message (topic {topic!r})")
        symbol = topic.removeprefix("tickers.")
        if kind not in ("snapshot", "delta"):
            raise ValueError(f"type {kind!r} is neither snapshot nor delta")
        if not isinstance(data, dict) or data.get("symbol") != symbol:
            raise ValueError(f"data is not the ticker of {symbol}")
        if symbol not in self._universe:
            raise ValueError(f"{symbol} was not subscribed")
        at = _venue_time(message.get("ts"))
        if "lastPrice" not in data:
            # Bybit's deltas carry only what changed: no lastPrice means the price did not move,
            # so the book keeps the held price, re-stamped with this message's time.
            if kind == "snapshot":
                raise ValueError("snapshot without lastPrice")
            return symbol, None, at
        return symbol, _price(data["lastPrice"]), at

    def _subscribed(self, socket: _TickerSocket, reply: dict[str, Any]) -> None:
        with self._lock:
            if reply.get("success") is True:
                self._counts.subscribe_acks += 1
                return
            self._counts.subscribe_rejections += 1
        symbols = socket.requests.get(str(reply.get("req_id")), ())
        logger.error(
            "Bybit tickers: subscription to %s refused: %s",
            ",".join(symbols) or "?",
            reply.get("ret_msg"),
        )

    def _bad(self, reason: str, text: str) -> None:
        with self._lock:
            self._counts.bad_messages += 1
            count = self._counts.bad_messages
            now = time.monotonic()
            due = now - self._bad_logged_at >= BAD_MESSAGE_LOG_INTERVAL
            if due:
                self._bad_logged_at = now
        if due:
            logger.warning(
                "Bybit tickers: ignored a message (%s; %d so far): %.200s", reason, count, text
            )

    # -- the REST fallback thread ------------------------------------------------------------------

    def _poll_rest(self) -> None:
        while True:
            with self._lock:
                self._rest_wanted.wait_for(
                    lambda: self._stopping.is_set() or self._status == "rest_fallback"
                )
                if self._stopping.is_set():
                    return
            self._poll_once()
            self._stopping.wait(self._rest_interval)

    def _poll_once(self) -> None:
        try:
            reply = self._rest.get_tickers(category="linear")
            rows = reply["result"]["list"]
            at = _venue_time(reply.get("time"))
        except Exception as exc:
            # pybit's request errors, a network error, an answer of the wrong shape: all mean
            # "no prices this round"; the next poll tries again.
            with self._lock:
                self._counts.rest_failures += 1
            logger.warning(
                "Bybit tickers: REST fallback poll failed: %s: %s", type(exc).__name__, exc
            )
            return
        written = 0
        for row in rows:
            symbol = row.get("symbol") if isinstance(row, dict) else None
            if symbol not in self._universe:
                continue
            try:
                price = _price(row.get("lastPrice"))
            except ValueError:
                continue  # Bybit lists a symbol that has not traded yet with an empty lastPrice
            self._book.update(PriceTick(symbol, price, at, "rest"))
            written += 1
        with self._lock:
            self._counts.rest_polls += 1
            self._counts.rest_prices += written
