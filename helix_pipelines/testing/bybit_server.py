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
This module is the HTTP side (signatures, faults, routing); the venue's rules are in
`bybit_venue`, the instrument rows in `bybit_instruments`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from helix_pipelines.testing.bybit_records import BybitError
from helix_pipelines.testing.bybit_venue import FakeVenue
from helix_pipelines.testing.loopback import LoopbackFake, LoopbackHandler

DEFAULT_API_KEY = "helixFakeBybitKey01"
DEFAULT_API_SECRET = "helixFakeBybitSecret0123456789abcdef"

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


@dataclass
class _Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    action: str = "send"  # or "drop"
    hold: float = 0.0


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
    """The fake Bybit v5 server. Use as `with FakeBybitServer(...) as server:`; the venue's state
    and what tests script on it are `server.venue` (a FakeVenue), behind its lock, so tests may
    read and change it while requests are in flight."""

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
        self.fault_delay = fault_delay
        self.ratelimit_reset_ms = ratelimit_reset_ms
        self.clock_offset_ms = clock_offset_ms
        """How far the venue's clock runs ahead of this machine's (negative: behind)."""
        self.venue = FakeVenue(
            self._server_ms,
            instruments=instruments,
            prices=prices,
            equity=equity,
            visibility_delay=visibility_delay,
        )
        self._faults: dict[str | None, deque[str]] = {}
        self._records: list[RecordedRequest] = []
        self._lock = self.venue.lock
        self._init_loopback()

    @property
    def endpoint(self) -> str:
        return self.url

    def inject(self, *faults: str, path: str | None = None) -> None:
        """Queue one-shot faults for `path` (or any path); see FAULTS."""
        for fault in faults:
            name = fault.split(":", 1)[0]
            if name not in FAULTS and not name.startswith(("http", "retcode")):
                raise ValueError(f"unknown fault {fault!r}; see FAULTS")
        with self._lock:
            self._faults.setdefault(path, deque()).extend(faults)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

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
            limit_headers = {
                "X-Bapi-Limit": "10",
                "X-Bapi-Limit-Status": "0",
                "X-Bapi-Limit-Reset-Timestamp": str(reset),
            }
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
        envelope = {
            "retCode": ret_code,
            "retMsg": ret_msg,
            "result": result,
            "retExtInfo": {},
            "time": self._server_ms(),
        }
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
        venue = self.venue
        routes = {
            ("GET", SERVER_TIME_PATH): venue.server_time,
            ("GET", INSTRUMENTS_PATH): venue.instruments_info,
            ("GET", TICKERS_PATH): venue.tickers,
            ("POST", ORDER_CREATE_PATH): venue.create_order,
            ("GET", ORDER_REALTIME_PATH): venue.order_list,
            ("GET", ORDER_HISTORY_PATH): venue.order_list,
            ("GET", POSITIONS_PATH): venue.position_list,
            ("POST", SET_LEVERAGE_PATH): venue.set_leverage,
            ("POST", SWITCH_MODE_PATH): venue.switch_mode,
            ("GET", WALLET_BALANCE_PATH): venue.wallet_balance,
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
