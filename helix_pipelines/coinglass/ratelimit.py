"""A per-minute request budget shared by every concurrent request of one client.

CoinGlass limits requests per key per minute and reports the limit and the usage in response
headers (`API-KEY-MAX-LIMIT`, `API-KEY-USE-LIMIT`). The limiter keeps a sliding log of send times
and lets a request go only while fewer than `limit` were sent in the last window. A sliding window
never exceeds the limit inside any fixed minute either, so it is safe whichever way the server
counts. A small safety margin absorbs the gap between our send time and the server's arrival time.

Processes that share a key share its budget: given a `SharedWindow` (Redis), the limiter also
books every send there, after its own rules allow it, so all of them together stay under the
limit. Redis going away never fails a request: the limiter warns once and carries on with its own
window (which it keeps up to date all along, so the fallback is immediate), asking Redis again
every SHARED_RETRY_SECONDS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from helix_pipelines.coinglass.shared_window import SharedWindow

log = logging.getLogger(__name__)

SHARED_RETRY_SECONDS = 15.0
"""After Redis failed, the limiter relies on its own window this long before asking again: long
enough that an outage costs one failed call now and then, short enough that a blip is soon over."""

SHARED_ERRORS = (RedisError, OSError)
"""What a Redis that is down, restarting or unreachable raises: the limiter falls back on these."""


class RateLimiter:
    """Sliding-window limiter: at most `limit` acquisitions per `window_seconds`.

    `observe()` resizes it from response headers; `hold()` pauses everyone after a 429 whose
    Retry-After says so. Acquisitions are served in arrival order (an asyncio.Lock is FIFO).

    With `shared`, the budget is also the one every process using the key draws from: an
    acquisition first satisfies the local rules (a hold, this process's window), then the shared
    window, which books it or says how long to wait. When Redis fails (unreachable, timing out,
    restarting), the limiter logs one warning per outage and uses only its own window until
    Redis answers again: a fetch never fails because Redis blipped. Close with `aclose()`.
    """

    def __init__(
        self,
        limit: int,
        *,
        window_seconds: float = 60.0,
        safety_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        shared: SharedWindow | None = None,
    ) -> None:
        if limit < 1:
            raise ValueError(f"rate limit must be at least 1 request per window, got {limit}")
        self._limit = limit
        self._window = window_seconds
        self._safety = safety_seconds
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._held_until = 0.0
        self._lock = asyncio.Lock()
        # Set when the limit grows, so a request waiting under the old, smaller limit goes now.
        self._grown = asyncio.Event()
        # Whether the limit is the server's (API-KEY-MAX-LIMIT) or still the configured guess.
        self._reported = False
        self.waited_seconds = 0.0
        self._shared = shared
        self._shared_failing = False
        self._shared_retry_at = float("-inf")
        # Usage bookings on their way to the shared window (kept so none is lost unawaited).
        self._bookings: set[asyncio.Task[None]] = set()

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def shared(self) -> SharedWindow | None:
        """The window shared with other processes through Redis, if any."""
        return self._shared

    def in_window(self) -> int:
        """How many acquisitions the current window holds: this process's own sends and the
        foreign usage it observed, also with a shared window (whose count across processes is
        `SharedWindow.in_window`), so it is the window the limiter falls back on."""
        self._prune(self._clock())
        return len(self._sent)

    async def acquire(self) -> None:
        """Wait until one more request fits the budget, then record it as sent now.

        A hold and the local window are satisfied first (they cost no round trip); then the
        shared window books the send or says how long to wait, and after that wait every rule
        is checked again (another process may have taken the slot that freed).
        """
        async with self._lock:
            while True:
                now = self._clock()
                self._prune(now)
                wait = self._held_until - now
                if wait <= 0 and len(self._sent) >= self._limit:
                    wait = self._sent[0] + self._window + self._safety - now
                if wait <= 0:
                    wait = await self._shared_wait()
                if wait <= 0:
                    self._sent.append(self._clock())
                    return
                await self._wait(wait)
                self.waited_seconds += self._clock() - now

    async def _wait(self, seconds: float) -> None:
        """Sleep `seconds`, or less if the limit grows meanwhile."""
        self._grown.clear()
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        grown = asyncio.ensure_future(self._grown.wait())
        try:
            await asyncio.wait({sleeper, grown}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            grown.cancel()

    def observe(self, max_limit: int | None, used: int | None) -> None:
        """Adopt the server's view: its per-minute limit, and usage we did not cause ourselves.

        When the server counts more requests in this window than we sent (another process shares
        the key), the difference is booked as sent now so we slow down instead of drawing 429s.
        With a shared window it is booked there as well, where it counts against every process
        (once: the shared window books only what it does not already hold).
        """
        if max_limit is not None and max_limit >= 1:
            if max_limit > self._limit:
                self._grown.set()
            self._limit = max_limit
            self._reported = True
        if used is not None:
            now = self._clock()
            self._prune(now)
            self._sent.extend([now] * max(0, used - len(self._sent)))
            self._book_shared_usage(used)

    def hold(self, seconds: float) -> None:
        """Let nobody acquire for `seconds` (a 429 with Retry-After applies to the whole key)."""
        self._held_until = max(self._held_until, self._clock() + seconds)

    async def aclose(self) -> None:
        """Let usage bookings in flight land, then release the shared window's connections (the
        limiter stays usable: the window reconnects on its next call)."""
        if self._shared is None:
            return
        await asyncio.gather(*self._bookings, return_exceptions=True)
        with contextlib.suppress(*SHARED_ERRORS):
            await self._shared.aclose()

    def _shared_to_ask(self) -> SharedWindow | None:
        """The shared window, unless there is none or Redis failed less than
        SHARED_RETRY_SECONDS ago."""
        return None if self._clock() < self._shared_retry_at else self._shared

    async def _shared_wait(self) -> float:
        """Seconds the shared window says to wait; 0 when it booked this send or is not asked."""
        shared = self._shared_to_ask()
        if shared is None:
            return 0.0
        try:
            answer = await shared.try_acquire(
                self._limit, self._window + self._safety, reported=self._reported
            )
        except SHARED_ERRORS as exc:
            self._shared_failed(exc)
            return 0.0
        self._shared_answered()
        return answer.wait_seconds

    def _book_shared_usage(self, used: int) -> None:
        """Book observed usage in the shared window too, in the background: `observe` runs
        while a response is being judged, which must not wait for Redis. Observed outside an
        event loop, it is booked in the local window only."""
        shared = self._shared_to_ask()
        if shared is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self._shared_usage(shared, used))
        self._bookings.add(task)
        task.add_done_callback(self._bookings.discard)

    async def _shared_usage(self, shared: SharedWindow, used: int) -> None:
        try:
            await shared.book_usage(
                used, self._limit, self._window + self._safety, reported=self._reported
            )
        except SHARED_ERRORS as exc:
            self._shared_failed(exc)
            return
        self._shared_answered()

    def _shared_failed(self, exc: Exception) -> None:
        """Fall back to the local window until SHARED_RETRY_SECONDS from now; warn once per
        outage. Only the error's type is logged: its text could carry connection details."""
        if not self._shared_failing:
            log.warning(
                "The shared CoinGlass budget %r failed (%s): this process limits itself with "
                "its own window, and asks Redis again every %.0fs",
                self._shared,
                type(exc).__name__,
                SHARED_RETRY_SECONDS,
            )
        self._shared_failing = True
        self._shared_retry_at = self._clock() + SHARED_RETRY_SECONDS

    def _shared_answered(self) -> None:
        if self._shared_failing:
            log.info("The shared CoinGlass budget %r answers again", self._shared)
            self._shared_failing = False

    def _prune(self, now: float) -> None:
        horizon = now - self._window - self._safety
        while self._sent and self._sent[0] <= horizon:
            self._sent.popleft()
