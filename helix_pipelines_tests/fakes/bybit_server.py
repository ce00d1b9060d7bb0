"""A local fake of the Bybit v5 REST API (linear USDT perpetuals) for tests and benchmarks.

Why a real HTTP server: the executor talks to Bybit through a real pybit `HTTP` session, and what
matters (request signing, keep-alive, read timeouts, a venue that accepted an order but never
answered, rate-limit headers) only shows up over a real socket. Point a session at the fake with

    session = HTTP(testnet=True, api_key=server.api_key, api_secret=server.api_secret,
                   timeout=2, max_retries=1, retry_delay=0)
    session.endpoint = server.endpoint

The fake binds 127.0.0.1 on an ephemeral port, serves HTTP/1.1 with keep-alive and exact
Content-Length, and runs in a background thread; all state sits behind one lock, so tests may
read and change it while requests are in flight.

What it enforces, like Bybit: the HMAC-SHA256 signature of private endpoints (10003 wrong key,
10002 timestamp outside `recv_window`, 10004 bad signature, echoing the origin string as Bybit
does), instrument filters on orders (qtyStep, minOrderQty, maxOrderQty / maxMktOrderQty,
minNotionalValue, tickSize, minPrice / maxPrice), positionIdx against the position mode, unique
orderLinkId (110072), reduce-only (110017), available balance (110007), "not modified" answers
for leverage (110043) and position mode (110025). What it simulates: market orders fill at once
at the last price; limit orders rest and fill when `set_price` crosses them; positions keep size,
side, avgPrice, leverage and take-profit / stop-loss, which `set_price` triggers.

Faults are queued per path (or globally) and each is consumed by one request; see `FAULTS`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from helix_pipelines_tests.fakes.loopback import LoopbackFake, LoopbackHandler

DEFAULT_API_KEY = "helixFakeBybitKey01"
DEFAULT_API_SECRET = "helixFakeBybitSecret0123456789abcdef"

ONE_WAY = 0
"""Position mode: one-way (positionIdx 0)."""
HEDGE = 3
"""Position mode: hedge (positionIdx 1 long, 2 short)."""

FAULTS = (
    "timeout_after_accept",
    "timeout_before",
    "drop_after_accept",
    "drop_before",
    "ratelimit",
    "http500",
    "ok",
)
"""One-shot faults, each consumed by one request (see `FakeBybitServer.inject`):

- `timeout_after_accept`: process the request fully (an order IS created), then hold the
  connection for `fault_delay` seconds and close it without answering (the client times out).
- `timeout_before`: hold the request for `fault_delay` seconds, then process and answer it
  normally (a client with a shorter timeout gives up, yet the venue acts on it afterwards).
- `drop_after_accept`: process fully, then close the connection at once without answering.
- `drop_before`: close the connection without processing or answering.
- `ratelimit`: retCode 10006 (HTTP 200) with Bybit's X-Bapi-Limit* headers; nothing processed.
- `http500` (any `httpNNN`): that HTTP status with a non-JSON body; nothing processed.
- `ok`: no fault (lets a script say "first fine, then ...").

The two timeout faults take an optional delay in seconds: `"timeout_before:1.5"`.
"""

RATE_LIMIT_HEADERS = ("X-Bapi-Limit", "X-Bapi-Limit-Status", "X-Bapi-Limit-Reset-Timestamp")

SERVER_TIME_PATH = "/v5/market/time"
INSTRUMENTS_PATH = "/v5/market/instruments-info"
TICKERS_PATH = "/v5/market/tickers"
ORDER_CREATE_PATH = "/v5/order/create"
ORDER_CANCEL_PATH = "/v5/order/cancel"
ORDER_CANCEL_ALL_PATH = "/v5/order/cancel-all"
ORDER_REALTIME_PATH = "/v5/order/realtime"
ORDER_HISTORY_PATH = "/v5/order/history"
EXECUTIONS_PATH = "/v5/execution/list"
POSITIONS_PATH = "/v5/position/list"
SET_LEVERAGE_PATH = "/v5/position/set-leverage"
SWITCH_MODE_PATH = "/v5/position/switch-mode"
TRADING_STOP_PATH = "/v5/position/trading-stop"
WALLET_BALANCE_PATH = "/v5/account/wallet-balance"

PUBLIC_PATHS = frozenset({SERVER_TIME_PATH, INSTRUMENTS_PATH, TICKERS_PATH})

DEFAULT_RATE_LIMITS: dict[str, int] = {
    ORDER_CREATE_PATH: 10,
    ORDER_CANCEL_PATH: 10,
    ORDER_CANCEL_ALL_PATH: 10,
    SET_LEVERAGE_PATH: 10,
    SWITCH_MODE_PATH: 10,
    TRADING_STOP_PATH: 10,
}
"""Requests per second per endpoint shown in X-Bapi-Limit (others: 50), enforced only with
`enforce_rate_limits=True`."""

OPEN_STATUSES = frozenset({"New", "PartiallyFilled", "Untriggered"})
TIME_IN_FORCE = frozenset({"GTC", "IOC", "FOK", "PostOnly"})
_LINK_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
_HTTP_FAULT_RE = re.compile(r"^http([1-5]\d\d)$")


def make_instrument(
    symbol: str,
    *,
    tick_size: str,
    min_price: str,
    max_price: str,
    qty_step: str,
    min_order_qty: str,
    max_order_qty: str,
    max_mkt_order_qty: str | None = None,
    min_notional_value: str = "5",
    max_leverage: str = "100.00",
    leverage_step: str = "0.01",
    base_coin: str | None = None,
) -> dict[str, Any]:
    """A linear perpetual in the shape of `/v5/market/instruments-info` `result.list[i]`."""
    base = base_coin or symbol.removesuffix("USDT")
    exponent = Decimal(tick_size).as_tuple().exponent
    scale = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return {
        "symbol": symbol,
        "contractType": "LinearPerpetual",
        "status": "Trading",
        "baseCoin": base,
        "quoteCoin": "USDT",
        "launchTime": "1585526400000",
        "deliveryTime": "0",
        "deliveryFeeRate": "",
        "priceScale": str(scale),
        "leverageFilter": {
            "minLeverage": "1",
            "maxLeverage": max_leverage,
            "leverageStep": leverage_step,
        },
        "priceFilter": {"minPrice": min_price, "maxPrice": max_price, "tickSize": tick_size},
        "lotSizeFilter": {
            "maxOrderQty": max_order_qty,
            "minOrderQty": min_order_qty,
            "qtyStep": qty_step,
            "postOnlyMaxOrderQty": max_order_qty,
            "maxMktOrderQty": max_mkt_order_qty or max_order_qty,
            "minNotionalValue": min_notional_value,
        },
        "unifiedMarginTrade": True,
        "fundingInterval": 480,
        "settleCoin": "USDT",
        "copyTrading": "both",
        "upperFundingRate": "0.005",
        "lowerFundingRate": "-0.005",
        "isPreListing": False,
        "preListingInfo": None,
    }


DEFAULT_INSTRUMENTS: dict[str, dict[str, Any]] = {
    "BTCUSDT": make_instrument(
        "BTCUSDT",
        tick_size="0.10",
        min_price="0.10",
        max_price="1999999.80",
        qty_step="0.001",
        min_order_qty="0.001",
        max_order_qty="1190.000",
        max_mkt_order_qty="119.000",
    ),
    "ETHUSDT": make_instrument(
        "ETHUSDT",
        tick_size="0.01",
        min_price="0.01",
        max_price="199999.98",
        qty_step="0.01",
        min_order_qty="0.01",
        max_order_qty="7240.00",
        max_mkt_order_qty="724.00",
    ),
    "SOLUSDT": make_instrument(
        "SOLUSDT",
        tick_size="0.010",
        min_price="0.010",
        max_price="19999.980",
        qty_step="0.1",
        min_order_qty="0.1",
        max_order_qty="79770.0",
        max_mkt_order_qty="7977.0",
    ),
    "XRPUSDT": make_instrument(
        "XRPUSDT",
        tick_size="0.0001",
        min_price="0.0001",
        max_price="199.9998",
        qty_step="1",
        min_order_qty="1",
        max_order_qty="1290000",
        max_mkt_order_qty="258000",
        max_leverage="75.00",
    ),
    "DOGEUSDT": make_instrument(
        "DOGEUSDT",
        tick_size="0.00001",
        min_price="0.00001",
        max_price="19.99998",
        qty_step="1",
        min_order_qty="1",
        max_order_qty="14000000",
        max_mkt_order_qty="2800000",
        max_leverage="75.00",
    ),
}

DEFAULT_PRICES: dict[str, str] = {
    "BTCUSDT": "65000.00",
    "ETHUSDT": "3200.00",
    "SOLUSDT": "150.000",
    "XRPUSDT": "0.6000",
    "DOGEUSDT": "0.15000",
}


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the server saw it."""

    method: str
    path: str
    params: dict[str, Any]
    """Query parameters (GET, all strings) or the decoded JSON body (POST)."""
    ret_code: int | None
    """retCode of the answer; None when no Bybit JSON was sent (HTTP error, no answer)."""
    ret_msg: str | None
    http_status: int | None
    """None when the connection was closed or held without an answer."""
    fault: str | None
    time: float
    """`time.time()` when the request had been read."""
    api_key: str | None
    peer_port: int
    """The client's source port: equal ports on successive requests prove keep-alive reuse."""


class BybitError(Exception):
    """A non-zero retCode answer (raised inside the fake, turned into the JSON envelope)."""

    def __init__(self, ret_code: int, ret_msg: str) -> None:
        super().__init__(f"{ret_code}: {ret_msg}")
        self.ret_code = ret_code
        self.ret_msg = ret_msg


class _RateLimitedError(BybitError):
    """10006 raised by the per-second limiter, carrying the rate-limit headers to send."""

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__(10006, "Too many visits!")
        self.headers = headers


@dataclass(frozen=True, slots=True)
class _Spec:
    """Instrument filters as Decimals."""

    tick: Decimal
    min_price: Decimal
    max_price: Decimal
    qty_step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    max_mkt_qty: Decimal
    min_notional: Decimal
    min_leverage: Decimal
    max_leverage: Decimal
    leverage_step: Decimal

    @classmethod
    def of(cls, instrument: Mapping[str, Any]) -> _Spec:
        price, lot, lev = (
            instrument["priceFilter"],
            instrument["lotSizeFilter"],
            instrument["leverageFilter"],
        )
        return cls(
            tick=Decimal(price["tickSize"]),
            min_price=Decimal(price["minPrice"]),
            max_price=Decimal(price["maxPrice"]),
            qty_step=Decimal(lot["qtyStep"]),
            min_qty=Decimal(lot["minOrderQty"]),
            max_qty=Decimal(lot["maxOrderQty"]),
            max_mkt_qty=Decimal(lot.get("maxMktOrderQty") or lot["maxOrderQty"]),
            min_notional=Decimal(lot.get("minNotionalValue") or "0"),
            min_leverage=Decimal(lev.get("minLeverage", "1")),
            max_leverage=Decimal(lev["maxLeverage"]),
            leverage_step=Decimal(lev.get("leverageStep", "0.01")),
        )


@dataclass(slots=True)
class _Order:
    order_id: str
    link_id: str
    symbol: str
    side: str
    order_type: str
    qty: Decimal
    price: Decimal | None
    time_in_force: str
    position_idx: int
    reduce_only: bool
    take_profit: Decimal | None
    stop_loss: Decimal | None
    tpsl_mode: str
    last_price_on_created: Decimal
    created_ms: int
    updated_ms: int
    status: str = "New"
    cum_qty: Decimal = Decimal(0)
    cum_value: Decimal = Decimal(0)
    cum_fee: Decimal = Decimal(0)
    cancel_type: str = "UNKNOWN"
    reject_reason: str = "EC_NoError"
    create_type: str = "CreateByUser"
    stop_order_type: str = ""


@dataclass(slots=True)
class _Position:
    symbol: str
    idx: int
    side: str = ""
    size: Decimal = Decimal(0)
    avg_price: Decimal = Decimal(0)
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    tpsl_mode: str = "Full"
    cum_realised: Decimal = Decimal(0)
    cur_realised: Decimal = Decimal(0)
    created_ms: int = 0
    updated_ms: int = 0
    seq: int = 0


@dataclass(slots=True)
class _Incoming:
    method: str
    path: str
    query: str
    body: bytes
    headers: Mapping[str, str]
    arrival: float
    peer_port: int
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Reply:
    status: int
    body: bytes
    headers: dict[str, str]
    ret_code: int | None = None
    ret_msg: str | None = None


def _now_ms() -> int:
    return int(time.time() * 1000)


def _plain(value: Decimal) -> str:
    """A Decimal as Bybit prints numbers: plain notation, no exponent, no trailing zeros."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def _on_grid(value: Decimal, step: Decimal) -> str:
    """A Decimal printed with the number of decimals of `step` (like Bybit's price/qty scale)."""
    return str(value.quantize(step)) if value == value.quantize(step) else _plain(value)


def _opt(value: Decimal | None, step: Decimal) -> str:
    return "" if value is None else _on_grid(value, step)


def _is_multiple(value: Decimal, step: Decimal) -> bool:
    return step > 0 and value % step == 0


def _fault_name(fault: str) -> tuple[str, float | None]:
    name, _, seconds = fault.partition(":")
    return name, (float(seconds) if seconds else None)


def _check_fault(fault: str) -> None:
    """Fail at injection time, not inside a handler thread, on a misspelt fault."""
    name, seconds = _fault_name(fault)
    if _HTTP_FAULT_RE.match(name) and seconds is None:
        return
    if name in FAULTS and (seconds is None or name.startswith("timeout_")):
        return
    raise ValueError(f"unknown fault {fault!r}; see FAULTS in {__name__}")


class _Handler(LoopbackHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server dispatches on this name
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802 - http.server dispatches on this name
        self._serve("POST")

    def _serve(self, method: str) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        url = urlsplit(self.path)
        incoming = _Incoming(
            method=method,
            path=url.path,
            query=url.query,
            body=body,
            headers={k.lower(): v for k, v in self.headers.items()},
            arrival=time.time(),
            peer_port=int(self.client_address[1]),
        )
        fake._enter()
        try:
            self._serve_with_fault(fake, incoming)
        finally:
            fake._leave()

    def _serve_with_fault(self, fake: FakeBybitServer, incoming: _Incoming) -> None:
        fault = fake._take_fault(incoming.path)
        name, seconds = _fault_name(fault) if fault else ("", None)
        delay = fake.fault_delay if seconds is None else seconds
        if name == "drop_before":
            fake._record(incoming, None, fault)
            self._hang_up()
            return
        if name == "timeout_before":
            fake._pause(delay)
        http_fault = _HTTP_FAULT_RE.match(name)
        if http_fault:
            reply = fake._http_error(incoming, int(http_fault.group(1)), fault)
        elif name == "ratelimit":
            reply = fake._rate_limited(incoming, fault)
        else:
            answered = name not in ("timeout_after_accept", "drop_after_accept")
            reply = fake._process(incoming, fault or None, answered=answered)
            if not answered:
                if name == "timeout_after_accept":
                    fake._pause(delay)
                self._hang_up()
                return
        self._send(reply)

    def _hang_up(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, reply: _Reply) -> None:
        """Send status, headers and body; a client that already gave up just loses it."""
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the fake's record of requests is the log tests read."""


class FakeBybitServer(LoopbackFake):
    """The fake Bybit v5 server. Use as `with FakeBybitServer() as server:`.

    Every knob is a plain attribute (read under the lock on each request) or a helper method.
    Prices, sizes and balances are Decimals internally and strings on the wire, as on Bybit.
    """

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        api_secret: str = DEFAULT_API_SECRET,
        instruments: Mapping[str, Mapping[str, Any]] | None = None,
        prices: Mapping[str, str | Decimal] | None = None,
        equity: str | Decimal = "100000",
        position_mode: int = ONE_WAY,
        leverage: str | Decimal = "10",
        taker_fee_rate: str | Decimal = "0.00055",
        maker_fee_rate: str | Decimal = "0.0002",
        check_margin: bool = True,
        clock_offset_ms: int = 0,
        fault_delay: float = 3.0,
        ratelimit_reset_ms: int = 200,
        enforce_rate_limits: bool = False,
        rate_limits: Mapping[str, int] | None = None,
        faults: Iterable[str] = (),
    ) -> None:
        _check_mode(position_mode)
        self.api_key = api_key
        self.api_secret = api_secret
        self.instruments: dict[str, dict[str, Any]] = {
            s: dict(i) for s, i in (instruments or DEFAULT_INSTRUMENTS).items()
        }
        self._specs = {s: _Spec.of(i) for s, i in self.instruments.items()}
        price_map = DEFAULT_PRICES if prices is None else prices
        self._last: dict[str, Decimal] = {s: Decimal(str(p)) for s, p in price_map.items()}
        self._mark: dict[str, Decimal] = dict(self._last)
        self.wallet_balance = Decimal(str(equity))
        """USDT wallet balance: starts at `equity`, moves with realised PnL and fees."""
        self.taker_fee_rate = Decimal(str(taker_fee_rate))
        self.maker_fee_rate = Decimal(str(maker_fee_rate))
        self.check_margin = check_margin
        """Reject (110007) orders whose initial margin exceeds the available balance."""
        self.clock_offset_ms = clock_offset_ms
        """Added to the server's clock: a skew for 10002 tests."""
        self.fault_delay = fault_delay
        """Seconds the timeout faults hold a request (longer than the client's timeout)."""
        self.ratelimit_reset_ms = ratelimit_reset_ms
        """The `ratelimit` fault's X-Bapi-Limit-Reset-Timestamp is now + this (pybit sleeps
        until then when 10006 is in its retry_codes)."""
        self.enforce_rate_limits = enforce_rate_limits
        self.rate_limits: dict[str, int] = dict(DEFAULT_RATE_LIMITS)
        if rate_limits:
            self.rate_limits.update(rate_limits)
        self._default_mode = position_mode
        self._modes: dict[str, int] = dict.fromkeys(self.instruments, position_mode)
        lev = Decimal(str(leverage))
        self._leverage: dict[str, tuple[Decimal, Decimal]] = dict.fromkeys(
            self.instruments, (lev, lev)
        )
        self._orders: dict[str, _Order] = {}
        self._by_link: dict[str, str] = {}
        self._positions: dict[tuple[str, int], _Position] = {}
        self._fills: list[dict[str, Any]] = []
        self.requests: list[RecordedRequest] = []
        self.faults: deque[str] = deque()
        self.path_faults: dict[str, deque[str]] = {}
        self._arrivals: dict[str, deque[float]] = {}
        self._seq = 0
        self._lock = threading.RLock()
        self._idle = threading.Condition(threading.Lock())
        self._in_flight = 0
        self._init_loopback()
        for fault in faults:
            self.inject(fault)

    # -- lifecycle -------------------------------------------------------------------------

    handler = _Handler

    @property
    def endpoint(self) -> str:
        """`http://127.0.0.1:PORT`, to assign to `pybit.unified_trading.HTTP(...).endpoint`."""
        return self.url

    # -- scripting -------------------------------------------------------------------------

    def inject(self, *faults: str, path: str | None = None) -> None:
        """Queue one-shot faults (see `FAULTS`) for requests to `path`, else for any request.

        A path's queue is served before the global one.
        """
        for fault in faults:
            _check_fault(fault)
        with self._lock:
            if path is None:
                self.faults.extend(faults)
            else:
                self.path_faults.setdefault(path, deque()).extend(faults)

    def pending_faults(self) -> int:
        with self._lock:
            return len(self.faults) + sum(len(q) for q in self.path_faults.values())

    def set_price(
        self, symbol: str, price: str | Decimal, mark_price: str | Decimal | None = None
    ) -> None:
        """Set last (and mark) price; fills crossed resting limits and triggers TP/SL."""
        with self._lock:
            self._spec(symbol)
            self._last[symbol] = Decimal(str(price))
            self._mark[symbol] = Decimal(str(price if mark_price is None else mark_price))
            self._on_price_move(symbol)

    def price(self, symbol: str) -> Decimal:
        with self._lock:
            return self._last[symbol]

    def set_position_mode(self, mode: int, symbol: str | None = None) -> None:
        """Set position mode (0 one-way, 3 hedge) for `symbol`, else for every symbol."""
        _check_mode(mode)
        with self._lock:
            if symbol is None:
                self._default_mode = mode
                self._modes = dict.fromkeys(self.instruments, mode)
            else:
                self._spec(symbol)
                self._modes[symbol] = mode

    def position_mode(self, symbol: str) -> int:
        with self._lock:
            return self._modes[symbol]

    def set_leverage(
        self, symbol: str, buy: str | Decimal, sell: str | Decimal | None = None
    ) -> None:
        with self._lock:
            self._spec(symbol)
            b = Decimal(str(buy))
            self._leverage[symbol] = (b, b if sell is None else Decimal(str(sell)))

    def leverage(self, symbol: str) -> tuple[Decimal, Decimal]:
        """(buyLeverage, sellLeverage) of `symbol`."""
        with self._lock:
            return self._leverage[symbol]

    def set_equity(self, equity: str | Decimal) -> None:
        """Set the USDT wallet balance."""
        with self._lock:
            self.wallet_balance = Decimal(str(equity))

    def add_instrument(
        self, instrument: Mapping[str, Any], price: str | Decimal | None = None
    ) -> None:
        """Add (or replace) an instrument, e.g. one built with `make_instrument`."""
        with self._lock:
            symbol = str(instrument["symbol"])
            self.instruments[symbol] = dict(instrument)
            self._specs[symbol] = _Spec.of(instrument)
            self._modes.setdefault(symbol, self._default_mode)
            self._leverage.setdefault(symbol, (Decimal(10), Decimal(10)))
            if price is not None:
                self._last[symbol] = self._mark[symbol] = Decimal(str(price))

    # -- state snapshots (Bybit-shaped dicts with string values) ---------------------------

    @property
    def orders(self) -> dict[str, dict[str, Any]]:
        """Orders with an orderLinkId, by orderLinkId, as `/v5/order/realtime` shows them."""
        with self._lock:
            return {o.link_id: self._render_order(o) for o in self._orders.values() if o.link_id}

    @property
    def all_orders(self) -> list[dict[str, Any]]:
        """Every order (also those without orderLinkId and TP/SL closes), oldest first."""
        with self._lock:
            return [self._render_order(o) for o in self._orders.values()]

    @property
    def positions(self) -> dict[tuple[str, int], dict[str, Any]]:
        """Non-empty positions by (symbol, positionIdx), as `/v5/position/list` shows them."""
        with self._lock:
            return {
                key: self._render_position(p) for key, p in self._positions.items() if p.size > 0
            }

    def position(self, symbol: str, position_idx: int = 0) -> dict[str, Any]:
        """One position (empty ones too: size "0", side "")."""
        with self._lock:
            self._spec(symbol)
            return self._render_position(self._pos(symbol, position_idx))

    @property
    def fills(self) -> list[dict[str, Any]]:
        """Executions, oldest first, as `/v5/execution/list` shows them."""
        with self._lock:
            return [dict(f) for f in self._fills]

    def order_count(self, symbol: str | None = None, order_link_id: str | None = None) -> int:
        """Orders accepted from clients (TP/SL closes excluded), optionally filtered."""
        with self._lock:
            return sum(
                1
                for o in self._orders.values()
                if o.create_type == "CreateByUser"
                and (symbol is None or o.symbol == symbol)
                and (order_link_id is None or o.link_id == order_link_id)
            )

    def recorded(self, path: str | None = None, method: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (path is None or r.path == path) and (method is None or r.method == method)
            ]

    def ret_codes(self, path: str | None = None) -> list[int | None]:
        return [r.ret_code for r in self.recorded(path)]

    def clear_records(self) -> None:
        with self._lock:
            self.requests.clear()

    def wait_until_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no request is being handled (e.g. a delayed `timeout_before` one)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    # -- request plumbing (handler threads) --------------------------------------------------

    def _enter(self) -> None:
        with self._idle:
            self._in_flight += 1

    def _leave(self) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    def _pause(self, seconds: float) -> None:
        """Sleep in the handler thread; returns early when the server stops."""
        if seconds > 0:
            self._stopping.wait(seconds)

    def _take_fault(self, path: str) -> str | None:
        with self._lock:
            queue = self.path_faults.get(path)
            if queue:
                return queue.popleft()
            if self.faults:
                return self.faults.popleft()
            return None

    def _server_ms(self) -> int:
        return _now_ms() + self.clock_offset_ms

    def _record(
        self,
        incoming: _Incoming,
        reply: _Reply | None,
        fault: str | None,
        *,
        answered: bool = True,
    ) -> None:
        """Record a request. Unanswered ones keep the retCode the server decided on (what the
        venue did) but have no `http_status` (what the client saw)."""
        if not incoming.params:
            try:
                incoming.params = _decode_params(incoming)
            except BybitError:
                incoming.params = {"_raw": incoming.body.decode("utf-8", "replace")}
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    method=incoming.method,
                    path=incoming.path,
                    params=incoming.params,
                    ret_code=None if reply is None else reply.ret_code,
                    ret_msg=None if reply is None else reply.ret_msg,
                    http_status=reply.status if reply is not None and answered else None,
                    fault=fault,
                    time=incoming.arrival,
                    api_key=incoming.headers.get("x-bapi-api-key"),
                    peer_port=incoming.peer_port,
                )
            )

    def _envelope(
        self,
        ret_code: int,
        ret_msg: str,
        result: Any,
        headers: dict[str, str] | None = None,
    ) -> _Reply:
        body = {
            "retCode": ret_code,
            "retMsg": ret_msg,
            "result": {} if result is None else result,
            "retExtInfo": {},
            "time": self._server_ms(),
        }
        out = {"Timenow": str(self._server_ms()), "Ret_code": str(ret_code), **(headers or {})}
        raw = json.dumps(body, separators=(",", ":")).encode()
        return _Reply(200, raw, out, ret_code=ret_code, ret_msg=ret_msg)

    def _http_error(self, incoming: _Incoming, status: int, fault: str | None) -> _Reply:
        reply = _Reply(status, f"<html><body>{status}</body></html>".encode(), {})
        self._record(incoming, reply, fault)
        return reply

    def _limit_headers(self, path: str, used: int, reset_ms: int) -> dict[str, str]:
        limit = self.rate_limits.get(path, 50)
        return {
            "X-Bapi-Limit": str(limit),
            "X-Bapi-Limit-Status": str(max(0, limit - used)),
            "X-Bapi-Limit-Reset-Timestamp": str(reset_ms),
        }

    def _rate_limited(self, incoming: _Incoming, fault: str | None) -> _Reply:
        with self._lock:
            reset = _now_ms() + self.ratelimit_reset_ms
            headers = self._limit_headers(incoming.path, 10**9, reset)
            reply = self._envelope(10006, "Too many visits!", None, headers)
            self._record(incoming, reply, fault)
            return reply

    def _process(self, incoming: _Incoming, fault: str | None, *, answered: bool) -> _Reply:
        """Authenticate, route and run one request under the lock; record it."""
        with self._lock:
            reply = self._process_locked(incoming)
            self._record(incoming, reply, fault, answered=answered)
            return reply

    def _process_locked(self, incoming: _Incoming) -> _Reply:
        handler = _ROUTES.get((incoming.method, incoming.path))
        if handler is None:
            return _Reply(404, b'{"message":"route not found"}', {})
        headers: dict[str, str] = {}
        try:
            incoming.params = _decode_params(incoming)
            if incoming.path not in PUBLIC_PATHS:
                self._authenticate(incoming)
                headers = self._count_rate(incoming.path)
            result = handler(self, incoming.params)
        except _RateLimitedError as err:
            return self._envelope(err.ret_code, err.ret_msg, None, err.headers)
        except BybitError as err:
            return self._envelope(err.ret_code, err.ret_msg, None, headers)
        return self._envelope(0, "OK", result, headers)

    def _authenticate(self, incoming: _Incoming) -> None:
        h = incoming.headers
        key = h.get("x-bapi-api-key")
        if not key or not hmac.compare_digest(key, self.api_key):
            raise BybitError(10003, "API key is invalid.")
        recv_text = h.get("x-bapi-recv-window") or "5000"
        ts_text = h.get("x-bapi-timestamp") or ""
        server_ms = self._server_ms()
        try:
            ts, recv = int(ts_text), int(recv_text)
        except ValueError:
            raise BybitError(10002, "invalid request, please check your timestamp") from None
        if not (server_ms - recv <= ts < server_ms + 1000):
            raise BybitError(
                10002,
                "invalid request, please check your server timestamp or recv_window param. "
                f"req_timestamp[{ts}],server_timestamp[{server_ms}],recv_window[{recv}]",
            )
        payload = incoming.query if incoming.method == "GET" else incoming.body.decode("utf-8")
        origin = f"{ts_text}{key}{recv_text}{payload}"
        expected = hmac.new(self.api_secret.encode(), origin.encode(), hashlib.sha256).hexdigest()
        sign_type = h.get("x-bapi-sign-type", "2")
        if sign_type != "2" or not hmac.compare_digest(expected, h.get("x-bapi-sign") or ""):
            # Bybit echoes the origin string (which holds the API key) in this message.
            raise BybitError(10004, f"error sign! origin_string[{origin}]")

    def _count_rate(self, path: str) -> dict[str, str]:
        now = time.monotonic()
        arrivals = self._arrivals.setdefault(path, deque())
        while arrivals and arrivals[0] <= now - 1.0:
            arrivals.popleft()
        limit = self.rate_limits.get(path, 50)
        first = arrivals[0] if arrivals else now
        reset_ms = _now_ms() + int(max(0.0, first + 1.0 - now) * 1000) + 1
        if self.enforce_rate_limits and len(arrivals) >= limit:
            headers = self._limit_headers(path, limit, reset_ms)
            raise _RateLimitedError(headers)
        arrivals.append(now)
        return self._limit_headers(path, len(arrivals), reset_ms)

    # -- helpers over state (lock held) ------------------------------------------------------

    def _spec(self, symbol: Any) -> _Spec:
        if not isinstance(symbol, str) or symbol not in self._specs:
            raise BybitError(10001, f"params error: symbol invalid {symbol!r}")
        return self._specs[symbol]

    def _pos(self, symbol: str, idx: int) -> _Position:
        key = (symbol, idx)
        if key not in self._positions:
            self._positions[key] = _Position(symbol=symbol, idx=idx)
        return self._positions[key]

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _position_leverage(self, symbol: str, idx: int) -> Decimal:
        buy, sell = self._leverage[symbol]
        return sell if idx == 2 else buy

    def _unrealised(self, p: _Position) -> Decimal:
        if p.size == 0:
            return Decimal(0)
        sign = 1 if p.side == "Buy" else -1
        return (self._mark[p.symbol] - p.avg_price) * p.size * sign

    def _position_im(self) -> Decimal:
        return sum(
            (
                p.size * p.avg_price / self._position_leverage(p.symbol, p.idx)
                for p in self._positions.values()
                if p.size > 0
            ),
            Decimal(0),
        )

    def _order_im(self) -> Decimal:
        total = Decimal(0)
        for o in self._orders.values():
            if o.status in OPEN_STATUSES and not o.reduce_only and o.price is not None:
                lev = self._position_leverage(o.symbol, o.position_idx)
                total += (o.qty - o.cum_qty) * o.price / lev
        return total

    def _equity(self) -> Decimal:
        upl = sum((self._unrealised(p) for p in self._positions.values()), Decimal(0))
        return self.wallet_balance + upl

    def _available(self) -> Decimal:
        return self._equity() - self._position_im() - self._order_im()

    # -- rendering ----------------------------------------------------------------------------

    def _render_order(self, o: _Order) -> dict[str, Any]:
        spec = self._specs[o.symbol]
        leaves = o.qty - o.cum_qty if o.status in OPEN_STATUSES else Decimal(0)
        avg = o.cum_value / o.cum_qty if o.cum_qty > 0 else None
        price = o.price if o.price is not None else Decimal(0)
        return {
            "orderId": o.order_id,
            "orderLinkId": o.link_id,
            "blockTradeId": "",
            "symbol": o.symbol,
            "price": _on_grid(price, spec.tick) if price else "0",
            "qty": _on_grid(o.qty, spec.qty_step),
            "side": o.side,
            "isLeverage": "",
            "positionIdx": o.position_idx,
            "orderStatus": o.status,
            "createType": o.create_type,
            "cancelType": o.cancel_type,
            "rejectReason": o.reject_reason,
            "avgPrice": "" if avg is None else _plain(avg),
            "leavesQty": _on_grid(leaves, spec.qty_step),
            "leavesValue": _plain(leaves * price),
            "cumExecQty": _on_grid(o.cum_qty, spec.qty_step),
            "cumExecValue": _plain(o.cum_value),
            "cumExecFee": _plain(o.cum_fee),
            "timeInForce": o.time_in_force,
            "orderType": o.order_type,
            "stopOrderType": o.stop_order_type,
            "orderIv": "",
            "triggerPrice": "",
            "takeProfit": _opt(o.take_profit, spec.tick),
            "stopLoss": _opt(o.stop_loss, spec.tick),
            "tpTriggerBy": "LastPrice" if o.take_profit else "",
            "slTriggerBy": "LastPrice" if o.stop_loss else "",
            "triggerDirection": 0,
            "triggerBy": "",
            "lastPriceOnCreated": _on_grid(o.last_price_on_created, spec.tick),
            "reduceOnly": o.reduce_only,
            "closeOnTrigger": False,
            "smpType": "None",
            "smpGroup": 0,
            "smpOrderId": "",
            "tpslMode": o.tpsl_mode if (o.take_profit or o.stop_loss) else "",
            "tpLimitPrice": "",
            "slLimitPrice": "",
            "placeType": "",
            "createdTime": str(o.created_ms),
            "updatedTime": str(o.updated_ms),
        }

    def _render_position(self, p: _Position) -> dict[str, Any]:
        spec = self._specs[p.symbol]
        lev = self._position_leverage(p.symbol, p.idx)
        value = p.size * p.avg_price
        empty = p.size == 0
        return {
            "positionIdx": p.idx,
            "riskId": 1,
            "riskLimitValue": "2000000",
            "symbol": p.symbol,
            "side": "" if empty else p.side,
            "size": _on_grid(p.size, spec.qty_step),
            "avgPrice": "0" if empty else _plain(p.avg_price),
            "positionValue": "" if empty else _plain(value),
            "tradeMode": 0,
            "autoAddMargin": 0,
            "positionStatus": "Normal",
            "leverage": _plain(lev),
            "markPrice": _on_grid(self._mark[p.symbol], spec.tick),
            "liqPrice": "",
            "bustPrice": "",
            "positionIM": "0" if empty else _plain(value / lev),
            "positionMM": "0" if empty else _plain(value * Decimal("0.005")),
            "positionBalance": "0" if empty else _plain(value / lev),
            "takeProfit": _opt(p.take_profit, spec.tick),
            "stopLoss": _opt(p.stop_loss, spec.tick),
            "trailingStop": "0",
            "sessionAvgPrice": "",
            "unrealisedPnl": _plain(self._unrealised(p)),
            "curRealisedPnl": _plain(p.cur_realised),
            "cumRealisedPnl": _plain(p.cum_realised),
            "adlRankIndicator": 0 if empty else 2,
            "isReduceOnly": False,
            "tpslMode": p.tpsl_mode,
            "createdTime": str(p.created_ms),
            "updatedTime": str(p.updated_ms),
            "seq": p.seq,
        }

    # -- matching ------------------------------------------------------------------------------

    def _fill(self, o: _Order, qty: Decimal, price: Decimal, *, maker: bool) -> None:
        """Execute `qty` of `o` at `price`: fee, wallet, position, fill record."""
        now = self._server_ms()
        rate = self.maker_fee_rate if maker else self.taker_fee_rate
        value = qty * price
        fee = value * rate
        p = self._pos(o.symbol, o.position_idx)
        closed = self._apply_to_position(p, o, qty, price)
        self.wallet_balance -= fee
        p.cum_realised -= fee
        p.cur_realised -= fee
        o.cum_qty += qty
        o.cum_value += value
        o.cum_fee += fee
        o.updated_ms = now
        o.status = "Filled" if o.cum_qty >= o.qty else "PartiallyFilled"
        spec = self._specs[o.symbol]
        self._fills.append(
            {
                "symbol": o.symbol,
                "orderId": o.order_id,
                "orderLinkId": o.link_id,
                "side": o.side,
                "orderPrice": _on_grid(o.price or price, spec.tick),
                "orderQty": _on_grid(o.qty, spec.qty_step),
                "leavesQty": _on_grid(o.qty - o.cum_qty, spec.qty_step),
                "createType": o.create_type,
                "orderType": o.order_type,
                "stopOrderType": o.stop_order_type,
                "execFee": _plain(fee),
                "execId": str(uuid.uuid4()),
                "execPrice": _on_grid(price, spec.tick),
                "execQty": _on_grid(qty, spec.qty_step),
                "execType": "Trade",
                "execValue": _plain(value),
                "execTime": str(now),
                "feeCurrency": "USDT",
                "isMaker": maker,
                "feeRate": _plain(rate),
                "markPrice": _on_grid(self._mark[o.symbol], spec.tick),
                "closedSize": _on_grid(closed, spec.qty_step),
                "seq": self._next_seq(),
            }
        )

    def _apply_to_position(self, p: _Position, o: _Order, qty: Decimal, price: Decimal) -> Decimal:
        """Update the position with one execution; returns the closed size."""
        now = self._server_ms()
        p.updated_ms = now
        p.seq = self._next_seq()
        closed = Decimal(0)
        if p.size == 0 or p.side == o.side:
            if p.size == 0:
                p.side, p.avg_price, p.created_ms = o.side, price, now
                p.cur_realised = Decimal(0)
            else:
                p.avg_price = (p.avg_price * p.size + price * qty) / (p.size + qty)
            p.size += qty
            self._attach_tpsl(p, o)
            return closed
        closed = min(qty, p.size)
        sign = 1 if p.side == "Buy" else -1
        pnl = (price - p.avg_price) * closed * sign
        self.wallet_balance += pnl
        p.cum_realised += pnl
        p.cur_realised += pnl
        p.size -= closed
        rest = qty - closed
        if p.size == 0:
            p.side, p.avg_price, p.take_profit, p.stop_loss = "", Decimal(0), None, None
            if rest > 0:
                p.side, p.size, p.avg_price = o.side, rest, price
                self._attach_tpsl(p, o)
        return closed

    @staticmethod
    def _attach_tpsl(p: _Position, o: _Order) -> None:
        if o.reduce_only:
            return
        if o.take_profit is not None:
            p.take_profit = o.take_profit
        if o.stop_loss is not None:
            p.stop_loss = o.stop_loss
        if o.take_profit is not None or o.stop_loss is not None:
            p.tpsl_mode = o.tpsl_mode

    def _crosses(self, o: _Order, last: Decimal) -> bool:
        assert o.price is not None
        return o.price >= last if o.side == "Buy" else o.price <= last

    def _reduce_cap(self, o: _Order) -> Decimal | None:
        """How much a reduce-only order may still execute (None if not reduce-only)."""
        if not o.reduce_only:
            return None
        p = self._positions.get((o.symbol, o.position_idx))
        if p is None or p.size == 0 or p.side == o.side:
            return Decimal(0)
        return p.size

    def _execute_now(self, o: _Order, price: Decimal, *, maker: bool) -> None:
        qty = o.qty - o.cum_qty
        cap = self._reduce_cap(o)
        if cap is not None:
            qty = min(qty, cap)
        if qty > 0:
            self._fill(o, qty, price, maker=maker)
        if o.status in OPEN_STATUSES and (o.cum_qty >= o.qty or cap is not None):
            # A reduce-only remainder that can no longer reduce anything is cancelled.
            o.status = "Filled" if o.cum_qty >= o.qty else "Cancelled"
            if o.status == "Cancelled":
                o.cancel_type = "CancelByReduceOnly"

    def _on_price_move(self, symbol: str) -> None:
        last = self._last[symbol]
        for o in list(self._orders.values()):
            if (
                o.symbol == symbol
                and o.status in OPEN_STATUSES
                and o.order_type == "Limit"
                and self._crosses(o, last)
            ):
                assert o.price is not None
                self._execute_now(o, o.price, maker=True)
        for p in list(self._positions.values()):
            if p.symbol == symbol and p.size > 0:
                self._check_tpsl(p, last)

    def _check_tpsl(self, p: _Position, last: Decimal) -> None:
        long = p.side == "Buy"
        hit_tp = p.take_profit is not None and (
            last >= p.take_profit if long else last <= p.take_profit
        )
        hit_sl = p.stop_loss is not None and (last <= p.stop_loss if long else last >= p.stop_loss)
        if not (hit_tp or hit_sl):
            return
        kind = "TakeProfit" if hit_tp else "StopLoss"
        now = self._server_ms()
        close = _Order(
            order_id=str(uuid.uuid4()),
            link_id="",
            symbol=p.symbol,
            side="Sell" if long else "Buy",
            order_type="Market",
            qty=p.size,
            price=None,
            time_in_force="IOC",
            position_idx=p.idx,
            reduce_only=True,
            take_profit=None,
            stop_loss=None,
            tpsl_mode="",
            last_price_on_created=last,
            created_ms=now,
            updated_ms=now,
            create_type=f"CreateBy{kind}",
            stop_order_type=kind,
        )
        self._orders[close.order_id] = close
        self._fill(close, close.qty, last, maker=False)

    # -- endpoint handlers (lock held; params already decoded) -----------------------------

    def _h_server_time(self, params: dict[str, Any]) -> dict[str, Any]:
        ms = self._server_ms()
        return {"timeSecond": str(ms // 1000), "timeNano": str(ms * 1_000_000)}

    def _h_instruments(self, params: dict[str, Any]) -> dict[str, Any]:
        _require_linear(params)
        symbol = params.get("symbol")
        status = params.get("status")
        base = params.get("baseCoin")
        items = [
            json.loads(json.dumps(i))
            for s, i in self.instruments.items()
            if (not symbol or s == symbol)
            and (not status or i.get("status") == status)
            and (not base or i.get("baseCoin") == base)
        ]
        return {"category": "linear" if items else "", "list": items, "nextPageCursor": ""}

    def _h_tickers(self, params: dict[str, Any]) -> dict[str, Any]:
        _require_linear(params)
        symbol = params.get("symbol")
        if symbol and symbol not in self._specs:
            raise BybitError(10001, "Not supported symbols")
        symbols = [symbol] if symbol else [s for s in self.instruments if s in self._last]
        return {"category": "linear", "list": [self._ticker(s) for s in symbols]}

    def _ticker(self, symbol: str) -> dict[str, Any]:
        spec = self._specs[symbol]
        last = self._last[symbol]

        def grid(value: Decimal) -> str:
            return _on_grid(value, spec.tick)

        return {
            "symbol": symbol,
            "lastPrice": grid(last),
            "indexPrice": grid(last),
            "markPrice": grid(self._mark[symbol]),
            "prevPrice24h": grid(last),
            "price24hPcnt": "0",
            "highPrice24h": grid(last),
            "lowPrice24h": grid(last),
            "prevPrice1h": grid(last),
            "openInterest": "0",
            "openInterestValue": "0",
            "turnover24h": "0",
            "volume24h": "0",
            "fundingRate": "0.0001",
            "nextFundingTime": str((self._server_ms() // 28_800_000 + 1) * 28_800_000),
            "predictedDeliveryPrice": "",
            "basisRate": "",
            "deliveryFeeRate": "",
            "deliveryTime": "0",
            "ask1Size": "1",
            "bid1Price": grid(last - spec.tick),
            "ask1Price": grid(last),
            "bid1Size": "1",
            "basis": "",
        }

    def _h_wallet(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("accountType") != "UNIFIED":
            raise BybitError(10001, "accountType only support UNIFIED")
        upl = self._equity() - self.wallet_balance
        equity = self._equity()
        pos_im, ord_im = self._position_im(), self._order_im()
        available = equity - pos_im - ord_im
        coin = {
            "coin": "USDT",
            "equity": _plain(equity),
            "usdValue": _plain(equity),
            "walletBalance": _plain(self.wallet_balance),
            "free": "",
            "locked": "0",
            "spotHedgingQty": "0",
            "borrowAmount": "0",
            "availableToWithdraw": "",
            "availableToBorrow": "",
            "accruedInterest": "0",
            "totalOrderIM": _plain(ord_im),
            "totalPositionIM": _plain(pos_im),
            "totalPositionMM": "0",
            "unrealisedPnl": _plain(upl),
            "cumRealisedPnl": _plain(
                sum((p.cum_realised for p in self._positions.values()), Decimal(0))
            ),
            "bonus": "0",
            "marginCollateral": True,
            "collateralSwitch": True,
        }
        wanted = {c for c in str(params.get("coin") or "").split(",") if c}
        return {
            "list": [
                {
                    "accountType": "UNIFIED",
                    "accountIMRate": _plain(pos_im / equity) if equity > 0 else "0",
                    "accountMMRate": "0",
                    "accountLTV": "0",
                    "totalEquity": _plain(equity),
                    "totalWalletBalance": _plain(self.wallet_balance),
                    "totalMarginBalance": _plain(equity),
                    "totalAvailableBalance": _plain(available),
                    "totalPerpUPL": _plain(upl),
                    "totalInitialMargin": _plain(pos_im + ord_im),
                    "totalMaintenanceMargin": "0",
                    "coin": [coin] if not wanted or "USDT" in wanted else [],
                }
            ]
        }

    def _h_create(self, params: dict[str, Any]) -> dict[str, Any]:
        _require_linear(params)
        symbol = params.get("symbol")
        spec = self._spec(symbol)
        assert isinstance(symbol, str)
        link = _link_id(params.get("orderLinkId"))
        if link and link in self._by_link:
            raise BybitError(110072, "OrderLinkedID is duplicate")
        side = _choice(params, "side", ("Buy", "Sell"))
        order_type = _choice(params, "orderType", ("Market", "Limit"))
        reduce_only = _flag(params, "reduceOnly")
        idx = _position_idx(params)
        self._check_idx(symbol, side, idx, reduce_only)
        tif = params.get("timeInForce") or ("IOC" if order_type == "Market" else "GTC")
        if tif not in TIME_IN_FORCE:
            raise BybitError(10001, f"params error: timeInForce invalid {tif!r}")
        last = self._last[symbol]
        price = None
        if order_type == "Limit":
            price = _decimal(params, "price", required=True)
            assert price is not None
            _check_price(spec, price, "price")
        qty = _decimal(params, "qty", required=True)
        assert qty is not None
        _check_qty(spec, qty, market=order_type == "Market")
        reference = price if price is not None else last
        if not reduce_only and qty * reference < spec.min_notional:
            raise BybitError(
                110094,
                f"Order does not meet minimum order value {_plain(spec.min_notional)}USDT",
            )
        take_profit, stop_loss = _decimal(params, "takeProfit"), _decimal(params, "stopLoss")
        _check_tpsl(spec, side, reference, take_profit, stop_loss)
        tpsl_mode = params.get("tpslMode") or "Full"
        if tpsl_mode not in ("Full", "Partial"):
            raise BybitError(10001, f"params error: tpslMode invalid {tpsl_mode!r}")
        now = self._server_ms()
        order = _Order(
            order_id=str(uuid.uuid4()),
            link_id=link,
            symbol=symbol,
            side=side,
            order_type=order_type,
            qty=qty,
            price=price,
            time_in_force=tif,
            position_idx=idx,
            reduce_only=reduce_only,
            take_profit=take_profit,
            stop_loss=stop_loss,
            tpsl_mode=tpsl_mode,
            last_price_on_created=last,
            created_ms=now,
            updated_ms=now,
        )
        if reduce_only and not self._reduce_cap(order):
            raise BybitError(110017, "current position is zero, cannot fix reduce-only order qty")
        if not reduce_only:
            self._check_margin(order, reference)
        self._orders[order.order_id] = order
        if link:
            self._by_link[link] = order.order_id
        self._match_new(order, last)
        return {"orderId": order.order_id, "orderLinkId": link}

    def _check_idx(self, symbol: str, side: str, idx: int, reduce_only: bool) -> None:
        mode = self._modes[symbol]
        if mode == ONE_WAY:
            ok = idx == 0
        else:
            opening = (side, idx) in (("Buy", 1), ("Sell", 2))
            closing = (side, idx) in (("Sell", 1), ("Buy", 2))
            ok = opening or (closing and reduce_only)
        if not ok:
            raise BybitError(10001, "position idx not match position mode")

    def _check_margin(self, order: _Order, reference: Decimal) -> None:
        if not self.check_margin:
            return
        opening = order.qty
        p = self._positions.get((order.symbol, order.position_idx))
        if p is not None and p.size > 0 and p.side != order.side:
            opening = max(Decimal(0), order.qty - p.size)
        lev = self._position_leverage(order.symbol, order.position_idx)
        needed = opening * reference / lev
        if needed > self._available():
            raise BybitError(110007, "ab not enough for new order")

    def _match_new(self, o: _Order, last: Decimal) -> None:
        if o.order_type == "Market":
            self._execute_now(o, last, maker=False)
            if o.status in OPEN_STATUSES:
                o.status = "Cancelled"
            return
        crosses = self._crosses(o, last)
        if crosses and o.time_in_force == "PostOnly":
            o.status, o.cancel_type = "Cancelled", "CancelByUser"
            o.reject_reason = "EC_PostOnlyWillTakeLiquidity"
        elif crosses:
            self._execute_now(o, last, maker=False)
        elif o.time_in_force in ("IOC", "FOK"):
            o.status, o.reject_reason = "Cancelled", "EC_NoImmediateQtyToFill"

    def _find_order(self, params: Mapping[str, Any]) -> _Order | None:
        order_id, link = params.get("orderId"), params.get("orderLinkId")
        if order_id:
            return self._orders.get(str(order_id))
        if link:
            found = self._by_link.get(str(link))
            return None if found is None else self._orders[found]
        return None

    def _h_cancel(self, params: dict[str, Any]) -> dict[str, Any]:
        _require_linear(params)
        symbol = params.get("symbol")
        self._spec(symbol)
        if not params.get("orderId") and not params.get("orderLinkId"):
            raise BybitError(10001, "params error: orderId or orderLinkId is required")
        o = self._find_order(params)
        if o is None or o.symbol != symbol or o.status not in OPEN_STATUSES:
            raise BybitError(110001, "order not exists or too late to cancel")
        o.status, o.cancel_type, o.updated_ms = "Cancelled", "CancelByUser", self._server_ms()
        return {"orderId": o.order_id, "orderLinkId": o.link_id}

    def _h_cancel_all(self, params: dict[str, Any]) -> dict[str, Any]:
        _require_linear(params)
        symbols = self._symbols_scope(params)
        done = []
        for o in self._orders.values():
            if o.symbol in symbols and o.status in OPEN_STATUSES:
                o.status, o.cancel_type = "Cancelled", "CancelByUser"
                o.updated_ms = self._server_ms()
                done.append({"orderId": o.order_id, "orderLinkId": o.link_id})
        return {"list": done, "success": "1"}

    def _symbols_scope(self, params: Mapping[str, Any]) -> set[str]:
        """Symbols selected by symbol / baseCoin / settleCoin (one is required for linear)."""
        symbol, base, settle = (
            params.get("symbol"),
            params.get("baseCoin"),
            params.get("settleCoin"),
        )
        if symbol:
            self._spec(symbol)
            return {str(symbol)}
        if base:
            return {s for s, i in self.instruments.items() if i.get("baseCoin") == base}
        if settle:
            return {s for s, i in self.instruments.items() if i.get("settleCoin") == settle}
        raise BybitError(10001, "params error: symbol, baseCoin or settleCoin is required")

    def _h_realtime(self, params: dict[str, Any]) -> dict[str, Any]:
        _require_linear(params)
        symbols = self._symbols_scope(params)
        limit = _limit(params, default=20, maximum=50)
        if params.get("orderId") or params.get("orderLinkId"):
            o = self._find_order(params)
            found = [o] if o is not None and o.symbol in symbols else []
        else:
            closed = str(params.get("openOnly", "0")) == "1"
            found = [
                o
                for o in self._orders.values()
                if o.symbol in symbols and (o.status in OPEN_STATUSES) != closed
            ]
        found.sort(key=lambda o: o.created_ms, reverse=True)
        return {
            "category": "linear",
            "list": [self._render_order(o) for o in found[:limit]],
            "nextPageCursor": "",
        }

    def _h_history(self, params: dict[str, Any]) -> dict[str, Any]:
        _require_linear(params)
        limit = _limit(params, default=20, maximum=50)
        symbol, status = params.get("symbol"), params.get("orderStatus")
        if symbol:
            self._spec(symbol)
        if params.get("orderId") or params.get("orderLinkId"):
            o = self._find_order(params)
            candidates = [] if o is None else [o]
        else:
            candidates = list(self._orders.values())
        found = [
            o
            for o in candidates
            if (not symbol or o.symbol == symbol) and (not status or o.status == status)
        ]
        found.sort(key=lambda o: o.created_ms, reverse=True)
        return {
            "category": "linear",
            "list": [self._render_order(o) for o in found[:limit]],
            "nextPageCursor": "",
        }

    def _h_executions(self, params: dict[str, Any]) -> dict[str, Any]:
        _require_linear(params)
        limit = _limit(params, default=50, maximum=100)
        keys = ("symbol", "orderId", "orderLinkId")
        found = [
            f for f in self._fills if all(not params.get(k) or f[k] == params[k] for k in keys)
        ]
        found.reverse()
        return {
            "category": "linear",
            "list": [dict(f) for f in found[:limit]],
            "nextPageCursor": "",
        }

    def _h_positions(self, params: dict[str, Any]) -> dict[str, Any]:
        _require_linear(params)
        symbol, settle = params.get("symbol"), params.get("settleCoin")
        limit = _limit(params, default=20, maximum=200)
        if symbol:
            self._spec(symbol)
            idxs = (0,) if self._modes[symbol] == ONE_WAY else (1, 2)
            rows = [self._render_position(self._pos(symbol, i)) for i in idxs]
        elif settle:
            rows = [
                self._render_position(p)
                for (s, _), p in sorted(self._positions.items())
                if p.size > 0 and self.instruments[s].get("settleCoin") == settle
            ]
        else:
            raise BybitError(10001, "params error: symbol or settleCoin is required")
        return {"category": "linear", "list": rows[:limit], "nextPageCursor": ""}

    def _h_set_leverage(self, params: dict[str, Any]) -> dict[str, Any]:
        _require_linear(params)
        symbol = params.get("symbol")
        spec = self._spec(symbol)
        assert isinstance(symbol, str)
        buy = _decimal(params, "buyLeverage", required=True)
        sell = _decimal(params, "sellLeverage", required=True)
        assert buy is not None
        assert sell is not None
        for value in (buy, sell):
            if not (spec.min_leverage <= value <= spec.max_leverage) or not _is_multiple(
                value, spec.leverage_step
            ):
                raise BybitError(
                    10001,
                    f"params error: leverage {_plain(value)} out of range "
                    f"[{_plain(spec.min_leverage)}, {_plain(spec.max_leverage)}]",
                )
        if self._modes[symbol] == ONE_WAY and buy != sell:
            raise BybitError(10001, "params error: buy leverage must equal sell leverage")
        if self._leverage[symbol] == (buy, sell):
            raise BybitError(110043, "leverage not modified")
        self._leverage[symbol] = (buy, sell)
        return {}

    def _h_switch_mode(self, params: dict[str, Any]) -> dict[str, Any]:
        _require_linear(params)
        mode = params.get("mode")
        if isinstance(mode, bool) or not isinstance(mode, int) or mode not in (ONE_WAY, HEDGE):
            raise BybitError(10001, "params error: mode must be 0 (one-way) or 3 (hedge)")
        symbol, coin = params.get("symbol"), params.get("coin")
        if symbol:
            self._spec(symbol)
            symbols = [str(symbol)]
        elif coin:
            symbols = [s for s, i in self.instruments.items() if i.get("settleCoin") == coin]
        else:
            raise BybitError(10001, "params error: symbol or coin is required")
        if all(self._modes[s] == mode for s in symbols):
            raise BybitError(110025, "Position mode is not modified")
        for s in symbols:
            if any(p.symbol == s and p.size > 0 for p in self._positions.values()):
                raise BybitError(
                    110024, "You have an existing position, so position mode cannot be switched"
                )
            if any(o.symbol == s and o.status in OPEN_STATUSES for o in self._orders.values()):
                raise BybitError(
                    110024, "You have open orders, so position mode cannot be switched"
                )
        for s in symbols:
            self._modes[s] = mode
            if mode == ONE_WAY:
                b, _ = self._leverage[s]
                self._leverage[s] = (b, b)
        return {}

    def _h_trading_stop(self, params: dict[str, Any]) -> dict[str, Any]:
        _require_linear(params)
        symbol = params.get("symbol")
        spec = self._spec(symbol)
        assert isinstance(symbol, str)
        idx = _position_idx(params)
        expected = (0,) if self._modes[symbol] == ONE_WAY else (1, 2)
        if idx not in expected:
            raise BybitError(10001, "position idx not match position mode")
        p = self._positions.get((symbol, idx))
        if p is None or p.size == 0:
            raise BybitError(10001, "can not set tp/sl/ts for zero position")
        take_profit, stop_loss = (
            _decimal(params, "takeProfit", zero_ok=True),
            _decimal(params, "stopLoss", zero_ok=True),
        )
        _check_tpsl(
            spec,
            p.side,
            self._last[symbol],
            take_profit or None,
            stop_loss or None,
        )
        if take_profit is not None:
            p.take_profit = take_profit or None
        if stop_loss is not None:
            p.stop_loss = stop_loss or None
        p.tpsl_mode = params.get("tpslMode") or p.tpsl_mode
        p.updated_ms = self._server_ms()
        return {}


def _decode_params(incoming: _Incoming) -> dict[str, Any]:
    if incoming.method == "GET":
        return dict(parse_qsl(incoming.query, keep_blank_values=True))
    if not incoming.body:
        return {}
    try:
        decoded = json.loads(incoming.body)
    except (ValueError, UnicodeDecodeError):
        raise BybitError(10001, "params error: request body is not valid JSON") from None
    if not isinstance(decoded, dict):
        raise BybitError(10001, "params error: request body must be a JSON object")
    return decoded


def _check_mode(mode: int) -> None:
    if mode not in (ONE_WAY, HEDGE):
        raise ValueError(f"position mode must be 0 (one-way) or 3 (hedge), got {mode!r}")


def _require_linear(params: Mapping[str, Any]) -> None:
    category = params.get("category")
    if category != "linear":
        raise BybitError(10001, f"params error: category {category!r} not supported by the fake")


def _choice(params: Mapping[str, Any], name: str, allowed: tuple[str, ...]) -> str:
    value = params.get(name)
    if value not in allowed:
        raise BybitError(10001, f"params error: {name} invalid {value!r}")
    return str(value)


def _flag(params: Mapping[str, Any], name: str) -> bool:
    value = params.get(name, False)
    if not isinstance(value, bool):
        raise BybitError(10001, f"params error: {name} must be a boolean")
    return value


def _position_idx(params: Mapping[str, Any]) -> int:
    value = params.get("positionIdx", 0)
    if isinstance(value, bool) or not isinstance(value, int) or value not in (0, 1, 2):
        raise BybitError(10001, f"params error: positionIdx invalid {value!r}")
    return value


def _link_id(value: Any) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or not _LINK_ID_RE.match(value):
        raise BybitError(
            10001, "params error: orderLinkId must be 1-36 characters of [A-Za-z0-9_-]"
        )
    return value


def _decimal(
    params: Mapping[str, Any], name: str, *, required: bool = False, zero_ok: bool = False
) -> Decimal | None:
    """A positive decimal sent as a string (as pybit sends qty/price/TP/SL)."""
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise BybitError(10001, f"params error: {name} is required")
        return None
    if not isinstance(value, str):
        raise BybitError(10001, f"params error: {name} must be a string")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise BybitError(10001, f"params error: {name} invalid {value!r}") from None
    if not number.is_finite() or number < 0 or (number == 0 and not zero_ok):
        raise BybitError(10001, f"params error: {name} invalid {value!r}")
    return number


def _limit(params: Mapping[str, Any], *, default: int, maximum: int) -> int:
    raw = params.get("limit")
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise BybitError(10001, f"params error: limit invalid {raw!r}") from None
    if not 1 <= value <= maximum:
        raise BybitError(10001, f"params error: limit must be in [1, {maximum}]")
    return value


def _check_price(spec: _Spec, price: Decimal, name: str) -> None:
    if not _is_multiple(price, spec.tick):
        raise BybitError(
            10001,
            f"params error: {name} {_plain(price)} is not a multiple of tickSize "
            f"{_plain(spec.tick)}",
        )
    if not spec.min_price <= price <= spec.max_price:
        raise BybitError(
            10001,
            f"params error: {name} {_plain(price)} outside [{_plain(spec.min_price)}, "
            f"{_plain(spec.max_price)}]",
        )


def _check_qty(spec: _Spec, qty: Decimal, *, market: bool) -> None:
    if not _is_multiple(qty, spec.qty_step):
        raise BybitError(
            10001,
            f"params error: Qty invalid: {_plain(qty)} is not a multiple of qtyStep "
            f"{_plain(spec.qty_step)}",
        )
    if qty < spec.min_qty:
        raise BybitError(10001, "The number of contracts exceeds minimum limit allowed")
    if qty > (spec.max_mkt_qty if market else spec.max_qty):
        raise BybitError(10001, "The number of contracts exceeds maximum limit allowed")


def _check_tpsl(
    spec: _Spec,
    side: str,
    base: Decimal,
    take_profit: Decimal | None,
    stop_loss: Decimal | None,
) -> None:
    long = side == "Buy"
    if take_profit is not None:
        _check_price(spec, take_profit, "takeProfit")
        if (take_profit <= base) if long else (take_profit >= base):
            side_word = "higher" if long else "lower"
            raise BybitError(
                10001,
                f"TakeProfit:{_plain(take_profit)} set for {side} position should be "
                f"{side_word} than base_price:{_plain(base)}",
            )
    if stop_loss is not None:
        _check_price(spec, stop_loss, "stopLoss")
        if (stop_loss >= base) if long else (stop_loss <= base):
            side_word = "lower" if long else "higher"
            raise BybitError(
                10001,
                f"StopLoss:{_plain(stop_loss)} set for {side} position should be "
                f"{side_word} than base_price:{_plain(base)}",
            )


_ROUTES = {
    ("GET", SERVER_TIME_PATH): FakeBybitServer._h_server_time,
    ("GET", INSTRUMENTS_PATH): FakeBybitServer._h_instruments,
    ("GET", TICKERS_PATH): FakeBybitServer._h_tickers,
    ("GET", WALLET_BALANCE_PATH): FakeBybitServer._h_wallet,
    ("POST", ORDER_CREATE_PATH): FakeBybitServer._h_create,
    ("POST", ORDER_CANCEL_PATH): FakeBybitServer._h_cancel,
    ("POST", ORDER_CANCEL_ALL_PATH): FakeBybitServer._h_cancel_all,
    ("GET", ORDER_REALTIME_PATH): FakeBybitServer._h_realtime,
    ("GET", ORDER_HISTORY_PATH): FakeBybitServer._h_history,
    ("GET", EXECUTIONS_PATH): FakeBybitServer._h_executions,
    ("GET", POSITIONS_PATH): FakeBybitServer._h_positions,
    ("POST", SET_LEVERAGE_PATH): FakeBybitServer._h_set_leverage,
    ("POST", SWITCH_MODE_PATH): FakeBybitServer._h_switch_mode,
    ("POST", TRADING_STOP_PATH): FakeBybitServer._h_trading_stop,
}
