"""Keeping secrets out of logs, metadata, exceptions and files: API keys, DSN passwords and
Redis passwords are shown as `***` wherever text might echo them."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from psycopg.conninfo import conninfo_to_dict, make_conninfo

# A secret this long is never part of an ordinary word, so it is redacted wherever it appears
# (Bybit's 10004 answer glues the key between a timestamp and recv_window); a shorter one only
# as a whole token, so a one-letter test key leaves "Invalid API key" alone.
SUBSTRING_REDACTION_MIN_LENGTH = 8


def redact(text: str, secret: str | None) -> str:
    """Replace `secret` in `text` with `***`: everywhere when it is at least
    SUBSTRING_REDACTION_MIN_LENGTH long, else only as a whole token (not glued to letters or
    digits on either side). A no-op for an empty secret."""
    if not secret:
        return text
    if len(secret) >= SUBSTRING_REDACTION_MIN_LENGTH:
        return text.replace(secret, "***")
    token = re.compile(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])")
    return token.sub("***", text)


def redacted_dsn(dsn: str) -> str:
    """The DSN without its password, for logs and metadata."""
    params = conninfo_to_dict(dsn)
    if "password" in params:
        params["password"] = "***"  # noqa: S105 - the mask, not a password
    return make_conninfo(**params)  # type: ignore[arg-type]


def redacted_url(url: str) -> str:
    """The Redis URL without its password (userinfo or `?password=`), for logs and reprs."""
    parts = urlsplit(url)
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(key.lower() == "password" for key, _ in pairs):
            query = urlencode(
                [(key, "***" if key.lower() == "password" else value) for key, value in pairs],
                safe="*",
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
