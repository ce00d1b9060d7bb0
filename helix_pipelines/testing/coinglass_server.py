"""A local fake of the CoinGlass v4 HTTP API for tests and benchmarks.

Why a real HTTP server instead of an httpx mock transport: the client's behaviour that matters
(keep-alive reuse, timeouts, connection resets, truncated bodies, Retry-After, pacing under a
per-minute budget measured at the *server*) only shows up over a real socket. The fake binds
127.0.0.1 on an ephemeral port, serves HTTP/1.1 with keep-alive and exact Content-Length, and runs
in a background thread so async client code can talk to it from the test's event loop.

What it enforces, like CoinGlass: the `CG-API-KEY` header; a per-key request budget over a sliding
window counted by arrival time (429 + Retry-After when exceeded, `API-KEY-MAX-LIMIT` and
`API-KEY-USE-LIMIT` on every response); required query parameters (400); unknown paths (404).
What it does like the real service (docs/real-apis.md): young coins (`history_days`) answer HTTP 200
`{"code":"500","msg":"Server Error"}` on every range longer than their history, every time, and
its default payloads come from the one synthetic generator (`coinglass.synthetic`: real key sets,
real grid shapes, a small fraction of the real cell count so tests stay fast).

What it adds for tests: latency injection, scripted faults (globally, per path, per symbol, or
persistently per symbol), and a record of every request and of every heatmap body it served, so
a test can compare what the pipeline stored with what the "API" actually sent.

Every knob is a plain attribute that tests may change while the server runs; the handler reads
them under the server's lock on each request. The HTTP side is in `coinglass_wire`.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping

from helix_pipelines.coinglass.endpoints import SUPPORTED_COINS_PATH, SUPPORTED_EXCHANGE_PAIRS_PATH
from helix_pipelines.coinglass.synthetic import (
    NO_DATA_BODY,
    has_history,
    heatmap_payload,
    period_end_at,
)
from helix_pipelines.contracts.heatmaps import HeatmapRequest
from helix_pipelines.contracts.vocabulary import RANGES
from helix_pipelines.testing.coinglass_wire import (
    FaultScript,
    Handler,
    RecordedRequest,
    Reply,
    ServedKey,
    envelope,
    heatmap_scope,
    is_heatmap,
    served_key,
)
from helix_pipelines.testing.loopback import LoopbackFake

PayloadFactory = Callable[[str, dict[str, str]], bytes]
"""Builds the raw body of one heatmap response from its path and query parameters."""

DEFAULT_API_KEY = "test-cg-key-0123456789abcdef"

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

DEFAULT_MOMENT = 1_750_000_000
"""The moment (epoch seconds) default payloads are generated at: fixed, so they are
deterministic and a test can rebuild the body it expects."""
DEFAULT_CELL_FRACTION = 0.02
"""Default payloads carry this share of the real cell count on the real grid."""


def default_heatmap_payload(
    path: str, params: Mapping[str, str], *, cell_fraction: float = DEFAULT_CELL_FRACTION
) -> bytes:
    """The synthetic body for one request at DEFAULT_MOMENT (query parameters already checked)."""
    scope = heatmap_scope(path)
    assert scope is not None
    request = HeatmapRequest(
        scope, params["symbol"], int(path[-1]), params["range"], exchange=params.get("exchange", "")
    )
    end = period_end_at(request, DEFAULT_MOMENT)
    return heatmap_payload(request, end, cell_fraction=cell_fraction)


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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_keys: frozenset[str] = (
            frozenset([api_key]) if isinstance(api_key, str) else frozenset(api_key)
        )
        self.limit_per_minute = limit_per_minute
        self.window_seconds = window_seconds
        self.clock = clock
        """Arrival times (the rate-limit window): a simulated clock lets a test run an hour of
        planning in seconds with the server counting in the same time as the client."""
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
        self.script = FaultScript()
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

    handler = Handler

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`, the `base_url` of a CoinGlassClient."""
        return self.url

    # -- scripting -------------------------------------------------------------------------

    def inject(self, *faults: str, path: str | None = None, symbol: str | None = None) -> None:
        """Queue faults, each consumed by one request: of `symbol`, else of `path`, else any."""
        with self._lock:
            self.script.inject(*faults, path=path, symbol=symbol)

    def fail_symbol(self, symbol: str, fault: str | None) -> None:
        """Apply `fault` to every request for `symbol` (None to heal it)."""
        with self._lock:
            self.script.fail_symbol(symbol, fault)

    def pending_faults(self) -> int:
        """Scripted one-shot faults not yet consumed (a test's script should end at 0)."""
        with self._lock:
            return self.script.pending()

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
            return self._count_window(key, self.clock())

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
    ) -> Reply:
        """Everything about one request except the I/O, under the lock so knobs stay consistent."""
        with self._lock:
            key_valid = key is not None and key in self.api_keys
            reply = self._decide_locked(path, params, key, key_valid, arrival)
            served = reply.action == "send" and reply.status == 200
            if served and self.record_bodies and is_heatmap(path):
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
    ) -> Reply:
        if not key_valid:
            used = self._count_window(key, arrival) if key else 0
            shown = f" {key!r}" if key and self.echo_key_in_errors else ""
            msg = f"API key{shown} is missing or invalid"
            return Reply(401, envelope("401", msg), self._limit_headers(used))
        assert key is not None
        used = self._count_window(key, arrival)
        limit = self.limit_per_minute
        if limit is not None and used >= limit:
            oldest = self._arrivals[key][0]
            retry_after = max(1, math.ceil(oldest + self.window_seconds - arrival))
            headers = self._limit_headers(used) | {"Retry-After": str(retry_after)}
            body = envelope("429", f"rate limit {limit} per window exceeded")
            return Reply(429, body, headers, retry_after=retry_after)
        self._arrivals[key].append(arrival)
        headers = self._limit_headers(used + 1)
        fault = self.script.next(path, params.get("symbol"))
        if fault is not None and fault != "ok":
            return self._fault_reply(fault, path, params, key, headers)
        reply = self._route(path, params, headers)
        reply.fault = fault
        return reply

    def _fault_reply(
        self,
        fault: str,
        path: str,
        params: dict[str, str],
        key: str,
        headers: dict[str, str],
    ) -> Reply:
        if fault in ("timeout", "reset"):
            return Reply(0, b"", headers, action=fault, fault=fault)
        if fault == "truncate":
            reply = self._route(path, params, headers)
            reply.action, reply.fault = "truncate", fault
            return reply
        echo = f" (key {key})" if self.echo_key_in_errors else ""
        if fault.startswith("code:"):
            code = fault.removeprefix("code:")
            body = envelope(code, f"scripted error code {code}{echo}")
            return Reply(200, body, headers, fault=fault)
        status_text, _, retry_text = fault.partition(":")
        status = int(status_text)
        retry_after = None
        if status == 429:
            retry_after = int(retry_text) if retry_text else self.scripted_retry_after
            headers = headers | {"Retry-After": str(retry_after)}
        body = envelope(status_text, f"scripted HTTP {status}{echo}")
        return Reply(status, body, headers, fault=fault, retry_after=retry_after)

    def _route(self, path: str, params: dict[str, str], headers: dict[str, str]) -> Reply:
        if path == SUPPORTED_COINS_PATH:
            return Reply(200, envelope("0", "success", self.supported_coins), headers)
        if path == SUPPORTED_EXCHANGE_PAIRS_PATH:
            return Reply(200, envelope("0", "success", self.exchange_pairs), headers)
        scope = heatmap_scope(path)
        if scope is None:
            return Reply(404, envelope("404", f"no route {path}"), headers)
        problem = self._heatmap_param_problem(scope, params)
        if problem is not None:
            return Reply(400, envelope("400", problem), headers)
        if not has_history(params["range"], self.history_days.get(params["symbol"])):
            return Reply(200, NO_DATA_BODY, headers)
        return Reply(200, self.payload_factory(path, dict(params)), headers)

    def _heatmap_param_problem(self, scope: str, params: Mapping[str, str]) -> str | None:
        """Why the query is unacceptable (HTTP 400), or None."""
        required = ("exchange", "symbol", "range") if scope == "pair" else ("symbol", "range")
        missing = [name for name in required if not params.get(name)]
        if missing:
            return f"missing parameter(s): {', '.join(missing)}"
        if params["range"] not in RANGES:
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
