"""The wire side of the fake CoinGlass server: the request handler, what a reply is, the record
of each request, the fault vocabulary and the envelope. The server's decisions live in
`coinglass_server`; this module only speaks HTTP."""

from __future__ import annotations

import socket
import struct
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import orjson

from helix_pipelines.contracts.heatmaps import HEATMAP_PATH_PREFIX
from helix_pipelines.testing.loopback import LoopbackHandler

ServedKey = tuple[str, frozenset[tuple[str, str]]]
"""How served heatmap bodies are keyed: the path and the query as a frozen set of pairs."""

FAULT_KINDS = ("timeout", "reset", "truncate", "ok")
"""Non-numeric faults. Also accepted: any HTTP status ("500", "429", "429:3" with Retry-After 3)
and "code:<c>" (HTTP 200 whose body carries `code` <c>). "ok" consumes a slot without a fault, so
a script can say "first fine, then 500"."""


def served_key(path: str, params: Mapping[str, str]) -> ServedKey:
    """The key under which the fake records a served heatmap body."""
    return (path, frozenset(params.items()))


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the server saw it. `status` is None when no response was sent."""

    path: str
    params: dict[str, str]
    arrival: float
    """The fake's clock (`time.monotonic()` unless simulated) when the request line and headers
    had been read."""
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
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]
    action: Action = "send"
    fault: str | None = None
    retry_after: int | None = None


class Handler(LoopbackHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server dispatches on this name
        arrival = self.server.fake.clock()
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        key = self.headers.get("CG-API-KEY")
        fake = self.server.fake
        reply = fake._decide(url.path, params, key, arrival, int(self.client_address[1]))
        fake._pause(fake._latency())
        self._perform(reply)

    def do_POST(self) -> None:  # noqa: N802 - http.server dispatches on this name
        self._send(405, orjson.dumps({"code": "405", "msg": "method not allowed"}), {})

    def _perform(self, reply: Reply) -> None:
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


def envelope(code: str, msg: str, data: Any = None) -> bytes:
    return orjson.dumps({"code": code, "msg": msg, "data": data})


def heatmap_scope(path: str) -> str | None:
    for scope, prefix in HEATMAP_PATH_PREFIX.items():
        if path.startswith(prefix) and path.removeprefix(prefix) in ("1", "2", "3"):
            return scope
    return None


def is_heatmap(path: str) -> bool:
    return heatmap_scope(path) is not None


def check_fault(fault: str) -> None:
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


class FaultScript:
    """Scripted faults: one-shot queues for a symbol, a path or any request (served in that
    order), and persistent faults per symbol. Not thread-safe: the server holds its lock."""

    def __init__(self) -> None:
        self.any: deque[str] = deque()
        self.by_path: dict[str, deque[str]] = {}
        self.by_symbol: dict[str, deque[str]] = {}
        self.persistent: dict[str, str] = {}
        """symbol -> fault applied to every request for that symbol until removed."""

    def inject(self, *faults: str, path: str | None = None, symbol: str | None = None) -> None:
        for fault in faults:
            check_fault(fault)
        if symbol is not None:
            self.by_symbol.setdefault(symbol, deque()).extend(faults)
        elif path is not None:
            self.by_path.setdefault(path, deque()).extend(faults)
        else:
            self.any.extend(faults)

    def fail_symbol(self, symbol: str, fault: str | None) -> None:
        if fault is None:
            self.persistent.pop(symbol, None)
        else:
            check_fault(fault)
            self.persistent[symbol] = fault

    def pending(self) -> int:
        return sum(len(q) for q in (self.any, *self.by_path.values(), *self.by_symbol.values()))

    def next(self, path: str, symbol: str | None) -> str | None:
        """The fault for this request, consuming it if it is one-shot; None for none."""
        if symbol is not None:
            queue = self.by_symbol.get(symbol)
            if queue:
                return queue.popleft()
            if symbol in self.persistent:
                return self.persistent[symbol]
        queue = self.by_path.get(path)
        if queue:
            return queue.popleft()
        return self.any.popleft() if self.any else None
