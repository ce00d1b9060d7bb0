"""Exception types for CoinGlass failures.

Every message names the request (path and query) and what went wrong, and never the API key: the
key travels only in a header, and `helix_pipelines.secrets.redact` scrubs it from any text that
might echo it back before it becomes a message.
"""

from __future__ import annotations

import orjson

# The message CoinGlass sends with code 500 when a key has no data (docs/real-apis.md).
NO_DATA_MESSAGE = "server error"
_ERROR_BODY_MAX_BYTES = 1024


class CoinGlassError(Exception):
    """Base class: something about a CoinGlass call failed."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class CoinGlassAuthError(CoinGlassError):
    """401/403: the key is wrong, or the plan does not include this endpoint. Not retried."""


class CoinGlassRequestError(CoinGlassError):
    """400/404/405/422: the request itself is wrong (unknown symbol, bad range). Not retried."""


class CoinGlassRateLimitError(CoinGlassError):
    """429 after every allowed attempt."""


class CoinGlassServerError(CoinGlassError):
    """5xx, 408 or a transport failure/timeout after every allowed attempt."""


class CoinGlassUnavailableError(CoinGlassError):
    """CoinGlass has no data for this key: HTTP 200 with `{"code": "500", "msg": "Server
    Error"}`, every time (young coins on ranges longer than their history). Not an outage: the
    ledger records it as `unavailable` and the key is skipped for a while. `body` is the answer."""

    def __init__(self, message: str, *, body: bytes) -> None:
        super().__init__(message, status=200, code="500")
        self.body = body


class CoinGlassPayloadError(CoinGlassError):
    """The body is not the JSON envelope the endpoint promises."""


def error_for_status(status: int, message: str, code: str | None = None) -> CoinGlassError:
    """Map an HTTP status (or a status-like `code` inside the body) to the matching error type."""
    if status in (401, 403):
        cls: type[CoinGlassError] = CoinGlassAuthError
    elif status == 429:
        cls = CoinGlassRateLimitError
    elif status == 408 or status >= 500:
        cls = CoinGlassServerError
    elif 400 <= status < 500:
        cls = CoinGlassRequestError
    else:
        cls = CoinGlassPayloadError
    return cls(message, status=status, code=code)


RETRYABLE = (CoinGlassRateLimitError, CoinGlassServerError)


def says_no_data(body: bytes) -> bool:
    """Whether a body is CoinGlass's "no data for this key" answer: code 500, msg "Server Error"
    (a small error body: anything longer is a payload, and is not parsed here)."""
    if len(body) > _ERROR_BODY_MAX_BYTES:
        return False
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(envelope, dict) or str(envelope.get("code")) != "500":
        return False
    msg = envelope.get("msg")
    return isinstance(msg, str) and msg.strip().lower() == NO_DATA_MESSAGE
