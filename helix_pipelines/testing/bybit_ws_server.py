"""A local fake of Bybit's v5 public linear websocket (`wss://stream.bybit.com/v5/public/linear`),
tickers topic only, for the live price feed's tests.

Why a real websocket server: the feed talks through pybit's real client (websocket-client on its
own thread, ping frames, Bybit's `{"op":"ping"}` heartbeat), and what matters (a socket that
dies, a handshake that is refused, a stream that stays open but goes quiet) only shows up over a
socket. Point the feed at `server.url`.

Like Bybit: `{"op":"subscribe","args":["tickers.BTCUSDT",...],"req_id":...}` is answered with
`{"success":true,"ret_msg":"","op":"subscribe","conn_id":...,"req_id":...}`, at most
MAX_ARGS_PER_REQUEST args per request and only listed symbols (else `success: false`); then a
snapshot per subscribed symbol, then a delta every `push_interval` seconds carrying only what
changed (`lastPrice` when the price moved, else just the 24 h volume, as Bybit pushes for a symbol
that trades without moving the last price). `{"op":"ping"}` is answered with
`{"success":true,"ret_msg":"pong",...,"op":"ping"}`, ping frames with pong frames.

What tests script: `set_price`, `push` (one ticker message with any data), `push_raw` (any text),
`burst`, `go_silent` / `resume` (stop pushing while still answering pings and subscriptions: the
dangerous case, a stream that looks alive), `stop_answering_pings` / `answer_pings`,
`drop_connections`, `refuse_connections` / `accept_connections`. What it records:
`subscriptions()`, `pings`, `accepted`, `refused`, `open_connections`.

The server runs its own asyncio loop on a background thread; every public method is safe to call
from the test's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response

from helix_pipelines.testing.bybit_instruments import DEFAULT_PRICES

PATH = "/v5/public/linear"
MAX_ARGS_PER_REQUEST = 10
"""Bybit's limit on args in one subscribe request to a public channel."""
_CALL_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Subscription:
    """One subscribe request as the server read it."""

    connection: int
    """The connection's number: 1 for the first the server accepted, 2 for the next..."""
    req_id: str | None
    args: tuple[str, ...]
    accepted: bool
    time: float
    """`time.time()` when the request was read."""


@dataclass(eq=False)
class _Connection:
    number: int
    socket: ServerConnection
    conn_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    snapshot_sent: dict[str, bool] = field(default_factory=dict)
    """Subscribed symbol -> whether its snapshot went out (not yet while the server is silent)."""
    last_sent: dict[str, str] = field(default_factory=dict)
    """Symbol -> the lastPrice this connection last received, to push only what changed."""


class FakeBybitWsServer:
    """The fake public linear stream. Use as `with FakeBybitWsServer(prices={...}) as server:`."""

    def __init__(
        self, *, prices: Mapping[str, str] | None = None, push_interval: float = 0.1
    ) -> None:
        self.push_interval = push_interval
        self._prices = dict(prices or DEFAULT_PRICES)
        self._volume: dict[str, int] = dict.fromkeys(self._prices, 1000)
        self._lock = threading.Lock()
        self._silent = False
        self._answering_pings = True
        self._refuse_until = 0.0
        self._subscriptions: list[Subscription] = []
        self._connections: dict[int, _Connection] = {}
        self._numbers = itertools.count(1)
        self._cs = itertools.count(1)
        self.pings = 0
        self.accepted = 0
        self.refused = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._done: asyncio.Future[None] | None = None
        self._port = 0

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """`ws://127.0.0.1:PORT/v5/public/linear` of the running server."""
        if not self._port:
            raise RuntimeError("FakeBybitWsServer is not running; call start() first")
        return f"ws://127.0.0.1:{self._port}{PATH}"

    def start(self) -> Self:
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run, args=(ready, failure), name="FakeBybitWsServer", daemon=True
        )
        self._thread.start()
        if not ready.wait(_CALL_TIMEOUT) or failure:
            self.stop()
            raise RuntimeError(f"FakeBybitWsServer did not start: {failure}")
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        done = self._done
        if done is not None:
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))
        thread.join(timeout=_CALL_TIMEOUT)
        loop.close()
        self._loop = self._thread = self._done = None
        self._port = 0

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what tests script -------------------------------------------------------------------------

    def set_price(self, symbol: str, price: str) -> None:
        """The symbol's last price from now on; the next delta carries it."""
        with self._lock:
            self._prices[symbol] = price
            self._volume.setdefault(symbol, 1000)

    def price(self, symbol: str) -> str:
        with self._lock:
            return self._prices[symbol]

    def push(
        self,
        symbol: str,
        data: Mapping[str, Any],
        *,
        kind: str = "delta",
        ts: int | None = None,
    ) -> int:
        """Send one `tickers.<symbol>` message with exactly `data` (plus `symbol`, unless `data`
        names one) to every connection subscribed to it, now; the number of connections."""
        body = {"symbol": symbol, **data}
        text = self._envelope(symbol, kind, body, ts)
        return self._call(self._send_to_subscribers(symbol, [text]))

    def push_raw(self, text: str) -> int:
        """Send `text` as it is (malformed JSON, an unknown message...) to every connection."""
        return self._call(self._send_to_all(text))

    def burst(self, symbol: str, prices: Sequence[str]) -> int:
        """Deltas for `prices`, back to back, in order, to every subscriber; the symbol's price is
        the last of them afterwards. The number of connections."""
        with self._lock:
            self._prices[symbol] = prices[-1]
        texts = [
            self._envelope(symbol, "delta", self._price_delta(symbol, p), None) for p in prices
        ]
        return self._call(self._send_to_subscribers(symbol, texts, last_price=prices[-1]))

    def go_silent(self) -> None:
        """Stop pushing tickers (snapshots too) while still answering pings and subscriptions."""
        with self._lock:
            self._silent = True

    def resume(self) -> None:
        """Push again: owed snapshots first, then deltas."""
        with self._lock:
            self._silent = False

    def stop_answering_pings(self) -> None:
        """Ignore `{"op":"ping"}` and swallow the pong frames answering ping frames."""
        with self._lock:
            self._answering_pings = False

    def answer_pings(self) -> None:
        with self._lock:
            self._answering_pings = True

    def drop_connections(self) -> int:
        """Cut every open connection without a closing handshake, as a network failure does; the
        number cut."""
        return self._call(self._drop_all())

    def refuse_connections(self, seconds: float = 3600.0) -> None:
        """Answer new handshakes with HTTP 503 for `seconds` (open connections stay)."""
        with self._lock:
            self._refuse_until = time.monotonic() + seconds

    def accept_connections(self) -> None:
        with self._lock:
            self._refuse_until = 0.0

    # -- what tests read ---------------------------------------------------------------------------

    def subscriptions(self, connection: int | None = None) -> list[Subscription]:
        """Every subscribe request read, oldest first (of one connection, when given)."""
        with self._lock:
            return [s for s in self._subscriptions if connection in (None, s.connection)]

    def subscribed_symbols(self, connection: int) -> set[str]:
        """The symbols a connection subscribed successfully."""
        return {
            arg.removeprefix("tickers.")
            for s in self.subscriptions(connection)
            if s.accepted
            for arg in s.args
        }

    @property
    def open_connections(self) -> list[int]:
        with self._lock:
            return sorted(self._connections)

    # -- the server --------------------------------------------------------------------------------

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main(ready))
        except BaseException as exc:
            failure.append(exc)
            ready.set()

    async def _main(self, ready: threading.Event) -> None:
        self._done = asyncio.get_running_loop().create_future()
        server: Server
        async with serve(
            self._serve,
            "127.0.0.1",
            0,
            process_request=self._process_request,
            # The client pings; Bybit's server does not, and neither does the fake.
            ping_interval=None,
            compression=None,
            close_timeout=0.5,
        ) as server:
            self._port = server.sockets[0].getsockname()[1]
            pump = asyncio.create_task(self._pump())
            ready.set()
            await self._done
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path != PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, "no such stream\n")
        with self._lock:
            if time.monotonic() < self._refuse_until:
                self.refused += 1
                return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "busy\n")
        return None

    async def _serve(self, socket: ServerConnection) -> None:
        self._filter_pongs(socket)
        with self._lock:
            connection = _Connection(next(self._numbers), socket)
            self._connections[connection.number] = connection
            self.accepted += 1
        try:
            async for message in socket:
                await self._answer(connection, message)
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                self._connections.pop(connection.number, None)

    def _filter_pongs(self, socket: ServerConnection) -> None:
        """websockets answers ping frames inside its protocol object, before any handler sees
        them; a server that stopped answering can only be faked by dropping those pongs there."""
        protocol = socket.protocol
        send_frame = protocol.send_frame

        def maybe_send(frame: Frame) -> None:
            if frame.opcode is Opcode.PONG and not self._answering_pings:
                return
            send_frame(frame)

        protocol.send_frame = maybe_send  # type: ignore[method-assign]

    async def _answer(self, connection: _Connection, message: str | bytes) -> None:
        try:
            request = json.loads(message)
        except ValueError:
            request = None
        if not isinstance(request, dict):
            await self._reply(connection, {"success": False, "ret_msg": "invalid request"})
            return
        op, req_id = request.get("op"), request.get("req_id")
        if op == "ping":
            with self._lock:
                self.pings += 1
                answering = self._answering_pings
            if answering:
                await self._reply(connection, {"success": True, "ret_msg": "pong", "op": "ping"})
        elif op == "subscribe":
            await self._subscribe(connection, request.get("args"), req_id)
        elif op == "unsubscribe":
            for arg in request.get("args") or []:
                connection.snapshot_sent.pop(str(arg).removeprefix("tickers."), None)
            await self._reply(connection, {"success": True, "ret_msg": "", "op": op}, req_id)
        else:
            await self._reply(connection, {"success": False, "ret_msg": f"unknown op {op!r}"})

    async def _subscribe(self, connection: _Connection, args: Any, req_id: Any) -> None:
        args = tuple(str(a) for a in args) if isinstance(args, list) else ()
        symbols = [a.removeprefix("tickers.") for a in args]
        with self._lock:
            unknown = [a for a, s in zip(args, symbols, strict=True) if s not in self._prices]
            if not args or len(args) > MAX_ARGS_PER_REQUEST:
                error = f"args size must be 1 to {MAX_ARGS_PER_REQUEST}, got {len(args)}"
            elif unknown or not all(a.startswith("tickers.") for a in args):
                error = f"error:handler not found,topic:{(unknown or args)[0]}"
            else:
                error = ""
            self._subscriptions.append(
                Subscription(connection.number, req_id, args, not error, time.time())
            )
            if not error:
                for symbol in symbols:
                    connection.snapshot_sent.setdefault(symbol, False)
            silent = self._silent
        await self._reply(
            connection, {"success": not error, "ret_msg": error, "op": "subscribe"}, req_id
        )
        if not error and not silent:
            await self._send_owed_snapshots(connection)

    async def _reply(
        self, connection: _Connection, body: dict[str, Any], req_id: Any = None
    ) -> None:
        body = {**body, "conn_id": connection.conn_id}
        if req_id is not None:
            body["req_id"] = req_id
        with contextlib.suppress(ConnectionClosed):
            await connection.socket.send(json.dumps(body))

    # -- pushing -----------------------------------------------------------------------------------

    async def _pump(self) -> None:
        while True:
            await asyncio.sleep(self.push_interval)
            with self._lock:
                if self._silent:
                    continue
                connections = list(self._connections.values())
            for connection in connections:
                await self._send_owed_snapshots(connection)
                await self._send_deltas(connection)

    async def _send_owed_snapshots(self, connection: _Connection) -> None:
        texts = []
        with self._lock:
            for symbol, sent in connection.snapshot_sent.items():
                if not sent:
                    price = self._prices[symbol]
                    texts.append(self._envelope(symbol, "snapshot", self._full(symbol), None))
                    connection.snapshot_sent[symbol] = True
                    connection.last_sent[symbol] = price
        await self._send(connection, texts)

    async def _send_deltas(self, connection: _Connection) -> None:
        texts = []
        with self._lock:
            for symbol, sent in connection.snapshot_sent.items():
                if not sent:
                    continue
                price = self._prices[symbol]
                if connection.last_sent.get(symbol) != price:
                    data = self._price_delta(symbol, price)
                    connection.last_sent[symbol] = price
                else:
                    self._volume[symbol] += 1
                    data = {"symbol": symbol, "volume24h": str(self._volume[symbol])}
                texts.append(self._envelope(symbol, "delta", data, None))
        await self._send(connection, texts)

    async def _send_to_subscribers(
        self, symbol: str, texts: list[str], last_price: str | None = None
    ) -> int:
        with self._lock:
            connections = [c for c in self._connections.values() if symbol in c.snapshot_sent]
            if last_price is not None:
                for connection in connections:
                    connection.last_sent[symbol] = last_price
        for connection in connections:
            await self._send(connection, texts)
        return len(connections)

    async def _send_to_all(self, text: str) -> int:
        with self._lock:
            connections = list(self._connections.values())
        for connection in connections:
            await self._send(connection, [text])
        return len(connections)

    async def _send(self, connection: _Connection, texts: list[str]) -> None:
        with contextlib.suppress(ConnectionClosed):
            for text in texts:
                await connection.socket.send(text)

    async def _drop_all(self) -> int:
        with self._lock:
            connections = list(self._connections.values())
            self._connections.clear()
        for connection in connections:
            connection.socket.transport.abort()
        return len(connections)

    def _call(self, coroutine: Any) -> Any:
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("FakeBybitWsServer is not running; call start() first")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(_CALL_TIMEOUT)

    # -- Bybit's message shapes --------------------------------------------------------------------

    def _envelope(self, symbol: str, kind: str, data: dict[str, Any], ts: int | None) -> str:
        stamp = ts if ts is not None else int(time.time() * 1000)
        return json.dumps(
            {
                "topic": f"tickers.{symbol}",
                "type": kind,
                "data": data,
                "cs": next(self._cs),
                "ts": stamp,
            }
        )

    def _full(self, symbol: str) -> dict[str, Any]:
        """A snapshot's data (a subset of Bybit's fields, as strings like Bybit sends them)."""
        price = self._prices[symbol]
        return {
            "symbol": symbol,
            "tickDirection": "ZeroPlusTick",
            "lastPrice": price,
            "markPrice": price,
            "indexPrice": price,
            "bid1Price": price,
            "bid1Size": "1",
            "ask1Price": price,
            "ask1Size": "1",
            "volume24h": str(self._volume[symbol]),
            "fundingRate": "0.0001",
        }

    @staticmethod
    def _price_delta(symbol: str, price: str) -> dict[str, Any]:
        return {
            "symbol": symbol,
            "lastPrice": price,
            "markPrice": price,
            "bid1Price": price,
            "ask1Price": price,
        }
