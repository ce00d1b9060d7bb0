"""Where the tests and benchmarks find the machine's PostgreSQL and Redis: the local defaults,
or `HELIX_TEST_PG_ADMIN_DSN` (a server where the user may create databases) and
`HELIX_TEST_REDIS_URL`. Every run makes its own databases and key prefixes on them."""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

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
