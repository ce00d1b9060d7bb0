"""The latest price of every venue symbol, in memory: what the radar ranks with, what the risk
guard checks deviation and staleness against, what the paper broker fills at.

Written from other threads than the readers' (pybit calls back on its websocket thread, the REST
fallback polls on its own), so every access holds one lock, held only for dictionary work.
Readers that react to prices either block in `wait_for_update` (a thread) or register a listener
(an asyncio loop registers `lambda tick: loop.call_soon_threadsafe(...)`); listeners run on the
writer's thread, so they must be cheap, and whatever they raise stays here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from helix_pipelines.clock import utc_now
from helix_pipelines.contracts.live import PriceOrigin, PriceTick

logger = logging.getLogger(__name__)

PriceListener = Callable[[PriceTick], None]
"""Called with every tick the book stored, on the writing thread, after the lock is released."""

LISTENER_ERROR_LOG_INTERVAL = 10.0
"""Seconds between log lines about failing listeners: one that fails on every tick would
otherwise write thousands of tracebacks a second."""


class PriceBook:
    """Latest `PriceTick` per venue symbol, thread-safe, with a version that counts stored ticks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._ticks: dict[str, PriceTick] = {}
        self._version = 0
        self._by_origin: dict[PriceOrigin, int] = {"ws": 0, "rest": 0}
        self._stale_ignored = 0
        # A tuple, replaced on change: `update` calls the listeners outside the lock without
        # copying, and a listener added meanwhile is simply called from the next tick on.
        self._listeners: tuple[PriceListener, ...] = ()
        self._listener_errors = 0
        self._listener_logged_at = float("-inf")

    # -- writing ---------------------------------------------------------------------------------

    def update(self, tick: PriceTick) -> bool:
        """Store `tick` unless the book holds a newer one for its symbol; whether it was stored.

        Newer means a later venue timestamp, whatever the origin: a REST poll answered after a
        websocket push may carry an older price. An equal timestamp replaces the held tick:
        Bybit stamps to the millisecond and several pushes of a burst share one.
        """
        with self._lock:
            held = self._ticks.get(tick.venue_symbol)
            if held is not None and tick.at < held.at:
                self._stale_ignored += 1
                return False
            self._ticks[tick.venue_symbol] = tick
            self._version += 1
            self._by_origin[tick.origin] += 1
            listeners = self._listeners
            self._changed.notify_all()
        for listener in listeners:
            self._notify(listener, tick)
        return True

    def _notify(self, listener: PriceListener, tick: PriceTick) -> None:
        try:
            listener(tick)
        except Exception:
            # The writer is pybit's socket thread: an exception there would close the socket.
            with self._lock:
                self._listener_errors += 1
                errors = self._listener_errors
                now = time.monotonic()
                due = now - self._listener_logged_at >= LISTENER_ERROR_LOG_INTERVAL
                if due:
                    self._listener_logged_at = now
            if due:
                logger.exception("price listener %r failed (%d failures so far)", listener, errors)

    # -- reading ---------------------------------------------------------------------------------

    def confirm(self, venue_symbol: str, at: datetime) -> None:
        """The venue says the held price still stands as of `at` (a ticker delta without
        `lastPrice`): re-stamp it, so a quiet coin's price does not look stale. Silent: no new
        version, no listener call, since nothing moved."""
        with self._lock:
            held = self._ticks.get(venue_symbol)
            if held is not None and at > held.at:
                self._ticks[venue_symbol] = replace(held, at=at)

    def tick(self, venue_symbol: str) -> PriceTick | None:
        with self._lock:
            return self._ticks.get(venue_symbol)

    def age(self, venue_symbol: str, now: datetime | None = None) -> float | None:
        """Seconds since the held tick's venue timestamp (None when there is none). Negative when
        the venue's clock runs ahead of ours."""
        tick = self.tick(venue_symbol)
        if tick is None:
            return None
        return ((now or utc_now()) - tick.at).total_seconds()

    def price(self, venue_symbol: str, max_age: float, now: datetime | None = None) -> float | None:
        """The held price if it is at most `max_age` seconds old, else None: a caller that gets
        a number may act on it, so a stale one is never handed out."""
        tick = self.tick(venue_symbol)
        if tick is None or ((now or utc_now()) - tick.at).total_seconds() > max_age:
            return None
        return tick.price

    def snapshot(self) -> dict[str, PriceTick]:
        """Every held tick by venue symbol, as one consistent copy."""
        with self._lock:
            return dict(self._ticks)

    @property
    def version(self) -> int:
        """How many ticks were stored so far; grows by one with each."""
        with self._lock:
            return self._version

    def updates_by_origin(self) -> dict[PriceOrigin, int]:
        """Stored ticks by where they came from: how much of the book the REST fallback wrote."""
        with self._lock:
            return dict(self._by_origin)

    @property
    def stale_ignored(self) -> int:
        """Ticks not stored because the book held a newer one."""
        with self._lock:
            return self._stale_ignored

    @property
    def listener_errors(self) -> int:
        with self._lock:
            return self._listener_errors

    # -- waiting for changes -----------------------------------------------------------------------

    def wait_for_update(self, after_version: int, timeout: float | None = None) -> int:
        """Block until `version` exceeds `after_version` or `timeout` seconds pass; the version
        then. Pass the version last seen, so ticks stored in between are never missed."""
        with self._changed:
            self._changed.wait_for(lambda: self._version > after_version, timeout)
            return self._version

    def add_listener(self, listener: PriceListener) -> None:
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: PriceListener) -> None:
        """Unregister `listener` (compared with ==, so `book.remove_listener(seen.append)`
        finds the bound method registered as `seen.append`)."""
        with self._lock:
            self._listeners = tuple(
                registered for registered in self._listeners if registered != listener
            )
