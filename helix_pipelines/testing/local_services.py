"""Where the tests and benchmarks find the machine's PostgreSQL and Redis: the local defaults,
or `HELIX_TEST_PG_ADMIN_DSN` (a server where the user may create databases) and
`HELIX_TEST_REDIS_URL`. Every run makes its own databases and key prefixes on them."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import redis

PG_ADMIN_DSN = os.environ.get(
    "HELIX_TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("HELIX_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_url_with_password(password: str, user: str = "default") -> str:
    """`REDIS_URL` with credentials in it (a server whose default user takes any password
    accepts it: a real connection with a secret in its URL)."""
    parts = urlsplit(REDIS_URL)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{user}:{password}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@contextmanager
def redis_key_prefix(label: str = "helix-test") -> Iterator[str]:
    """A key prefix no other run uses; every key under it is deleted on exit."""
    prefix = f"{label}:{uuid.uuid4().hex}:"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
