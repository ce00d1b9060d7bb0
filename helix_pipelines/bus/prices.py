"""Live coin prices on Redis: `helix live` writes the price book's newest price per coin into one
hash, and the paper broker of `helix executor serve` (another process) reads it.

One field per coin (`BTC`, `PEPE`: coin units, the venue price divided by its multiplier), value
`price|unix_ms|origin`. A reader ignores a price older than its `max_age`, so a stopped `helix
live` leaves no price that looks current. Written in batches (one HSET of the coins whose tick
changed since the last write), at most as often as the caller flushes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from helix_pipelines.bus.names import LIVE_PRICES, RedisClient, text


class LivePrices(RedisClient):
    def __init__(self, redis_url: str, *, key_prefix: str = "") -> None:
        self.key = f"{key_prefix}{LIVE_PRICES}"
        super().__init__(redis_url)

    def __repr__(self) -> str:
        return f"LivePrices(url={self._url!r}, key={self.key!r})"

    def write(self, prices: Mapping[str, tuple[float, datetime, str]]) -> int:
        """Store coin -> (price, as of, origin); returns how many were written."""
        if not prices:
            return 0
        mapping = {
            coin: f"{price!r}|{int(at.timestamp() * 1000)}|{origin}"
            for coin, (price, at, origin) in prices.items()
        }
        self._redis.hset(self.key, mapping=mapping)
        return len(mapping)

    def price(self, coin: str, *, max_age: timedelta, now: datetime) -> float | None:
        """The coin's live price if one newer than `max_age` is stored, else None."""
        raw = self._redis.hget(self.key, coin)
        if raw is None:
            return None
        try:
            price, ms, _ = text(raw).split("|")
            at = datetime.fromtimestamp(int(ms) / 1000, UTC)
            value = float(price)
        except ValueError:
            return None  # not ours: never trade on a value we cannot read
        return value if now - at <= max_age and value > 0 else None
