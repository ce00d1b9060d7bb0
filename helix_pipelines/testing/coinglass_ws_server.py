"""A local fake of CoinGlass's liquidation websocket: a real websocket server on 127.0.0.1 (an
ephemeral port) in a background thread with its own event loop, speaking the protocol
`helix_pipelines.live.coinglass_ws` documents.

Like CoinGlass: the key is the `cg-api-key` query parameter (a wrong or missing one is accepted
and then closed with 1008 and a reason), the text `ping` is answered with `pong`, and
`{"method":"subscribe","channels":["liquidationOrders"]}` subscribes the connection; events go
to subscribed connections only, as `{"channel":"liquidationOrders","data":[...]}`.

For tests: push events, raw (malformed) text or a burst of N events; stop answering pings (a
dead server whose socket stays open); go silent (pushes are dropped, pings still answered);
drop every connection without a close frame (a cut network). Everything clients sent is
recorded. A push returns once the messages are written to every subscriber's socket, so a
client that is held back by backpressure holds the pusher back too, as TCP would.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

log = logging.getLogger(__name__)

DEFAULT_API_KEY = "helixFakeCoinGlassWsKey01"
PATH = "/ws-api"
CHANNEL = "liquidationOrders"
FIRST_TIME_MS = 1_725_416_318_379  # 2024-09-04 02:18:38.379 UTC, as in CoinGlass's example
_T = TypeVar("_T")


def liquidation_item(
    *,
    base_asset: str = "BTC",
    exchange: str = "Binance",
    symbol: str | None = None,
    price: float | str = 56738.0,
    side: int | str = 2,
    time_ms: int | str = FIRST_TIME_MS,
    usd: float | str = 3858.18,
) -> dict[str, object]:
    """One item of a `liquidationOrders` message, in CoinGlass's field names."""
    return {
        "baseAsset": base_asset,
        "exName": exchange,
        "price": price,
        "side": side,
        "symbol": symbol or f"{base_asset}USDT",
        "time": time_ms,
        "volUsd": usd,
    }


def message(items: Sequence[dict[str, object]]) -> str:
    """The text of one `liquidationOrders` message carrying `items`."""
    return json.dumps({"channel": CHANNEL, "data": list(items)}, separators=(",", ":"))


def burst_items(n: int, *, base_asset: str = "BTC", first: int = 0) -> list[dict]:
    """Items `first` .. `first + n - 1` of one deterministic sequence (item k: FIRST_TIME_MS + k
    ms, side 1 + k % 2, price and size varying with k), so overlapping bursts repeat the very
    same orders, as CoinGlass replaying them would."""
    return [
        liquidation_item(
            base_asset=base_asset,
            price=50_000.0 + (k % 1_000) * 0.5,
            side=1 + k % 2,
            time_ms=FIRST_TIME_MS + k,
            usd=100.0 + k,
        )
        for k in range(first, first + n)
    ]


class FakeCoinGlassWS:
    """The fake server; a context manager (`with FakeCoinGlassWS() as server:`)."""

    def __init__(self, api_key: str = DEFAULT_API_KEY, *, answer_pings: bool = True) -> None:
        self.api_key = api_key
        self.answer_pings = answer_pings  # read by the server thread on every ping
        self.silent = False
        self.connections = 0  # accepted with the right key
        self.rejected = 0  # closed for a wrong or missing key
        self.subscribes = 0
        self.pings = 0
        self.pongs = 0
        self.suppressed = 0  # messages dropped while silent
        self.close_codes: list[int | None] = []  # of ended connections (None: no close frame)
        self._received: list[str] = []
        self._lock = threading.Lock()
        self._open: set[ServerConnection] = set()
        self._subscribed: set[ServerConnection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closing: asyncio.Event | None = None
        self._port: int | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """`ws://127.0.0.1:PORT/ws-api` of the running server (no key: the client adds it)."""
        if self._port is None:
            raise RuntimeError("FakeCoinGlassWS is not running; call start() first")
        return f"ws://127.0.0.1:{self._port}{PATH}"

    def start(self) -> Self:
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._serve, args=(ready, failure), name="FakeCoinGlassWS", daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout=10) or failure:
            self.stop()
            raise RuntimeError(f"FakeCoinGlassWS did not start: {failure or 'timed out'}")
        return self

    def stop(self) -> None:
        """Close every connection (1001, going away) and the server, and end its thread."""
        loop, thread, closing = self._loop, self._thread, self._closing
        if thread is None:
            return
        if loop is not None and closing is not None and not loop.is_closed():
            loop.call_soon_threadsafe(closing.set)
        thread.join(timeout=10)
        self._thread = self._loop = self._closing = None
        self._port = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _serve(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(ready))
        except BaseException as exc:  # reported to start(), which is waiting for `ready`
            failure.append(exc)
            ready.set()
        finally:
            loop.close()

    async def _main(self, ready: threading.Event) -> None:
        self._closing = asyncio.Event()
        server: Server
        # ping_interval=None: CoinGlass's keepalive is the text ping, the client's to send.
        async with serve(
            self._handle, "127.0.0.1", 0, ping_interval=None, close_timeout=1, logger=log
        ) as server:
            self._port = int(next(iter(server.sockets)).getsockname()[1])
            ready.set()
            await self._closing.wait()

    # -- the protocol ----------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path if ws.request else "").query)
        if query.get("cg-api-key") != [self.api_key]:
            self.rejected += 1
            await ws.close(1008, "invalid cg-api-key")
            return
        self.connections += 1
        self._open.add(ws)
        try:
            async for frame in ws:
                text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
                with self._lock:
                    self._received.append(text)
                if text == "ping":
                    self.pings += 1
                    if self.answer_pings:
                        self.pongs += 1
                        await ws.send("pong")
                elif _subscribes(text):
                    self.subscribes += 1
                    self._subscribed.add(ws)
        except ConnectionClosed:
            pass
        finally:
            self._open.discard(ws)
            self._subscribed.discard(ws)
            self.close_codes.append(ws.close_code)

    async def _broadcast(self, texts: Sequence[str]) -> int:
        if self.silent:
            self.suppressed += len(texts)
            return 0
        reached = 0
        for ws in list(self._subscribed):
            try:
                for text in texts:
                    await ws.send(text)
                reached += 1
            except ConnectionClosed:
                continue
        return reached

    async def _drop(self) -> int:
        dropped = list(self._open)
        for ws in dropped:
            ws.transport.abort()
        return len(dropped)

    def _call(self, coroutine: Callable[[], Coroutine[Any, Any, _T]], timeout: float) -> _T:
        if self._loop is None:
            raise RuntimeError("FakeCoinGlassWS is not running; call start() first")
        return asyncio.run_coroutine_threadsafe(coroutine(), self._loop).result(timeout)

    # -- what a test does ------------------------------------------------------------------

    def push(self, *items: dict[str, object], timeout: float = 10.0) -> int:
        """One message with `items` to every subscriber; how many it reached."""
        text = message(items)
        return self._call(lambda: self._broadcast([text]), timeout)

    def push_raw(self, *texts: str, timeout: float = 10.0) -> int:
        """Each text as one message, as it is (malformed ones included)."""
        return self._call(lambda: self._broadcast(texts), timeout)

    def push_burst(
        self,
        n: int,
        *,
        per_message: int = 1,
        base_asset: str = "BTC",
        first: int = 0,
        timeout: float = 60.0,
    ) -> list[dict]:
        """`n` distinct events (`burst_items` from `first`), `per_message` to a message, back
        to back; returns the items sent."""
        items = burst_items(n, base_asset=base_asset, first=first)
        texts = [message(items[i : i + per_message]) for i in range(0, n, per_message)]
        self._call(lambda: self._broadcast(texts), timeout)
        return items

    def go_silent(self) -> None:
        """Send no more events (pushes are dropped and counted); pings are still answered."""
        self.silent = True

    def speak(self) -> None:
        self.silent = False

    def drop_connections(self) -> int:
        """Cut every connection without a close frame; how many there were."""
        return self._call(self._drop, 10.0)

    @property
    def received(self) -> list[str]:
        """Every text clients sent, in arrival order."""
        with self._lock:
            return list(self._received)

    @property
    def subscribers(self) -> int:
        """Connections subscribed now."""
        return len(self._subscribed)

    def wait_for_subscribers(self, n: int = 1, timeout: float = 5.0) -> None:
        """Block until `n` connections are subscribed (raise TimeoutError after `timeout`)."""
        deadline = time.monotonic() + timeout
        while self.subscribers < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.subscribers} of {n} subscribers after {timeout} s")
            time.sleep(0.005)


def _subscribes(text: str) -> bool:
    try:
        document = json.loads(text)
    except ValueError:
        return False
    return (
        isinstance(document, dict)
        and document.get("method") == "subscribe"
        and CHANNEL in (document.get("channels") or [])
    )
