"""The CoinGlass v4 HTTP client: concurrent requests under one rate limiter, bounded retries.

Retry policy (the only one in Helix): 429, 408, 5xx and transport failures/timeouts are retried
with exponential backoff and full jitter, honouring Retry-After, up to `max_attempts` sends.
Everything else fails at once with a typed error. The same rules apply when the error arrives as
a `code` inside an HTTP 200 body, which CoinGlass also does, with one exception: HTTP 200 with
`{"code": "500", "msg": "Server Error"}` is how CoinGlass says "no data for this range" (young
coins), every time, so it is retried `unavailable_retries` times only and then raised as
`CoinGlassUnavailableError`. A burst of server errors across requests (`error_burst` in a row)
pauses the whole client for `error_burst_pause_seconds`, so an outage does not eat the budget.

Heatmap bodies are returned as raw bytes after only a cheap peek at `code`; the normalizer parses
them exactly once. The API key is sent as the `CG-API-KEY` header and redacted from every error.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import orjson

from helix_pipelines.coinglass.endpoints import (
    DEFAULT_BASE_URL,
    SUPPORTED_COINS_PATH,
    SUPPORTED_EXCHANGE_PAIRS_PATH,
)
from helix_pipelines.coinglass.errors import (
    RETRYABLE,
    CoinGlassAuthError,
    CoinGlassError,
    CoinGlassPayloadError,
    CoinGlassRateLimitError,
    CoinGlassServerError,
    CoinGlassUnavailableError,
    error_for_status,
    says_no_data,
)
from helix_pipelines.coinglass.ratelimit import RateLimiter
from helix_pipelines.coinglass.source import SourceKind, SourceStats
from helix_pipelines.contracts.heatmaps import HeatmapRequest
from helix_pipelines.secrets import redact

log = logging.getLogger(__name__)

_CODE_PEEK = re.compile(rb'"code"\s*:\s*"?(-?\d+)"?')
_PEEK_BYTES = 256
# A Retry-After beyond this is treated as this: one odd header must not stall the client for hours.
MAX_RETRY_AFTER_SECONDS = 120.0


def peek_code(body: bytes) -> str | None:
    """The envelope's `code` if it appears near the start of the body (CoinGlass puts it first)."""
    match = _CODE_PEEK.search(body[:_PEEK_BYTES])
    return match.group(1).decode() if match else None


def _header_int(headers: httpx.Headers, name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """Retry-After in seconds (the delta-seconds form CoinGlass uses), capped at
    MAX_RETRY_AFTER_SECONDS; None when absent or not a finite number."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    if not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_SECONDS)


class CoinGlassClient:
    """Async CoinGlass v4 client. Use as `async with CoinGlassClient(...) as client:`."""

    kind: SourceKind = "coinglass"

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        rate_limit_per_minute: int = 30,
        max_concurrency: int = 16,
        timeout_seconds: float = 30.0,
        max_attempts: int = 5,
        unavailable_retries: int = 1,
        error_burst: int = 15,
        error_burst_pause_seconds: float = 60.0,
        backoff_base_seconds: float = 0.5,
        backoff_cap_seconds: float = 30.0,
        capture_dir: Path | None = None,
        limiter: RateLimiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("CoinGlassClient needs an API key; without one use the sandbox")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        if unavailable_retries < 0:
            raise ValueError(f"unavailable_retries must be >= 0, got {unavailable_retries}")
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter or RateLimiter(rate_limit_per_minute)
        self._slots = asyncio.Semaphore(max_concurrency)
        self._max_attempts = max_attempts
        self._unavailable_retries = unavailable_retries
        self._error_burst = error_burst
        self._error_burst_pause = error_burst_pause_seconds
        self._errors_in_a_row = 0
        self._backoff_base = backoff_base_seconds
        self._backoff_cap = backoff_cap_seconds
        self._capture_dir = capture_dir
        self.stats = SourceStats(limit_per_minute=self.limiter.limit)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"CG-API-KEY": api_key, "accept": "application/json"},
            timeout=timeout_seconds,
            # One connection per concurrent request, so nothing queues between the limiter's
            # go-ahead and the send (the limiter counts send time).
            limits=httpx.Limits(
                max_connections=max_concurrency, max_keepalive_connections=max_concurrency
            ),
            transport=transport,
        )

    async def __aenter__(self) -> CoinGlassClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connections, then the limiter's (its shared window's Redis pool)."""
        await self._http.aclose()
        await self.limiter.aclose()

    async def fetch_heatmap(self, request: HeatmapRequest) -> bytes:
        body = await self._get(request.path, request.params, allow_error_code=True)
        self._capture(request.capture_name, body)
        return body

    async def supported_coins(self) -> list[str]:
        body = await self._get(SUPPORTED_COINS_PATH, {})
        self._capture("supported-coins.json", body)
        data = self._envelope_data(body, SUPPORTED_COINS_PATH)
        if not isinstance(data, list) or not all(isinstance(c, str) for c in data):
            raise CoinGlassPayloadError(f"{SUPPORTED_COINS_PATH}: 'data' is not a list of symbols")
        return data

    async def supported_exchange_pairs(self) -> dict[str, list[dict[str, str]]]:
        body = await self._get(SUPPORTED_EXCHANGE_PAIRS_PATH, {})
        self._capture("supported-exchange-pairs.json", body)
        data = self._envelope_data(body, SUPPORTED_EXCHANGE_PAIRS_PATH)
        if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
            raise CoinGlassPayloadError(
                f"{SUPPORTED_EXCHANGE_PAIRS_PATH}: 'data' is not a mapping of exchange to pairs"
            )
        return data

    def _envelope_data(self, body: bytes, path: str) -> Any:
        try:
            envelope = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise CoinGlassPayloadError(f"{path}: response is not valid JSON ({exc})") from None
        if not isinstance(envelope, dict) or "data" not in envelope:
            raise CoinGlassPayloadError(f"{path}: response has no 'data' field")
        code = str(envelope.get("code"))
        if code != "0":
            msg = redact(str(envelope.get("msg", "")), self._api_key)
            raise error_for_status(_code_as_status(code), f"{path}: code {code}: {msg}", code)
        return envelope["data"]

    def _capture(self, name: str, body: bytes) -> None:
        if self._capture_dir is None:
            return
        self._capture_dir.mkdir(parents=True, exist_ok=True)
        (self._capture_dir / name).write_bytes(body)

    async def _get(
        self, path: str, params: Mapping[str, str], *, allow_error_code: bool = False
    ) -> bytes:
        """GET with the retry policy; returns the body of the first acceptable response.

        `allow_error_code`: a non-retryable error `code` inside an HTTP 200 body is returned
        (heatmaps are quarantined by the normalizer with that code as the reason) instead of raised.
        """
        what = f"GET {path}?{'&'.join(f'{k}={v}' for k, v in params.items())}"
        last_error: CoinGlassError | None = None
        no_data_answers = 0
        for attempt in range(1, self._max_attempts + 1):
            if attempt > 1:
                self.stats.retries += 1
            async with self._slots:
                await self.limiter.acquire()
                self.stats.requests_sent += 1
                try:
                    response = await self._http.get(path, params=params)
                except httpx.TimeoutException as exc:
                    last_error = CoinGlassServerError(f"{what}: timed out ({type(exc).__name__})")
                    response = None
                except httpx.TransportError as exc:
                    detail = redact(str(exc), self._api_key)
                    last_error = CoinGlassServerError(f"{what}: transport error: {detail}")
                    response = None
            if response is not None:
                outcome = self._judge(response, what, allow_error_code=allow_error_code)
                if isinstance(outcome, bytes):
                    self._errors_in_a_row = 0
                    return outcome
                last_error = outcome
                if isinstance(outcome, CoinGlassUnavailableError):
                    no_data_answers += 1
                    if no_data_answers > self._unavailable_retries or attempt == self._max_attempts:
                        self.stats.unavailable += 1
                        raise outcome
            if isinstance(last_error, CoinGlassServerError):
                self._count_server_error()
            delay = self._delay(attempt, response)
            if attempt < self._max_attempts:
                log.warning(
                    "%s; retry %d/%d in %.2fs",
                    last_error,
                    attempt,
                    self._max_attempts - 1,
                    delay,
                )
                await asyncio.sleep(delay)
        assert last_error is not None
        raise type(last_error)(
            f"{last_error} (gave up after {self._max_attempts} attempts)",
            status=last_error.status,
            code=last_error.code,
        )

    def _count_server_error(self) -> None:
        """Pause the whole client after a burst of server errors in a row (any request)."""
        self._errors_in_a_row += 1
        if self._errors_in_a_row >= self._error_burst:
            log.warning(
                "CoinGlass answered %d errors in a row: pausing every request for %.0fs",
                self._errors_in_a_row,
                self._error_burst_pause,
            )
            self.limiter.hold(self._error_burst_pause)
            self._errors_in_a_row = 0

    def _judge(
        self, response: httpx.Response, what: str, *, allow_error_code: bool
    ) -> bytes | CoinGlassError:
        """The body if acceptable, a retryable error to retry, or raise a non-retryable one."""
        headers = response.headers
        status = response.status_code
        self.stats.status_counts[status] = self.stats.status_counts.get(status, 0) + 1
        self.limiter.observe(
            _header_int(headers, "API-KEY-MAX-LIMIT"), _header_int(headers, "API-KEY-USE-LIMIT")
        )
        self.stats.limit_per_minute = self.limiter.limit
        self.stats.used_in_window = _header_int(headers, "API-KEY-USE-LIMIT")
        body = response.content
        code = peek_code(body) if status == 200 else None
        if status == 200 and code in (None, "0"):
            return body
        effective = status if status != 200 else _code_as_status(code or "")
        snippet = redact(body[:200].decode("utf-8", "replace"), self._api_key)
        if status == 200 and code == "500" and allow_error_code and says_no_data(body):
            return CoinGlassUnavailableError(
                f"{what}: CoinGlass has no data for it (code 500 'Server Error')", body=body
            )
        error = error_for_status(effective, f"{what}: HTTP {status}: {snippet}", code)
        if isinstance(error, CoinGlassRateLimitError):
            self.stats.rate_limited += 1
            retry_after = retry_after_seconds(headers)
            if retry_after:
                self.limiter.hold(retry_after)
        if isinstance(error, RETRYABLE):
            return error
        if status == 200 and allow_error_code and not isinstance(error, CoinGlassAuthError):
            return body
        raise error

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            retry_after = retry_after_seconds(response.headers)
            if retry_after is not None:
                return retry_after
        ceiling = min(self._backoff_cap, self._backoff_base * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)


def _code_as_status(code: str) -> int:
    """CoinGlass mirrors HTTP statuses in `code`; anything else is treated as a bad request."""
    try:
        value = int(code)
    except ValueError:
        return 400
    return value if 400 <= value < 600 else 400
