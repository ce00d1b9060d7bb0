"""A local fake of the Bybit v5 REST API for linear USDT perpetuals: what Helix's broker calls,
behaving as the real venue is documented and recorded to (docs/real-apis.md).

Why a real HTTP server: the broker talks through a real pybit `HTTP` session, and what matters
(request signing, read timeouts, a venue that accepted an order but never answered) only shows up
over a socket. Point a session at it with `session.endpoint = server.endpoint`.

Like Bybit: HMAC signatures and the recv_window check (10003 / 10004 / 10002, the 10004 answer
echoing the signed string with the key in it); instrument filters (qtyStep, minOrderQty,
maxOrderQty, maxMktOrderQty for market orders, minNotionalValue, tickSize); positionIdx against
each symbol's position mode; unique orderLinkId (110072); "not modified" answers (110043,
110025); switching the mode by coin switches only symbols without positions or open orders and
still answers OK (so a symbol can stay in hedge mode); list calls page with `cursor`
(`/position/list` 20 rows by default, `/market/instruments-info` 500). New orders become visible
to `/order/realtime` and `/order/history` only `visibility_delay` seconds after they are
accepted. Market orders fill at the last price up to the symbol's `liquidity` and end `Filled`,
`PartiallyFilledCanceled` or `Cancelled` (nothing filled), with `cumExecQty` / `avgPrice`.

Faults are queued per path (or for any path) and each is consumed by one request (`FAULTS`).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from helix_pipelines.testing.loopback import LoopbackFake, LoopbackHandler

DEFAULT_API_KEY = "helixFakeBybitKey01"
DEFAULT_API_SECRET = "helixFakeBybitSecret0123456789abcdef"
ONE_WAY, HEDGE = 0, 3

SERVER_TIME_PATH = "/v5/market/time"
INSTRUMENTS_PATH = "/v5/market/instruments-info"
TICKERS_PATH = "/v5/market/tickers"
ORDER_CREATE_PATH = "/v5/order/create"
ORDER_REALTIME_PATH = "/v5/order/realtime"
ORDER_HISTORY_PATH = "/v5/order/history"
POSITIONS_PATH = "/v5/position/list"
SET_LEVERAGE_PATH = "/v5/position/set-leverage"
SWITCH_MODE_PATH = "/v5/position/switch-mode"
WALLET_BALANCE_PATH = "/v5/account/wallet-balance"
PUBLIC_PATHS = frozenset({SERVER_TIME_PATH, INSTRUMENTS_PATH, TICKERS_PATH})

FAULTS = (
    "ok",
    "drop_before",
    "drop_after_accept",
    "timeout_after_accept",
    "timeout_before",
    "ratelimit",
    "retcode:N",
    "retcode_after_accept:N",
    "httpNNN",
)
"""One-shot faults (`inject`):

- `drop_before`: close the connection without acting or answering.
- `drop_after_accept`: act on the request (an order IS created), then close without answering.
- `timeout_after_accept[:s]`: act, then hold the connection `s` seconds (default `fault_delay`)
  and close it: the client times out although the venue has the order.
- `timeout_before[:s]`: hold, then act and answer (a client with a shorter timeout gave up).
- `ratelimit`: retCode 10006 with the X-Bapi-Limit headers; nothing done.
- `retcode:N`: answer retCode N; nothing done.
- `retcode_after_accept:N`: act, then answer retCode N: Bybit's 10000 (server timeout) and
  10016 (server error) on order/create say nothing about whether the order exists.
- `httpNNN`: that HTTP status with a non-JSON body; nothing done.
- `ok`: no fault (for scripts like "first fine, then ...").
"""

OPEN_STATUSES = frozenset({"New", "PartiallyFilled", "Untriggered"})


def make_instrument(
    symbol: str,
    *,
    tick_size: str,
    qty_step: str,
    min_order_qty: str,
    max_order_qty: str,
    max_mkt_order_qty: str | None = None,
    min_notional_value: str = "5",
    base_coin: str | None = None,
    status: str = "Trading",
    contract_type: str = "LinearPerpetual",
    quote_coin: str = "USDT",
) -> dict[str, Any]:
    """A row of `/v5/market/instruments-info` (the fields Helix reads, and their neighbours)."""
    return {
        "symbol": symbol,
        "contractType": contract_type,
        "status": status,
        "baseCoin": base_coin or symbol.removesuffix(quote_coin),
        "quoteCoin": quote_coin,
        "settleCoin": quote_coin,
        "launchTime": "1585526400000",
        "deliveryTime": "0",
        "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
        "priceFilter": {"minPrice": tick_size, "maxPrice": "1999999.80", "tickSize": tick_size},
        "lotSizeFilter": {
            "maxOrderQty": max_order_qty,
            "minOrderQty": min_order_qty,
            "qtyStep": qty_step,
            "maxMktOrderQty": max_mkt_order_qty or max_order_qty,
            "minNotionalValue": min_notional_value,
        },
    }


DEFAULT_INSTRUMENTS: dict[str, dict[str, Any]] = {
    i["symbol"]: i
    for i in (
        make_instrument("BTCUSDT", tick_size="0.10", qty_step="0.001", min_order_qty="0.001",
                        max_order_qty="1190.000", max_mkt_order_qty="119.000"),
        make_instrument("ETHUSDT", tick_size="0.01", qty_step="0.01", min_order_qty="0.01",
                        max_order_qty="7240.00", max_mkt_order_qty="724.00"),
        make_instrument("SOLUSDT", tick_size="0.010", qty_step="0.1", min_order_qty="0.1",
                        max_order_qty="79770.0", max_mkt_order_qty="7977.0"),
        make_instrument("XRPUSDT", tick_size="0.0001", qty_step="1", min_order_qty="1",
                        max_order_qty="3870000", max_mkt_order_qty="387000"),
        make_instrument("DOGEUSDT", tick_size="0.00001", qty_step="1", min_order_qty="1",
                        max_order_qty="12500000", max_mkt_order_qty="1250000"),
        make_instrument("1000PEPEUSDT", tick_size="0.0000001", qty_step="100",
                        min_order_qty="100", max_order_qty="100000000",
                        max_mkt_order_qty="10000000"),
        make_instrument("SHIB1000USDT", tick_size="0.000001", qty_step="10", min_order_qty="10",
                        max_order_qty="50000000", max_mkt_order_qty="5000000"),
    )
}  # fmt: skip
DEFAULT_PRICES: dict[str, str] = {
    "BTCUSDT": "65000.0", "ETHUSDT": "3200.00", "SOLUSDT": "150.000", "XRPUSDT": "0.6000",
    "DOGEUSDT": "0.15000", "1000PEPEUSDT": "0.0190000", "SHIB1000USDT": "0.024000",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    params: dict[str, Any]
    time: float
    """`time.time()` when the request had been read."""
    ret_code: int | None
    """The retCode answered; None when no answer was sent (a dropped connection)."""
    fault: str | None


class BybitError(Exception):
    def __init__(self, ret_code: int, ret_msg: str) -> None:
        super().__init__(ret_msg)
        self.ret_code, self.ret_msg = ret_code, ret_msg


@dataclass
class _Order:
    order_id: str
    link_id: str
    symbol: str
    side: str
    order_type: str
    qty: Decimal
    price: Decimal | None
    position_idx: int
    take_profit: Decimal | None
    stop_loss: Decimal | None
    created_ms: int
    status: str = "New"
    cum_qty: Decimal = Decimal(0)
    cum_value: Decimal = Decimal(0)
    updated_ms: int = 0


@dataclass
class _Position:
    side: str = ""
    size: Decimal = Decimal(0)
    avg_price: Decimal = Decimal(0)
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None


@dataclass
class _Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    action: str = "send"  # or "drop"
    hold: float = 0.0


def _plain(value: Decimal | None) -> str:
    """As Bybit writes numbers: plain digits, the precision they were given in."""
    return "" if value is None else format(value, "f")


def _decimal(params: Mapping[str, Any], name: str, *, required: bool = False) -> Decimal | None:
    raw = params.get(name)
    if raw in (None, ""):
        if required:
            raise BybitError(10001, f"params error: {name} is required")
        return None
    if not isinstance(raw, str) or "e" in raw.lower():
        raise BybitError(10001, f"params error: {name} {raw!r} must be a plain decimal string")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise BybitError(10001, f"params error: {name} {raw!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise BybitError(10001, f"params error: {name} {raw!r} is out of range")
    return value


def _multiple(value: Decimal, step: Decimal) -> bool:
    return value % step == 0


class _Handler(LoopbackHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server dispatches on this name
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802 - http.server dispatches on this name
        self._serve("POST")

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fake: FakeBybitServer = self.server.fake
        reply = fake._handle(method, url.path, url.query, body, dict(self.headers.items()))
        if reply.hold:
            fake._stopping.wait(reply.hold)
        if reply.action == "drop":
            self.close_connection = True
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: `recorded()` is the log tests read."""


class FakeBybitServer(LoopbackFake):
    """The fake venue. Use as `with FakeBybitServer(...) as server:`; all state is behind one lock,
    so tests may read and change it while requests are in flight."""

    handler = _Handler

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        api_secret: str = DEFAULT_API_SECRET,
        instruments: Mapping[str, dict[str, Any]] | None = None,
        prices: Mapping[str, str] | None = None,
        equity: str = "100000",
        visibility_delay: float = 0.0,
        fault_delay: float = 2.0,
        ratelimit_reset_ms: int = 200,
        clock_offset_ms: int = 0,
    ) -> None:
        self.api_key, self.api_secret = api_key, api_secret
        self.instruments: dict[str, dict[str, Any]] = copy.deepcopy(
            dict(instruments or DEFAULT_INSTRUMENTS)
        )
        self._last = {s: Decimal(p) for s, p in (prices or DEFAULT_PRICES).items()}
        self.equity = Decimal(equity)
        self.visibility_delay = visibility_delay
        """Seconds after acceptance before an order shows in the order lists."""
        self.fault_delay = fault_delay
        self.ratelimit_reset_ms = ratelimit_reset_ms
        self.clock_offset_ms = clock_offset_ms
        """How far the venue's clock runs ahead of this machine's (negative: behind)."""
        self.liquidity: dict[str, Decimal] = {}
        """symbol -> the most a market order fills; the rest is cancelled."""
        self._modes = dict.fromkeys(self.instruments, ONE_WAY)
        self._leverage = {s: (Decimal(1), Decimal(1)) for s in self.instruments}
        self._orders: dict[str, _Order] = {}
        self._by_link: dict[str, str] = {}
        self._positions: dict[tuple[str, int], _Position] = {}
        self._faults: dict[str | None, deque[str]] = {}
        self._records: list[RecordedRequest] = []
        self._lock = threading.RLock()
        self._init_loopback()

    @property
    def endpoint(self) -> str:
        return self.url

    # -- what tests script ----------------------------------------------------------------------

    def inject(self, *faults: str, path: str | None = None) -> None:
        for fault in faults:
            name = fault.split(":", 1)[0]
            if name not in FAULTS and not name.startswith(("http", "retcode")):
                raise ValueError(f"unknown fault {fault!r}; see FAULTS")
        with self._lock:
            self._faults.setdefault(path, deque()).extend(faults)

    def set_price(self, symbol: str, price: str | Decimal) -> None:
        with self._lock:
            self._last[symbol] = Decimal(price)

    def set_position_mode(self, mode: int, symbol: str | None = None) -> None:
        with self._lock:
            for s in [symbol] if symbol else list(self._modes):
                self._modes[s] = mode

    def position_mode(self, symbol: str) -> int:
        with self._lock:
            return self._mode(symbol)

    def leverage(self, symbol: str) -> tuple[Decimal, Decimal]:
        with self._lock:
            return self._leverage.get(symbol, (Decimal(1), Decimal(1)))

    def _mode(self, symbol: str) -> int:
        """A symbol listed after start-up has the account's default mode, one-way."""
        return self._modes.setdefault(symbol, ONE_WAY)

    def open_position(self, symbol: str, side: str, size: str, price: str, idx: int = 0) -> None:
        """A position opened elsewhere (by hand on the venue, or by an earlier run)."""
        with self._lock:
            self._positions[symbol, idx] = _Position(side, Decimal(size), Decimal(price))

    def position(self, symbol: str, idx: int = 0) -> dict[str, Any]:
        with self._lock:
            return self._render_position(symbol, idx)

    @property
    def orders(self) -> dict[str, dict[str, Any]]:
        """Every order by orderLinkId, visible or not yet."""
        with self._lock:
            return {o.link_id: self._render_order(o) for o in self._orders.values()}

    def order_count(self, symbol: str | None = None) -> int:
        with self._lock:
            return sum(symbol in (None, o.symbol) for o in self._orders.values())

    def recorded(self, path: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self._records if path in (None, r.path)]

    def ret_codes(self, path: str | None = None) -> list[int | None]:
        return [r.ret_code for r in self.recorded(path)]

    # -- one request ------------------------------------------------------------------------------

    def _handle(
        self, method: str, path: str, query: str, body: bytes, headers: dict[str, str]
    ) -> _Reply:
        arrival = time.time()
        params = self._params(method, query, body)
        with self._lock:
            fault = self._take_fault(path)
        reply, ret_code = self._answer(method, path, query, body, params, headers, fault)
        with self._lock:
            self._records.append(RecordedRequest(method, path, params, arrival, ret_code, fault))
        return reply

    def _answer(
        self,
        method: str,
        path: str,
        query: str,
        body: bytes,
        params: dict[str, Any],
        headers: dict[str, str],
        fault: str | None,
    ) -> tuple[_Reply, int | None]:
        name, _, arg = (fault or "ok").partition(":")
        refused = self._refuse(name, arg)
        if refused is not None:
            return refused
        if name == "timeout_before":
            self._stopping.wait(float(arg or self.fault_delay))
        try:
            with self._lock:
                self._authenticate(method, path, query, body, headers)
                result = self._route(method, path, params)
            ret_code, ret_msg = 0, "OK"
        except BybitError as exc:
            result, ret_code, ret_msg = {}, exc.ret_code, exc.ret_msg
        if name in ("drop_after_accept", "timeout_after_accept"):
            hold = float(arg or self.fault_delay) if name == "timeout_after_accept" else 0.0
            return _Reply(action="drop", hold=hold), None
        if name == "retcode_after_accept":
            message = "Server Timeout" if arg == "10000" else "Server error"
            return self._json(int(arg), message, {}), int(arg)
        return self._json(ret_code, ret_msg, result), ret_code

    def _refuse(self, name: str, arg: str) -> tuple[_Reply, int | None] | None:
        """The answer of a fault that acts on nothing, or None for every other fault."""
        if name == "drop_before":
            return _Reply(action="drop"), None
        if name.startswith("http"):
            return _Reply(status=int(name[4:]), body=b"<html>upstream error</html>"), None
        if name == "ratelimit":
            reset = self._server_ms() + self.ratelimit_reset_ms
            limit_headers = {"X-Bapi-Limit": "10", "X-Bapi-Limit-Status": "0",
                             "X-Bapi-Limit-Reset-Timestamp": str(reset)}  # fmt: skip
            return self._json(10006, "Too many visits!", {}, limit_headers), 10006
        if name == "retcode":
            return self._json(int(arg), "scripted error", {}), int(arg)
        return None

    def _params(self, method: str, query: str, body: bytes) -> dict[str, Any]:
        if method == "GET":
            return dict(parse_qsl(query, keep_blank_values=True))
        try:
            decoded = json.loads(body or b"{}")
        except json.JSONDecodeError:
            return {}
        return decoded if isinstance(decoded, dict) else {}

    def _take_fault(self, path: str) -> str | None:
        for key in (path, None):
            queue = self._faults.get(key)
            if queue:
                return queue.popleft()
        return None

    def _server_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_offset_ms

    def _json(
        self, ret_code: int, ret_msg: str, result: Any, headers: dict[str, str] | None = None
    ) -> _Reply:
        envelope = {"retCode": ret_code, "retMsg": ret_msg, "result": result,
                    "retExtInfo": {}, "time": self._server_ms()}  # fmt: skip
        return _Reply(body=json.dumps(envelope).encode(), headers=headers or {})

    def _authenticate(
        self, method: str, path: str, query: str, body: bytes, headers: dict[str, str]
    ) -> None:
        if path in PUBLIC_PATHS:
            return
        key = headers.get("X-BAPI-API-KEY")
        if key != self.api_key:
            raise BybitError(10003, "API key is invalid.")
        stamp, window = (
            headers.get("X-BAPI-TIMESTAMP", ""),
            headers.get("X-BAPI-RECV-WINDOW", "5000"),
        )
        now = self._server_ms()
        if not stamp.isdigit() or not now - int(window) <= int(stamp) < now + 1000:
            raise BybitError(
                10002,
                f"invalid request, please check your server timestamp or recv_window param. "
                f"req_timestamp[{stamp}],server_timestamp[{now}],recv_window[{window}]",
            )
        signed = ((method == "GET" and query) or body.decode()) if (query or body) else ""
        origin = f"{stamp}{key}{window}{signed}"
        expected = hmac.new(self.api_secret.encode(), origin.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, headers.get("X-BAPI-SIGN", "")):
            raise BybitError(10004, f"error sign! origin_string[{origin}]")

    def _route(self, method: str, path: str, params: dict[str, Any]) -> Any:
        routes = {
            ("GET", SERVER_TIME_PATH): self._h_time,
            ("GET", INSTRUMENTS_PATH): self._h_instruments,
            ("GET", TICKERS_PATH): self._h_tickers,
            ("POST", ORDER_CREATE_PATH): self._h_create,
            ("GET", ORDER_REALTIME_PATH): self._h_orders,
            ("GET", ORDER_HISTORY_PATH): self._h_orders,
            ("GET", POSITIONS_PATH): self._h_positions,
            ("POST", SET_LEVERAGE_PATH): self._h_set_leverage,
            ("POST", SWITCH_MODE_PATH): self._h_switch_mode,
            ("GET", WALLET_BALANCE_PATH): self._h_wallet,
        }
        handler = routes.get((method, path))
        if handler is None:
            raise BybitError(10001, f"the fake does not serve {method} {path}")
        if (
            path not in (SERVER_TIME_PATH, WALLET_BALANCE_PATH)
            and params.get("category") != "linear"
        ):
            raise BybitError(10001, "params error: category must be linear")
        return handler(params)

    # -- handlers ------------------------------------------------------------------------------

    def _h_time(self, params: dict[str, Any]) -> dict[str, Any]:
        now = self._server_ms()
        return {"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}

    def _page(self, rows: list[Any], params: Mapping[str, Any], default: int, maximum: int) -> dict:
        """One page of `rows` and the cursor of the next (Bybit's cursors are opaque strings)."""
        limit = min(int(params.get("limit") or default), maximum)
        start = int(params.get("cursor") or 0)
        end = start + limit
        return {"list": rows[start:end], "nextPageCursor": str(end) if end < len(rows) else ""}

    def _h_instruments(self, params: dict[str, Any]) -> dict[str, Any]:
        rows = [i for s, i in sorted(self.instruments.items()) if params.get("symbol") in (None, s)]
        return {"category": "linear", **self._page(rows, params, 500, 1000)}

    def _h_tickers(self, params: dict[str, Any]) -> dict[str, Any]:
        symbol = self._known(params.get("symbol"))
        last = self._last[symbol]
        return {"category": "linear", "list": [{"symbol": symbol, "lastPrice": _plain(last),
                                                  "markPrice": _plain(last)}]}  # fmt: skip

    def _known(self, symbol: Any) -> str:
        if not isinstance(symbol, str) or symbol not in self.instruments:
            raise BybitError(10001, f"params error: symbol invalid {symbol!r}")
        return symbol

    def _h_create(self, params: dict[str, Any]) -> dict[str, Any]:
        symbol = self._known(params.get("symbol"))
        spec = self.instruments[symbol]
        lot, ticks = spec["lotSizeFilter"], Decimal(spec["priceFilter"]["tickSize"])
        link = str(params.get("orderLinkId") or "")
        if link in self._by_link:
            raise BybitError(110072, "OrderLinkedID is duplicate")
        side, order_type = params.get("side"), params.get("orderType")
        if side not in ("Buy", "Sell") or order_type not in ("Market", "Limit"):
            raise BybitError(10001, "params error: side or orderType invalid")
        qty = _decimal(params, "qty", required=True)
        assert qty is not None
        ceiling = Decimal(lot["maxMktOrderQty" if order_type == "Market" else "maxOrderQty"])
        if not _multiple(qty, Decimal(lot["qtyStep"])) or qty < Decimal(lot["minOrderQty"]):
            raise BybitError(10001, f"Qty invalid: {params['qty']} (qtyStep {lot['qtyStep']})")
        if qty > ceiling:
            raise BybitError(
                10001, f"The number of contracts exceeds maximum limit allowed: {ceiling}"
            )
        price = _decimal(params, "price", required=order_type == "Limit")
        reference = price or self._last[symbol]
        if qty * reference < Decimal(lot["minNotionalValue"]):
            raise BybitError(
                110094, f"Order does not meet minimum order value {lot['minNotionalValue']}USDT"
            )
        idx = int(params.get("positionIdx", 0))
        allowed = (0,) if self._mode(symbol) == ONE_WAY else ((1,) if side == "Buy" else (2,))
        if idx not in allowed:
            raise BybitError(10001, "position idx not match position mode")
        take_profit, stop_loss = _decimal(params, "takeProfit"), _decimal(params, "stopLoss")
        for name, level in (("takeProfit", take_profit), ("stopLoss", stop_loss), ("price", price)):
            if level is not None and not _multiple(level, ticks):
                raise BybitError(10001, f"params error: {name} must be a multiple of {ticks}")
        above, below = (take_profit, stop_loss) if side == "Buy" else (stop_loss, take_profit)
        if (above is not None and above <= reference) or (below is not None and below >= reference):
            raise BybitError(10001, "TakeProfit / StopLoss is on the wrong side of the price")
        now = self._server_ms()
        order = _Order(str(uuid.uuid4()), link, symbol, side, order_type, qty, price, idx,
                       take_profit, stop_loss, now, updated_ms=now)  # fmt: skip
        self._orders[order.order_id] = order
        if link:
            self._by_link[link] = order.order_id
        if order_type == "Market":
            self._fill_market(order)
        return {"orderId": order.order_id, "orderLinkId": link}

    def _fill_market(self, order: _Order) -> None:
        price = self._last[order.symbol]
        filled = min(order.qty, self.liquidity.get(order.symbol, order.qty))
        order.cum_qty, order.cum_value = filled, filled * price
        if filled == order.qty:
            order.status = "Filled"
        else:
            order.status = "PartiallyFilledCanceled" if filled else "Cancelled"
        if filled:
            self._apply_fill(order, filled, price)

    def _apply_fill(self, order: _Order, qty: Decimal, price: Decimal) -> None:
        p = self._positions.setdefault((order.symbol, order.position_idx), _Position())
        if p.size == 0 or p.side == order.side:
            p.avg_price = (p.avg_price * p.size + price * qty) / (p.size + qty)
            p.size, p.side = p.size + qty, order.side
        elif qty <= p.size:
            p.size -= qty
        else:
            p.size, p.side, p.avg_price = qty - p.size, order.side, price
        if order.take_profit is not None or order.stop_loss is not None:
            p.take_profit, p.stop_loss = order.take_profit, order.stop_loss

    def _visible(self, order: _Order) -> bool:
        return self._server_ms() >= order.created_ms + self.visibility_delay * 1000

    def _h_orders(self, params: dict[str, Any]) -> dict[str, Any]:
        if not (params.get("symbol") or params.get("settleCoin")):
            raise BybitError(10001, "params error: symbol or settleCoin is required")
        wanted_id, wanted_link = params.get("orderId"), params.get("orderLinkId")
        rows = [
            self._render_order(o)
            for o in sorted(self._orders.values(), key=lambda o: -o.created_ms)
            if self._visible(o)
            and params.get("symbol") in (None, o.symbol)
            and wanted_id in (None, o.order_id)
            and wanted_link in (None, o.link_id)
        ]
        return {"category": "linear", **self._page(rows, params, 20, 50)}

    def _position_rows(self, symbol: str) -> list[tuple[str, int]]:
        return [(symbol, 0)] if self._mode(symbol) == ONE_WAY else [(symbol, 1), (symbol, 2)]

    def _h_positions(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("symbol"):
            keys = self._position_rows(self._known(params["symbol"]))
        elif params.get("settleCoin") == "USDT":
            keys = [k for k, p in sorted(self._positions.items()) if p.size > 0]
        else:
            raise BybitError(10001, "params error: symbol or settleCoin is required")
        rows = [self._render_position(s, i) for s, i in keys]
        return {"category": "linear", **self._page(rows, params, 20, 200)}

    def _h_set_leverage(self, params: dict[str, Any]) -> dict[str, Any]:
        symbol = self._known(params.get("symbol"))
        buy, sell = (_decimal(params, n, required=True) for n in ("buyLeverage", "sellLeverage"))
        assert buy is not None
        assert sell is not None
        if not (1 <= buy <= 100 and 1 <= sell <= 100):
            raise BybitError(10001, "params error: leverage out of range [1, 100]")
        if self._mode(symbol) == ONE_WAY and buy != sell:
            raise BybitError(10001, "params error: buy leverage must equal sell leverage")
        if self.leverage(symbol) == (buy, sell):
            raise BybitError(110043, "leverage not modified")
        self._leverage[symbol] = (buy, sell)
        return {}

    def _busy(self, symbol: str) -> bool:
        """A position or an open order: Bybit then keeps the symbol's position mode."""
        return any(s == symbol and p.size > 0 for (s, _), p in self._positions.items()) or any(
            o.symbol == symbol and o.status in OPEN_STATUSES for o in self._orders.values()
        )

    def _h_switch_mode(self, params: dict[str, Any]) -> dict[str, Any]:
        mode = params.get("mode")
        if mode not in (ONE_WAY, HEDGE):
            raise BybitError(10001, "params error: mode must be 0 (one-way) or 3 (hedge)")
        if params.get("symbol"):
            symbol = self._known(params["symbol"])
            if self._mode(symbol) == mode:
                raise BybitError(110025, "Position mode is not modified")
            if self._busy(symbol):
                raise BybitError(
                    110024, "You have an existing position, so position mode cannot be switched"
                )
            self._modes[symbol] = mode
            return {}
        if params.get("coin") != "USDT":
            raise BybitError(10001, "params error: symbol or coin is required")
        # By coin: every symbol without a position or open order switches; the others keep
        # their mode, and the answer is OK all the same.
        modes = {s: self._mode(s) for s in self.instruments}
        switchable = [s for s, m in modes.items() if m != mode and not self._busy(s)]
        if not switchable and all(m == mode for m in modes.values()):
            raise BybitError(110025, "Position mode is not modified")
        for symbol in switchable:
            self._modes[symbol] = mode
        return {}

    def _h_wallet(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("accountType") != "UNIFIED":
            raise BybitError(10001, "params error: accountType must be UNIFIED")
        unrealised = sum(
            ((self._last[s] - p.avg_price) * p.size * (1 if p.side == "Buy" else -1))
            for (s, _), p in self._positions.items()
        )
        return {
            "list": [{"accountType": "UNIFIED", "totalEquity": _plain(self.equity + unrealised)}]
        }

    # -- rendering -------------------------------------------------------------------------------

    def _render_order(self, o: _Order) -> dict[str, Any]:
        avg = o.cum_value / o.cum_qty if o.cum_qty else None
        return {
            "orderId": o.order_id, "orderLinkId": o.link_id, "symbol": o.symbol, "side": o.side,
            "orderType": o.order_type, "price": _plain(o.price) or "0", "qty": _plain(o.qty),
            "orderStatus": o.status, "cumExecQty": _plain(o.cum_qty) or "0",
            "cumExecValue": _plain(o.cum_value) or "0", "avgPrice": _plain(avg),
            "leavesQty": _plain(o.qty - o.cum_qty) if o.status in OPEN_STATUSES else "0",
            "positionIdx": o.position_idx, "takeProfit": _plain(o.take_profit),
            "stopLoss": _plain(o.stop_loss), "createdTime": str(o.created_ms),
            "updatedTime": str(o.updated_ms),
        }  # fmt: skip

    def _render_position(self, symbol: str, idx: int) -> dict[str, Any]:
        p = self._positions.get((symbol, idx), _Position())
        buy, sell = self.leverage(symbol)
        return {
            "symbol": symbol, "positionIdx": idx, "side": p.side if p.size else "",
            "size": _plain(p.size) or "0", "avgPrice": _plain(p.avg_price) or "0",
            "leverage": _plain(sell if idx == 2 else buy),
            "takeProfit": _plain(p.take_profit), "stopLoss": _plain(p.stop_loss),
        }  # fmt: skip
