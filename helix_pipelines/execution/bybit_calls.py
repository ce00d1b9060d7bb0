"""The call layer under the Bybit broker: one pybit call with Bybit's rate limits waited out,
lists followed across pages, errors sorted by what they say about the venue, the key redacted.

- retCode 10006 (rate limit): wait until X-Bapi-Limit-Reset-Timestamp and ask again, for up to
  `patience` seconds; then `VenueUnavailable` (it processed nothing: never a rejection).
- retCode 10000 / 10016, an HTTP error, a timeout or a dropped connection: `MayHaveActed`; for
  a call that changes nothing (`read`) that is just `VenueUnavailable`.
- any other retCode: the pybit `InvalidRequestError`, key redacted (a 10004 answer echoes the
  signed string, key included).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests
from pybit.exceptions import FailedRequestError, InvalidRequestError
from pybit.unified_trading import HTTP

from helix_pipelines.execution.brokers import VenueUnavailable
from helix_pipelines.secrets import redact

RATE_LIMITED = 10006
# retCodes after which Bybit may or may not have acted (server timeout, server error).
OUTCOME_UNKNOWN_CODES = frozenset({10000, 10016})
MAX_PAGES = 100
_NETWORK = (requests.exceptions.Timeout, requests.exceptions.ConnectionError)


class MayHaveActed(VenueUnavailable):
    """The request may have reached the venue and been acted on (a timeout, 10000 / 10016)."""


def open_session(mode: str, api_key: str, api_secret: str, *, timeout: int = 10) -> HTTP:
    """A pybit session for testnet, demo or live (the settings gate decides which is allowed).

    `force_retry` off: pybit must not resend an order after a timeout on its own. `retry_codes`
    keeps only 10002 (clock drift): 10006 surfaces so the broker waits for the reset itself,
    and pybit replaces an empty set with its defaults, hence the explicit set.
    """
    return HTTP(
        testnet=mode == "testnet",
        demo=mode == "demo",
        api_key=api_key,
        api_secret=api_secret,
        timeout=timeout,
        force_retry=False,
        max_retries=2,
        retry_delay=1,
        retry_codes={10002},
    )


class BybitCalls:
    def __init__(
        self,
        session: HTTP,
        *,
        patience_seconds: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.session = session
        self._patience = patience_seconds
        self._sleep = sleep
        self.clock_offset_ms: float | None = None
        """How far Bybit's clock runs ahead of ours, measured once (negative: behind)."""

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """One pybit call's `result`, rate limits waited out. Raises the Bybit error (key
        redacted) for a definite answer, `MayHaveActed` / `VenueUnavailable` otherwise."""
        waited = 0.0
        while True:
            try:
                return getattr(self.session, method)(**params)["result"]
            except InvalidRequestError as exc:
                if exc.status_code in OUTCOME_UNKNOWN_CODES:
                    raise MayHaveActed(
                        self.scrub(f"Bybit retCode {exc.status_code} on {method}: {exc.message}")
                    ) from None
                if exc.status_code != RATE_LIMITED:
                    raise self.scrubbed(exc) from None
                wait = self._rate_limit_wait(exc.resp_headers)
                if waited + wait > self._patience:
                    raise VenueUnavailable(
                        f"Bybit kept answering 10006 (rate limit) to {method} for {waited:.1f} s"
                    ) from None
                self._sleep(wait)
                waited += wait
            except FailedRequestError as exc:
                raise MayHaveActed(
                    self.scrub(f"{method}: HTTP {exc.status_code} {exc.message}")
                ) from None
            except _NETWORK as exc:
                raise MayHaveActed(f"{type(exc).__name__} during {method}") from None

    def read(self, method: str, **params: Any) -> dict[str, Any]:
        """A call that changes nothing: any transient failure is just `VenueUnavailable`."""
        try:
            return self.call(method, **params)
        except MayHaveActed as exc:
            raise VenueUnavailable(str(exc)) from None

    def pages(self, method: str, **params: Any) -> list[dict[str, Any]]:
        """Every row of a list call, following `nextPageCursor`."""
        rows: list[dict[str, Any]] = []
        cursor = ""
        for _ in range(MAX_PAGES):
            page = self.read(method, **params, **({"cursor": cursor} if cursor else {}))
            rows.extend(page.get("list") or [])
            cursor = page.get("nextPageCursor") or ""
            if not cursor:
                return rows
        raise VenueUnavailable(f"{method} did not finish paging after {MAX_PAGES} pages")

    @staticmethod
    def _rate_limit_wait(headers: Any) -> float:
        reset = (headers or {}).get("X-Bapi-Limit-Reset-Timestamp")
        try:
            wait = int(reset) / 1000 - time.time() if reset is not None else 0.5
        except ValueError:
            wait = 0.5
        return min(max(wait, 0.05), 2.0)

    def scrub(self, text: str) -> str:
        return redact(text, getattr(self.session, "api_key", None))

    def scrubbed(self, exc: InvalidRequestError) -> InvalidRequestError:
        return InvalidRequestError(
            request=self.scrub(str(exc.request)),
            message=self.scrub(str(exc.message)),
            status_code=exc.status_code,
            time=exc.time,
            resp_headers=exc.resp_headers,
        )

    def clock_lead_ms(self) -> float:
        """The venue's clock lead in ms (0 until it could be measured)."""
        if self.clock_offset_ms is None:
            before = time.time() * 1000
            try:
                venue = int(self.read("get_server_time")["timeNano"]) / 1_000_000
            except VenueUnavailable:
                return 0.0
            self.clock_offset_ms = venue - (before + time.time() * 1000) / 2
        return self.clock_offset_ms
