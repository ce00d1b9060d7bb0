"""One CoinGlass request budget for every process that uses the same API key, kept in Redis.

CoinGlass counts requests per key, not per process: two Dagster code locations, a backfill and
the live planner that share a key share its per-minute limit. Each process's `RateLimiter` only
knows its own sends, so together they would overdraw the budget and collect 429s. A
`SharedWindow` keeps the sliding log of send times in one Redis sorted set per key instead, and
decides in a Lua script, atomically, whether one more send fits:

- the script prunes sends older than the window (plus the limiter's safety margin), then either
  records one send and answers 0, or answers how long until enough old sends leave the window;
- send times are the Redis server's own clock (`redis.call('TIME')`), so clock skew between the
  machines of the processes never lets two of them disagree about what is in the window;
- the key is named after a short sha256 of the API key: two keys get two budgets, and the secret
  itself is never written to Redis; a PEXPIRE just beyond the window removes an idle budget.

Usage that no Helix process booked (a script with the same key, a deployment on another Redis)
still shows in the `API-KEY-USE-LIMIT` header: `book_usage` books the difference, as the local
limiter does (`RateLimiter.observe`), and atomically, so processes that see the same header book
it once between them.

The window's length and the limit are arguments of each call, not of the window: they are the
calling limiter's rules (the limit follows the server's `API-KEY-MAX-LIMIT`), and the window only
stores the sends.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from dataclasses import dataclass

import redis.asyncio as redis_async
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from helix_pipelines.secrets import redacted_url

BUDGET_KEY = "helix:coinglass:budget:"
"""The Redis key of a budget: optional prefix + this + the API key's short hash."""

KEY_HASH_CHARS = 16
"""Hex digits of sha256(api key) in the key name: 64 bits, ample to keep keys apart."""

LIMIT_MEMORY_MS = 600_000
"""How long a limit the server reported is remembered for processes that have not heard it."""

EXPIRE_SLACK_MS = 1_000
"""The budget's key outlives its newest send's window by this much, then Redis drops it."""

CONNECT_TIMEOUT_SECONDS = 1.0
"""Connect and reply timeouts: the limiter waits for Redis while holding its lock, so a Redis
that does not answer must fail fast (and the limiter falls back to its own window) rather than
stall every request of the process."""

# Prune, book foreign usage, then book one send or say how long to wait, in one atomic step.
# Scores are microseconds of the Redis server's clock (exact in a double until the year 2255).
# KEYS: the budget's sorted set, the key's limit. ARGV: span (window + safety) in microseconds,
# limit, 1 to book a send (0 only books usage), usage reported by the API (-1 when none), a unique
# id for members, the set's expiry slack, 1 when the limit is the server's (API-KEY-MAX-LIMIT)
# rather than configured, how long a reported limit is remembered. A process that has not heard
# the server yet (it starts at the configured 30/min) uses the largest limit another reported:
# with its own it would find the window full forever and never send the request that tells it.
# Foreign usage is booked at most up to the limit: more would only take memory, since entries
# booked together also expire together. Returns {microseconds to wait (0: booked), count after,
# foreign sends booked}.
_WINDOW_LUA = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local stamp = string.format('%s.%06d:%s', clock[1], tonumber(clock[2]), ARGV[5])
local span = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
if ARGV[7] == '1' then
    redis.call('SET', KEYS[2], limit, 'PX', ARGV[8])
else
    limit = math.max(limit, tonumber(redis.call('GET', KEYS[2]) or '0'))
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - span)
local count = redis.call('ZCARD', KEYS[1])
local booked = math.min(tonumber(ARGV[4]), limit) - count
if booked > 0 then
    for i = 1, booked do
        redis.call('ZADD', KEYS[1], now, stamp .. ':' .. i)
    end
    count = count + booked
else
    booked = 0
end
local wait = 0
if ARGV[3] == '1' then
    if count < limit then
        redis.call('ZADD', KEYS[1], now, stamp)
        count = count + 1
    else
        local freeing = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
        wait = math.max(1, tonumber(freeing[2]) + span - now)
    end
end
redis.call('PEXPIRE', KEYS[1], math.ceil(span / 1000) + tonumber(ARGV[6]))
return {wait, count, booked, limit}
"""


@dataclass(frozen=True, slots=True)
class WindowAnswer:
    """What the shared window said: seconds to wait (0: one send was booked), how many sends it
    holds now, and how many foreign sends this call booked."""

    wait_seconds: float
    in_window: int
    booked: int


def budget_key(api_key: str, key_prefix: str = "") -> str:
    """The Redis key of `api_key`'s budget: named by a hash, so the secret never reaches Redis."""
    digest = hashlib.sha256(api_key.encode()).hexdigest()[:KEY_HASH_CHARS]
    return f"{key_prefix}{BUDGET_KEY}{digest}"


class SharedWindow:
    """The sliding window of one API key's sends, shared by every process through Redis.

    Open once per client (it holds a connection pool bound to the running event loop) and close
    with `aclose()`. Redis errors propagate (`redis.exceptions.RedisError`, `OSError`): whether to
    fall back is the caller's decision (`RateLimiter` does, to its own window).
    """

    def __init__(self, redis_url: str, api_key: str, *, key_prefix: str = "") -> None:
        if not api_key:
            raise ValueError("a shared window needs the API key whose budget it keeps")
        self.key = budget_key(api_key, key_prefix)
        self._url = redacted_url(redis_url)
        # One immediate retry: enough to replace a pooled connection Redis dropped (a restart),
        # not enough to wait out an outage while every request of the process queues behind it.
        self._redis = redis_async.Redis.from_url(
            redis_url,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            socket_timeout=CONNECT_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 1),
        )
        self._script = self._redis.register_script(_WINDOW_LUA)

    def __repr__(self) -> str:
        return f"SharedWindow(url={self._url!r}, key={self.key!r})"

    async def aclose(self) -> None:
        """Release the connections (a later call reconnects, so closing twice is harmless)."""
        await self._redis.aclose()

    async def try_acquire(
        self, limit: int, span_seconds: float, *, reported: bool = False
    ) -> WindowAnswer:
        """Book one send if fewer than `limit` lie in the last `span_seconds`, else say how long
        until one more fits (`wait_seconds` > 0, nothing booked). `reported`: the limit is the
        server's; otherwise the largest limit another process reported applies, if larger."""
        return await self._run(limit, span_seconds, send=True, used=None, reported=reported)

    async def book_usage(
        self, used: int, limit: int, span_seconds: float, *, reported: bool = False
    ) -> WindowAnswer:
        """Book, as sent now, the sends the API counts (`used`, from `API-KEY-USE-LIMIT`) beyond
        those the window holds: usage of the key that no process sharing the window booked."""
        return await self._run(limit, span_seconds, send=False, used=used, reported=reported)

    async def in_window(self, span_seconds: float) -> int:
        """How many sends the last `span_seconds` hold (pruning older ones)."""
        # The limit only caps bookings, and this call books nothing: any valid one will do.
        answer = await self._run(1, span_seconds, send=False, used=None)
        return answer.in_window

    async def _run(
        self,
        limit: int,
        span_seconds: float,
        *,
        send: bool,
        used: int | None,
        reported: bool = False,
    ) -> WindowAnswer:
        if limit < 1:
            raise ValueError(f"rate limit must be at least 1 request per window, got {limit}")
        if span_seconds <= 0:
            raise ValueError(f"the window must be positive, got {span_seconds}s")
        wait_us, count, booked, _ = await self._script(
            keys=[self.key, f"{self.key}:limit"],
            args=[
                math.ceil(span_seconds * 1_000_000),
                limit,
                1 if send else 0,
                -1 if used is None else used,
                uuid.uuid4().hex,
                EXPIRE_SLACK_MS,
                1 if reported else 0,
                LIMIT_MEMORY_MS,
            ],
        )
        return WindowAnswer(int(wait_us) / 1_000_000, int(count), int(booked))
