"""Names on Redis shared by the signal and radar publishers and their consumers, and how to
connect.

Every key and channel name takes a `key_prefix`, so several deployments (and parallel test runs)
share one Redis without seeing each other.
"""

from __future__ import annotations

from typing import Self

import redis

from helix_pipelines.secrets import redacted_url

SIGNAL_STREAM = "helix:signals"
SIGNAL_CHANNEL = "helix:signals:notify"
PUBLISHED_SET = "helix:signals:published"
DEAD_LETTER_STREAM = "helix:signals:dead"
RADAR_STREAM = "helix:radar"
RADAR_LATEST = "helix:radar:latest"
RADAR_CHANNEL = "helix:radar:notify"
LIVE_PRICES = "helix:prices"  # hash: coin -> its live price, written by `helix live`

# The dead-letter stream is for inspection, not an archive: bounded like the signal stream.
DEAD_LETTER_MAXLEN = 100_000

# Ids listed in one pub/sub notification; the count says how many there were in all.
NOTIFY_MAX_IDS = 50

# The stream entry field that holds the signal (the publisher's script also writes `signal_id`
# and `schema_version` beside it, so tools like redis-cli can filter without parsing JSON).
FIELD_PAYLOAD = "payload"


def connect(redis_url: str) -> redis.Redis:
    # Raw bytes in replies: a malformed entry (say, invalid UTF-8) must reach the dead-letter
    # logic instead of failing inside the client's decoder.
    return redis.Redis.from_url(redis_url, decode_responses=False, socket_connect_timeout=10)


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisClient:
    """One Redis connection per publisher or consumer, closed by `close()` or at the end of a
    `with` block; `_url` is the URL without its password, for reprs and logs."""

    def __init__(self, redis_url: str) -> None:
        self._url = redacted_url(redis_url)
        self._redis = connect(redis_url)

    def close(self) -> None:
        self._redis.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
