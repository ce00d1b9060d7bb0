"""A per-minute request budget shared by every concurrent request of one client.

CoinGlass limits requests per key per minute and reports the limit and the usage in response
headers (`API-KEY-MAX-LIMIT`, `API-KEY-USE-LIMIT`). The limiter keeps a sliding log of send times
and lets a request go only while fewer than `limit` were sent in the last window. A sliding window
never exceeds the limit inside any fixed minute either, so it is safe whichever way the server
counts. A small safety margin absorbs the gap between our send time and the server's arrival time.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable


class RateLimiter:
    """Sliding-window limiter: at most `limit` acquisitions per `window_seconds`.

    `observe()` resizes it from response headers; `hold()` pauses everyone after a 429 whose
    Retry-After says so. Acquisitions are served in arrival order (an asyncio.Lock is FIFO).
    """

    def __init__(
        self,
        limit: int,
        *,
        window_seconds: float = 60.0,
        safety_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
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
        self.waited_seconds = 0.0

    @property
    def limit(self) -> int:
        return self._limit

    def in_window(self) -> int:
        """How many acquisitions the current window holds."""
        self._prune(self._clock())
        return len(self._sent)

    async def acquire(self) -> None:
        """Wait until one more request fits the budget, then record it as sent now."""
        async with self._lock:
            while True:
                now = self._clock()
                self._prune(now)
                wait = self._held_until - now
                if wait <= 0 and len(self._sent) >= self._limit:
                    wait = self._sent[0] + self._window + self._safety - now
                if wait <= 0:
                    self._sent.append(now)
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
        """
        if max_limit is not None and max_limit >= 1:
            if max_limit > self._limit:
                self._grown.set()
            self._limit = max_limit
        if used is not None:
            now = self._clock()
            self._prune(now)
            self._sent.extend([now] * max(0, used - len(self._sent)))

    def hold(self, seconds: float) -> None:
        """Let nobody acquire for `seconds` (a 429 with Retry-After applies to the whole key)."""
        self._held_until = max(self._held_until, self._clock() + seconds)

    def _prune(self, now: float) -> None:
        horizon = now - self._window - self._safety
        while self._sent and self._sent[0] <= horizon:
            self._sent.popleft()
