"""A local fake of the CoinGlass v4 HTTP API for tests and benchmarks (stdlib + orjson only).

Why a real HTTP server instead of an httpx mock transport: the client's behaviour that matters
(keep-alive reuse, timeouts, connection resets, truncated bodies, Retry-After, pacing under a
per-minute budget measured at the *server*) only shows up over a real socket. The fake binds
127.0.0.1 on an ephemeral port, serves HTTP/1.1 with keep-alive and exact Content-Length, and runs
in a background thread so async client code can talk to it from the test's event loop.

What it enforces, like CoinGlass: the `CG-API-KEY` header; a per-key request budget over a sliding
window counted by arrival time (429 + Retry-After when exceeded, `API-KEY-MAX-LIMIT` and
`API-KEY-USE-LIMIT` on every response); required query parameters (400); unknown paths (404).
What it does like the real service (docs/real-apis.md): young coins (`history_days`) answer HTTP 200
`{"code":"500","msg":"Server Error"}` on every range longer than their history, every time;
Model 2 on 180d and 1y comes in the legacy key set with `precision`, `rangeLow`, `rangeHigh`
and `instrument` and no `update_time`, its first x columns empty; Model 3 has more x columns
than candles. What it adds for tests: latency injection, scripted faults (globally, per path, per
symbol, or persistently per symbol), and a record of every request and of every heatmap body it
served, so a test can compare what the pipeline stored with what the "API" actually sent.

Every knob is a plain attribute that tests may change while the server runs; the handler reads
them under the server's lock on each request.
"""

from __future__ import annotations

import hashlib
import math
import random
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import orjson

from helix_pipelines.testing.loopback import LoopbackFake, LoopbackHandler

PayloadFactory = Callable[[str, dict[str, str]], bytes]
"""Builds the raw body of one heatmap response from its path and query parameters."""

ServedKey = tuple[str, frozenset[tuple[str, str]]]
"""How served heatmap bodies are keyed: the path and the query as a frozen set of pairs."""

DEFAULT_API_KEY = "test-cg-key-0123456789abcdef"

SUPPORTED_COINS_PATH = "/api/futures/supported-coins"
SUPPORTED_EXCHANGE_PAIRS_PATH = "/api/futures/supported-exchange-pairs"
PAIR_HEATMAP_PREFIX = "/api/futures/liquidation/heatmap/model"
COIN_HEATMAP_PREFIX = "/api/futures/liquidation/aggregated-heatmap/model"

RANGE_SECONDS: dict[str, int] = {
    "12h": 12 * 3600,
    "24h": 24 * 3600,
    "3d": 3 * 86400,
    "7d": 7 * 86400,
    "30d": 30 * 86400,
    "90d": 90 * 86400,
    "180d": 180 * 86400,
    "1y": 365 * 86400,
}
"""The ranges CoinGlass accepts; anything else is a 400 (kept here so the fake stays standalone)."""

DEFAULT_COINS: tuple[str, ...] = ("BTC", "ETH", "SOL", "XRP", "DOGE")

DEFAULT_EXCHANGE_PAIRS: dict[str, list[dict[str, str]]] = {
    "Binance": [
        {"instrument_id": "BTCUSDT", "base_asset": "BTC", "quote_asset": "USDT"},
        {"instrument_id": "ETHUSDT", "base_asset": "ETH", "quote_asset": "USDT"},
        {"instrument_id": "SOLUSDT", "base_asset": "SOL", "quote_asset": "USDT"},
    ],
    "Bybit": [
        {"instrument_id": "BTCUSDT", "base_asset": "BTC", "quote_asset": "USDT"},
        {"instrument_id": "ETHUSDT", "base_asset": "ETH", "quote_asset": "USDT"},
    ],
    "OKX": [
        {"instrument_id": "BTC-USDT-SWAP", "base_asset": "BTC", "quote_asset": "USDT"},
    ],
}

_BASE_PRICES: dict[str, float] = {"BTC": 65000.0, "ETH": 3200.0, "SOL": 150.0, "XRP": 0.6}
_END_TS = 1_750_000_000
"""Last candle's timestamp (seconds) in default payloads: fixed so payloads are deterministic."""

NO_DATA_BODY = b'{"code":"500","msg":"Server Error"}'
"""What CoinGlass answers (HTTP 200) for a range longer than a young coin's history."""

LEGACY_KEY_SET = {(2, "180d"), (2, "1y")}
"""Model 2 on these ranges answers with `y` / `liq` / `prices` and the legacy extra keys."""
LEGACY_FIRST_COLUMN = 5
"""The legacy payload's first x column: the leading columns are empty (as recorded)."""
MODEL3_COLUMNS_PER_CANDLE = 2
"""Model 3's x axis is this many times the candle list (111,476 cells / 396 levels > 144)."""

FAULT_KINDS = ("timeout", "reset", "truncate", "ok")
"""Non-numeric faults. Also accepted: any HTTP status ("500", "429", "429:3" with Retry-After 3)
and "code:<c>" (HTTP 200 whose body carries `code` <c>). "ok" consumes a slot without a fault, so
a script can say "first fine, then 500"."""


def default_heatmap_payload(
    path: str, params: Mapping[str, str], *, levels: int = 24, candles: int = 36
) -> bytes:
    """A small, valid, deterministic heatmap body for one request, shaped like the real ones:
    the legacy Model 2 key set on 180d / 1y (extra keys, leading empty columns, no
    `update_time`, candle times in milliseconds), and a Model 3 x axis wider than its candles.

    Deterministic (seeded from path and query, never from wall time) so a test can rebuild the
    expected body, and so two fetches of the same heatmap are byte-identical.
    """
    seed_text = repr((path, sorted(params.items()))).encode()
    seed = int.from_bytes(hashlib.blake2b(seed_text, digest_size=8).digest(), "big")
    rng = random.Random(seed)
    symbol = params.get("symbol", "BTC")
    model = int(path[-1]) if path[-1].isdigit() else 1
    legacy = (model, params.get("range")) in LEGACY_KEY_SET
    base = next((p for coin, p in _BASE_PRICES.items() if symbol.startswith(coin)), 10.0)
    base *= rng.uniform(0.95, 1.05)
    step = base * 0.004
    y_axis = [round(base + (i - levels // 2) * step, 6) for i in range(levels)]
    interval = max(60, RANGE_SECONDS.get(params.get("range", "24h"), 86400) // candles)
    end = _END_TS - _END_TS % interval
    candlesticks: list[list[Any]] = []
    price = base
    for i in range(candles):
        open_ = price
        close = open_ * rng.uniform(0.995, 1.005)
        high = max(open_, close) * rng.uniform(1.0, 1.003)
        low = min(open_, close) * rng.uniform(0.997, 1.0)
        volume = rng.uniform(1e6, 5e8)
        ts = end - (candles - 1 - i) * interval
        candlesticks.append(
            [ts, f"{open_:.4f}", f"{high:.4f}", f"{low:.4f}", f"{close:.4f}", f"{volume:.2f}"]
        )
        price = close
    columns = candles * (MODEL3_COLUMNS_PER_CANDLE if model == 3 else 1)
    first_column = LEGACY_FIRST_COLUMN if legacy else 0
    cells = [
        [x, y, round(rng.uniform(1e3, 5e7), 2)]
        for x in range(first_column, columns)
        for y in range(levels)
        if rng.random() < 0.25
    ]
    if legacy:
        # The unit inside `prices` was never recorded; milliseconds here, so the detection by
        # magnitude is exercised end to end (the v4 key set keeps documented seconds).
        prices = [[c[0] * 1000, *c[1:]] for c in candlesticks]
        data: dict[str, Any] = {
            "y": y_axis, "liq": cells, "prices": prices, "precision": 2,
            "rangeLow": y_axis[0], "rangeHigh": y_axis[-1],
            "instrument": {"exName": "ALL", "symbol": symbol},
        }  # fmt: skip
    else:
        data = {
            "y_axis": y_axis,
            "liquidation_leverage_data": cells,
            "price_candlesticks": candlesticks,
            "update_time": end * 1000,
        }
    return orjson.dumps({"code": "0", "msg": "success", "data": data})


def served_key(path: str, params: Mapping[str, str]) -> ServedKey:
    """The key under which the fake records a served heatmap body."""
    return (path, frozenset(params.items()))


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the server saw it. `status` is None when no response was sent."""

    path: str
    params: dict[str, str]
    arrival: float
    """`time.monotonic()` when the request line and headers had been read."""
    status: int | None
    fault: str | None
    key_valid: bool
    retry_after: int | None
    """The Retry-After header sent with a 429, in seconds."""
    used_in_window: int
    peer_port: int
    """The client's source port: equal ports on successive requests prove keep-alive reuse."""


Action = Literal["send", "reset", "timeout", "truncate"]


@dataclass(slots=True)
class _Reply:
    status: int
    body: bytes
    headers: dict[str, str]
    action: Action = "send"
    fault: str | None = None
    retry_after: int | None = None


class _Handler(LoopbackHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server dispatches on this name
        arrival = time.monotonic()
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        key = self.headers.get("CG-API-KEY")
        fake = self.server.fake
        reply = fake._decide(url.path, params, key, arrival, int(self.client_address[1]))
        fake._pause(fake._latency())
        self._perform(reply)

    def do_POST(self) -> None:  # noqa: N802 - http.server dispatches on this name
        self._send(405, orjson.dumps({"code": "405", "msg": "method not allowed"}), {})

    def _perform(self, reply: _Reply) -> None:
        fake = self.server.fake
        if reply.action == "reset":
            self.close_connection = True
            # Linger 0: closing sends RST instead of FIN, like a dropped upstream connection.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            return
        if reply.action == "timeout":
            fake._pause(fake.timeout_fault_seconds)
            self.close_connection = True
            return
        if reply.action == "truncate":
            self.close_connection = True
            cut = reply.body[: max(1, len(reply.body) // 2)]
            self._send(reply.status, reply.body, reply.headers, write=cut)
            return
        self._send(reply.status, reply.body, reply.headers)

    def _send(
        self, status: int, body: bytes, headers: Mapping[str, str], *, write: bytes | None = None
    ) -> None:
        """Send status, headers and body; Content-Length always states the full body."""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(body if write is None else write)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the fake's record of requests is the log tests read."""


class FakeCoinGlassServer(LoopbackFake):
    """The fake CoinGlass v4 server. Use as `with FakeCoinGlassServer(...) as server:`.

    `limit_per_minute` is the budget per `window_seconds` (60 by default, like CoinGlass; tests
    shrink the window to stay fast). Only admitted requests count toward the budget: a request
    refused with 429 does not, so a client that backs off correctly always recovers.
    """

    def __init__(
        self,
        *,
        api_key: str | Collection[str] = DEFAULT_API_KEY,
        limit_per_minute: int | None = None,
        window_seconds: float = 60.0,
        min_latency: float = 0.0,
        max_latency: float = 0.0,
        faults: Iterable[str] = (),
        supported_coins: Iterable[str] = DEFAULT_COINS,
        exchange_pairs: Mapping[str, list[dict[str, str]]] | None = None,
        payload_factory: PayloadFactory = default_heatmap_payload,
        timeout_fault_seconds: float = 10.0,
        scripted_retry_after: int = 1,
        echo_key_in_errors: bool = True,
        validate_symbols: bool = False,
        record_bodies: bool = True,
        history_days: Mapping[str, float] | None = None,
        seed: int = 0,
    ) -> None:
        self.api_keys: frozenset[str] = (
            frozenset([api_key]) if isinstance(api_key, str) else frozenset(api_key)
        )
        self.limit_per_minute = limit_per_minute
        self.window_seconds = window_seconds
        self.min_latency = min_latency
        self.max_latency = max_latency
        self.supported_coins: list[str] = list(supported_coins)
        self.exchange_pairs: dict[str, list[dict[str, str]]] = dict(
            DEFAULT_EXCHANGE_PAIRS if exchange_pairs is None else exchange_pairs
        )
        self.payload_factory = payload_factory
        self.timeout_fault_seconds = timeout_fault_seconds
        self.scripted_retry_after = scripted_retry_after
        self.echo_key_in_errors = echo_key_in_errors
        """Echo the received key in error messages, like careless APIs do: tests of redaction."""
        self.validate_symbols = validate_symbols
        """Reject (400) symbols and exchanges that are not in the configured universe."""
        self.record_bodies = record_bodies
        self.history_days: dict[str, float] = dict(history_days or {})
        """symbol -> days of history: longer ranges answer NO_DATA_BODY, as for young coins."""
        self.faults: deque[str] = deque()
        self.path_faults: dict[str, deque[str]] = {}
        self.symbol_faults: dict[str, deque[str]] = {}
        self.persistent_symbol_faults: dict[str, str] = {}
        """symbol -> fault applied to every request for that symbol until removed."""
        self.requests: list[RecordedRequest] = []
        self.served: dict[ServedKey, bytes] = {}
        """Last complete heatmap body served per (path, params), including error-code bodies."""
        self._arrivals: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._init_loopback()
        for fault in faults:
            self.inject(fault)

    # -- lifecycle -------------------------------------------------------------------------

    handler = _Handler

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`, the `base_url` of a CoinGlassClient."""
        return self.url

    # -- scripting -------------------------------------------------------------------------

    def inject(self, *faults: str, path: str | None = None, symbol: str | None = None) -> None:
        """Queue faults, each consumed by one request: of `symbol`, else of `path`, else any.

        A symbol's queue is served before its path's queue, which is served before the global one.
        """
        for fault in faults:
            _check_fault(fault)
        with self._lock:
            if symbol is not None:
                self.symbol_faults.setdefault(symbol, deque()).extend(faults)
            elif path is not None:
                self.path_faults.setdefault(path, deque()).extend(faults)
            else:
                self.faults.extend(faults)

    def fail_symbol(self, symbol: str, fault: str | None) -> None:
        """Apply `fault` to every request for `symbol` (None to heal it)."""
        if fault is not None:
            _check_fault(fault)
        with self._lock:
            if fault is None:
                self.persistent_symbol_faults.pop(symbol, None)
            else:
                self.persistent_symbol_faults[symbol] = fault

    def pending_faults(self) -> int:
        """Scripted one-shot faults not yet consumed (a test's script should end at 0)."""
        with self._lock:
            queues = [self.faults, *self.path_faults.values(), *self.symbol_faults.values()]
            return sum(len(q) for q in queues)

    # -- records ---------------------------------------------------------------------------

    def recorded(self, path: str | None = None) -> list[RecordedRequest]:
        """A snapshot of recorded requests, optionally only those for `path`."""
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def statuses(self, path: str | None = None) -> list[int | None]:
        return [r.status for r in self.recorded(path)]

    def served_body(self, path: str, params: Mapping[str, str]) -> bytes:
        with self._lock:
            return self.served[served_key(path, params)]

    def clear_records(self) -> None:
        with self._lock:
            self.requests.clear()
            self.served.clear()

    def used_in_window(self, key: str | None = None) -> int:
        """Admitted requests of `key` (default: the only configured key) in the current window."""
        if key is None:
            key = next(iter(self.api_keys))
        with self._lock:
            return self._count_window(key, time.monotonic())

    # -- request handling (called from handler threads) -------------------------------------

    def _latency(self) -> float:
        with self._lock:
            low, high = self.min_latency, self.max_latency
            return self._rng.uniform(low, high) if high > 0 else 0.0

    def _pause(self, seconds: float) -> None:
        """Sleep in the handler thread; returns early when the server stops."""
        if seconds > 0:
            self._stopping.wait(seconds)

    def _count_window(self, key: str, now: float) -> int:
        arrivals = self._arrivals.setdefault(key, deque())
        horizon = now - self.window_seconds
        while arrivals and arrivals[0] <= horizon:
            arrivals.popleft()
        return len(arrivals)

    def _limit_headers(self, used: int) -> dict[str, str]:
        """Usage always; the limit only when there is one (an unlimited key has no number)."""
        headers = {"API-KEY-USE-LIMIT": str(used)}
        if self.limit_per_minute is not None:
            headers["API-KEY-MAX-LIMIT"] = str(self.limit_per_minute)
        return headers

    def _decide(
        self, path: str, params: dict[str, str], key: str | None, arrival: float, peer_port: int
    ) -> _Reply:
        """Everything about one request except the I/O, under the lock so knobs stay consistent."""
        with self._lock:
            key_valid = key is not None and key in self.api_keys
            reply = self._decide_locked(path, params, key, key_valid, arrival)
            served = reply.action == "send" and reply.status == 200
            if served and self.record_bodies and _is_heatmap(path):
                self.served[served_key(path, params)] = reply.body
            self.requests.append(
                RecordedRequest(
                    path=path,
                    params=dict(params),
                    arrival=arrival,
                    status=reply.status if reply.action in ("send", "truncate") else None,
                    fault=reply.fault,
                    key_valid=key_valid,
                    retry_after=reply.retry_after,
                    used_in_window=int(reply.headers.get("API-KEY-USE-LIMIT", "0")),
                    peer_port=peer_port,
                )
            )
            return reply

    def _decide_locked(
        self,
        path: str,
        params: dict[str, str],
        key: str | None,
        key_valid: bool,
        arrival: float,
    ) -> _Reply:
        if not key_valid:
            used = self._count_window(key, arrival) if key else 0
            shown = f" {key!r}" if key and self.echo_key_in_errors else ""
            msg = f"API key{shown} is missing or invalid"
            return _Reply(401, _envelope("401", msg), self._limit_headers(used))
        assert key is not None
        used = self._count_window(key, arrival)
        limit = self.limit_per_minute
        if limit is not None and used >= limit:
            oldest = self._arrivals[key][0]
            retry_after = max(1, math.ceil(oldest + self.window_seconds - arrival))
            headers = self._limit_headers(used) | {"Retry-After": str(retry_after)}
            body = _envelope("429", f"rate limit {limit} per window exceeded")
            return _Reply(429, body, headers, retry_after=retry_after)
        self._arrivals[key].append(arrival)
        headers = self._limit_headers(used + 1)
        fault = self._next_fault(path, params)
        if fault is not None and fault != "ok":
            return self._fault_reply(fault, path, params, key, headers)
        reply = self._route(path, params, headers)
        reply.fault = fault
        return reply

    def _next_fault(self, path: str, params: Mapping[str, str]) -> str | None:
        symbol = params.get("symbol")
        if symbol is not None:
            queue = self.symbol_faults.get(symbol)
            if queue:
                return queue.popleft()
            if symbol in self.persistent_symbol_faults:
                return self.persistent_symbol_faults[symbol]
        queue = self.path_faults.get(path)
        if queue:
            return queue.popleft()
        if self.faults:
            return self.faults.popleft()
        return None

    def _fault_reply(
        self,
        fault: str,
        path: str,
        params: dict[str, str],
        key: str,
        headers: dict[str, str],
    ) -> _Reply:
        if fault in ("timeout", "reset"):
            return _Reply(0, b"", headers, action=fault, fault=fault)
        if fault == "truncate":
            reply = self._route(path, params, headers)
            reply.action, reply.fault = "truncate", fault
            return reply
        echo = f" (key {key})" if self.echo_key_in_errors else ""
        if fault.startswith("code:"):
            code = fault.removeprefix("code:")
            body = _envelope(code, f"scripted error code {code}{echo}")
            return _Reply(200, body, headers, fault=fault)
        status_text, _, retry_text = fault.partition(":")
        status = int(status_text)
        retry_after = None
        if status == 429:
            retry_after = int(retry_text) if retry_text else self.scripted_retry_after
            headers = headers | {"Retry-After": str(retry_after)}
        body = _envelope(status_text, f"scripted HTTP {status}{echo}")
        return _Reply(status, body, headers, fault=fault, retry_after=retry_after)

    def _route(self, path: str, params: dict[str, str], headers: dict[str, str]) -> _Reply:
        if path == SUPPORTED_COINS_PATH:
            return _Reply(200, _envelope("0", "success", self.supported_coins), headers)
        if path == SUPPORTED_EXCHANGE_PAIRS_PATH:
            return _Reply(200, _envelope("0", "success", self.exchange_pairs), headers)
        scope = _heatmap_scope(path)
        if scope is None:
            return _Reply(404, _envelope("404", f"no route {path}"), headers)
        problem = self._heatmap_param_problem(scope, params)
        if problem is not None:
            return _Reply(400, _envelope("400", problem), headers)
        history = self.history_days.get(params["symbol"])
        if history is not None and RANGE_SECONDS[params["range"]] > history * 86400:
            return _Reply(200, NO_DATA_BODY, headers)
        return _Reply(200, self.payload_factory(path, dict(params)), headers)

    def _heatmap_param_problem(self, scope: str, params: Mapping[str, str]) -> str | None:
        """Why the query is unacceptable (HTTP 400), or None."""
        required = ("exchange", "symbol", "range") if scope == "pair" else ("symbol", "range")
        missing = [name for name in required if not params.get(name)]
        if missing:
            return f"missing parameter(s): {', '.join(missing)}"
        if params["range"] not in RANGE_SECONDS:
            return f"invalid range {params['range']!r}"
        if self.validate_symbols:
            return self._universe_problem(scope, params)
        return None

    def _universe_problem(self, scope: str, params: Mapping[str, str]) -> str | None:
        symbol = params["symbol"]
        if scope == "coin":
            return None if symbol in self.supported_coins else f"unknown symbol {symbol!r}"
        pairs = self.exchange_pairs.get(params["exchange"])
        if pairs is None:
            return f"unknown exchange {params['exchange']!r}"
        if all(pair.get("instrument_id") != symbol for pair in pairs):
            return f"unknown symbol {symbol!r} on {params['exchange']}"
        return None


def _envelope(code: str, msg: str, data: Any = None) -> bytes:
    return orjson.dumps({"code": code, "msg": msg, "data": data})


def _heatmap_scope(path: str) -> str | None:
    for prefix, scope in ((PAIR_HEATMAP_PREFIX, "pair"), (COIN_HEATMAP_PREFIX, "coin")):
        if path.startswith(prefix) and path.removeprefix(prefix) in ("1", "2", "3"):
            return scope
    return None


def _is_heatmap(path: str) -> bool:
    return _heatmap_scope(path) is not None


def _check_fault(fault: str) -> None:
    """Fail at injection time, not inside a handler thread, on a misspelt fault."""
    if fault in FAULT_KINDS:
        return
    if fault.startswith("code:") and fault.removeprefix("code:"):
        return
    status, _, retry_after = fault.partition(":")
    valid_status = status.isdigit() and 100 <= int(status) < 600
    if valid_status and (not retry_after or (status == "429" and retry_after.isdigit())):
        return
    raise ValueError(f"unknown fault {fault!r}; see FAULT_KINDS in {__name__}")
