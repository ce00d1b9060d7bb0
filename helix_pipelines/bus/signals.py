"""Trade signals on Redis: a Stream read through consumer groups, and a pub/sub notification.

Why a Stream and not only pub/sub: pub/sub forgets a message the moment no subscriber is
listening, while a Stream keeps it (with AOF, across restarts) until trimmed, and a consumer group
remembers which entries each consumer has read but not yet acknowledged (the pending entries
list). That gives at-least-once delivery: an executor that dies mid-batch leaves its entries
pending, and another consumer of the group reclaims them once they have been idle for
`claim_idle_ms`. At-least-once means an entry can be handled twice (a consumer that finished the
work but died before `ack`), so whoever acts on a signal must be idempotent by `signal_id`, which
the pipeline derives deterministically from the signal's inputs.

The publisher adds the other half: a signal id already published is never appended again, so a
re-materialized asset or a retried run does not put the same trade on the stream twice. The
pub/sub channel only says "new signals are on the stream" to dashboards; nothing durable relies
on it.

Every key and channel name takes a `key_prefix`, so several deployments (and parallel test runs)
share one Redis without seeing each other.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import redis

log = logging.getLogger(__name__)

SIGNAL_STREAM = "helix:signals"
SIGNAL_CHANNEL = "helix:signals:notify"
PUBLISHED_SET = "helix:signals:published"
DEAD_LETTER_STREAM = "helix:signals:dead"

# The dead-letter stream is for inspection, not an archive: bounded like the signal stream.
DEAD_LETTER_MAXLEN = 100_000

# Ids listed in one pub/sub notification; the count says how many there were in all.
NOTIFY_MAX_IDS = 50

# Stream entry fields. `signal_id` and `schema_version` duplicate what is in `payload` so tools
# (redis-cli, XRANGE-based dashboards) can filter without parsing JSON.
FIELD_PAYLOAD = "payload"
FIELD_SIGNAL_ID = "signal_id"
FIELD_SCHEMA_VERSION = "schema_version"

# Dedupe, append and notify in one atomic step. A Lua script runs with no other command in
# between, like MULTI/EXEC, and unlike MULTI/EXEC it can decide per signal whether to append, so
# two publishers racing with the same id cannot both append it.
# The id is recorded only after XADD succeeded: should the script fail half-way, a retry may
# append a signal twice (which consumers tolerate), but never skips one that was not appended.
# KEYS: stream, published-ids set. ARGV: channel, maxlen, max ids per notification, then
# (signal_id, schema_version, payload) triples.
_PUBLISH_LUA = """
local stream_ids = {}
local new_ids = {}
local duplicates = 0
for i = 4, #ARGV, 3 do
    local signal_id = ARGV[i]
    if redis.call('SISMEMBER', KEYS[2], signal_id) == 1 then
        duplicates = duplicates + 1
    else
        local entry_id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*',
            'signal_id', signal_id, 'schema_version', ARGV[i + 1], 'payload', ARGV[i + 2])
        redis.call('SADD', KEYS[2], signal_id)
        stream_ids[#stream_ids + 1] = entry_id
        new_ids[#new_ids + 1] = signal_id
    end
end
if #new_ids > 0 then
    local listed = {}
    for j = 1, math.min(#new_ids, tonumber(ARGV[3])) do
        listed[j] = new_ids[j]
    end
    redis.call('PUBLISH', ARGV[1],
        cjson.encode({count = #new_ids, signal_ids = listed, stream = KEYS[1]}))
end
return {duplicates, stream_ids}
"""


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


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What one `publish` call did: entries appended (with their stream ids), ids already there."""

    published: int
    duplicates: int
    stream_ids: list[str]


@dataclass(frozen=True, slots=True)
class StreamSignal:
    """One signal read from the stream; `ack` its `stream_id` once it has been acted on.

    `deliveries` counts how often the group handed this entry out (1 on first read); more than 1
    means an earlier consumer took it and never acknowledged, so the work may have been done
    already and must be checked by `signal_id`.
    """

    stream_id: str
    signal: dict[str, Any]
    deliveries: int


def _connect(redis_url: str) -> redis.Redis:
    # Raw bytes in replies: a malformed entry (say, invalid UTF-8) must reach the dead-letter
    # logic instead of failing inside the client's decoder.
    return redis.Redis.from_url(redis_url, decode_responses=False, socket_connect_timeout=10)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class SignalPublisher:
    """Appends signals to the stream exactly once per `signal_id` and notifies subscribers."""

    def __init__(
        self, redis_url: str, *, key_prefix: str = "", stream_maxlen: int = 100_000
    ) -> None:
        if stream_maxlen <= 0:
            raise ValueError(f"stream_maxlen must be positive, got {stream_maxlen}")
        self.stream = f"{key_prefix}{SIGNAL_STREAM}"
        self.channel = f"{key_prefix}{SIGNAL_CHANNEL}"
        self.published_set = f"{key_prefix}{PUBLISHED_SET}"
        self.stream_maxlen = stream_maxlen
        self._url = redacted_url(redis_url)
        self._redis = _connect(redis_url)
        self._script = self._redis.register_script(_PUBLISH_LUA)

    def __repr__(self) -> str:
        return f"SignalPublisher(url={self._url!r}, stream={self.stream!r})"

    def close(self) -> None:
        self._redis.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def publish(self, signals: Sequence[Mapping[str, object]]) -> PublishResult:
        """Append the signals not published before, in order, and send one notification.

        Each signal needs a non-empty string `signal_id` and an int `schema_version`; the whole
        mapping is stored as JSON in the entry's `payload` field. A bad signal raises
        `ValueError` before anything is written. Ids repeated within the call, or published by
        an earlier call, count as duplicates. The notification goes out only when at least one
        signal was appended.
        """
        if not signals:
            return PublishResult(published=0, duplicates=0, stream_ids=[])
        args: list[bytes | str | int] = [self.channel, self.stream_maxlen, NOTIFY_MAX_IDS]
        for index, signal in enumerate(signals):
            signal_id, schema_version, payload = _encode(index, signal)
            args += [signal_id, schema_version, payload]
        duplicates, stream_ids = self._script(keys=[self.stream, self.published_set], args=args)
        result = PublishResult(
            published=len(stream_ids),
            duplicates=int(duplicates),
            stream_ids=[_text(entry_id) for entry_id in stream_ids],
        )
        log.info(
            "Published %d signal(s) to %s on %s (%d already published)",
            result.published,
            self.stream,
            self._url,
            result.duplicates,
        )
        return result


def _encode(index: int, signal: Mapping[str, object]) -> tuple[str, int, bytes]:
    """Validate one signal and serialize it, with errors that name the signal."""
    signal_id = signal.get("signal_id")
    if not isinstance(signal_id, str) or not signal_id:
        raise ValueError(
            f"signal #{index}: 'signal_id' must be a non-empty string, got {signal_id!r}"
        )
    schema_version = signal.get("schema_version")
    if not isinstance(schema_version, int) or isinstance(schema_version, bool):
        raise ValueError(
            f"signal {signal_id!r}: 'schema_version' must be an int, got {schema_version!r}"
        )
    try:
        payload = orjson.dumps(dict(signal), option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:
        raise ValueError(f"signal {signal_id!r} cannot be serialized to JSON: {exc}") from exc
    return signal_id, schema_version, payload


class SignalConsumer:
    """One named consumer in a consumer group on the signal stream.

    Typical loop: `read()`, act on each signal (idempotently by `signal_id`), then `ack()` the
    stream ids that were handled. Entries that are never acknowledged stay pending and are
    reclaimed by a live consumer of the group after `claim_idle_ms`.
    """

    def __init__(
        self,
        redis_url: str,
        group: str,
        consumer: str,
        *,
        key_prefix: str = "",
        block_ms: int = 1000,
        claim_idle_ms: int = 30_000,
    ) -> None:
        if block_ms < 0 or claim_idle_ms < 0:
            raise ValueError(
                f"block_ms and claim_idle_ms must be >= 0, got {block_ms} and {claim_idle_ms}"
            )
        self.stream = f"{key_prefix}{SIGNAL_STREAM}"
        self.dead_letter_stream = f"{key_prefix}{DEAD_LETTER_STREAM}"
        self.group = group
        self.consumer = consumer
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.dead_lettered = 0
        self._url = redacted_url(redis_url)
        self._redis = _connect(redis_url)
        # XAUTOCLAIM scans the pending list a slice per call; the cursor carries on where the
        # last call stopped so idle entries deep in a long list are reached too.
        self._claim_cursor = "0-0"
        self._create_group()

    def __repr__(self) -> str:
        return (
            f"SignalConsumer(url={self._url!r}, stream={self.stream!r}, "
            f"group={self.group!r}, consumer={self.consumer!r})"
        )

    def close(self) -> None:
        self._redis.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _create_group(self) -> None:
        """Create the group (and the stream) if missing; from id 0, so a new group sees history.

        The group lives in the stream key itself, so it survives restarts with the stream.
        """
        try:
            self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, count: int = 10) -> list[StreamSignal]:
        """Up to `count` signals: first entries abandoned by other consumers, then new ones.

        Blocks up to `block_ms` only when nothing was reclaimed. Malformed entries are
        dead-lettered (see `dead_lettered`) and not returned. If the stream was deleted under a
        running consumer (a flushed or restored Redis), the group is created again instead of
        every later read failing with NOGROUP.
        """
        if count <= 0:
            raise ValueError(f"count must be positive, got {count}")
        try:
            return self._read(count)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            log.warning("Group %s of %s vanished; creating it again", self.group, self.stream)
            self._claim_cursor = "0-0"
            self._create_group()
            return self._read(count)

    def _read(self, count: int) -> list[StreamSignal]:
        signals = self._reclaim(count)
        remaining = count - len(signals)
        if remaining > 0:
            block = None if signals or self.block_ms == 0 else self.block_ms
            reply = self._redis.xreadgroup(
                self.group, self.consumer, {self.stream: ">"}, count=remaining, block=block
            )
            for _stream, entries in reply or []:
                for entry_id, fields in entries:
                    signal = self._decode(_text(entry_id), fields, deliveries=1)
                    if signal is not None:
                        signals.append(signal)
        return signals

    def _reclaim(self, count: int) -> list[StreamSignal]:
        """Take over entries pending longer than `claim_idle_ms`, with their delivery counts."""
        next_cursor, entries, *_deleted = self._redis.xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            min_idle_time=self.claim_idle_ms,
            start_id=self._claim_cursor,
            count=count,
        )
        self._claim_cursor = _text(next_cursor)
        # Entries trimmed from the stream come back as deleted ids (Redis 7 also drops them from
        # the pending list); only live entries are handed out.
        live = [
            (_text(entry_id), fields)
            for entry_id, fields in entries
            if entry_id is not None and fields is not None
        ]
        if not live:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for entry_id, _fields in live:
            pipe.xpending_range(self.stream, self.group, entry_id, entry_id, 1)
        details = pipe.execute()
        signals = []
        for (entry_id, fields), detail in zip(live, details, strict=True):
            deliveries = max(1, int(detail[0]["times_delivered"])) if detail else 1
            signal = self._decode(entry_id, fields, deliveries=deliveries)
            if signal is not None:
                signals.append(signal)
        log.info(
            "Consumer %s of group %s reclaimed %d idle entries on %s",
            self.consumer,
            self.group,
            len(live),
            self.stream,
        )
        return signals

    def _decode(
        self, entry_id: str, fields: Mapping[bytes, bytes], deliveries: int
    ) -> StreamSignal | None:
        """The entry's signal, or None after dead-lettering an entry that holds none."""
        signal, reason = _parse_entry(fields)
        if signal is None:
            self._dead_letter(entry_id, fields, reason)
            return None
        return StreamSignal(stream_id=entry_id, signal=signal, deliveries=deliveries)

    def _dead_letter(self, entry_id: str, fields: Mapping[bytes, bytes], reason: str) -> None:
        """Move an unreadable entry aside, with why, and acknowledge it, in one transaction.

        Redelivering it would fail the same way every time and keep it pending forever; the
        dead-letter stream keeps its original fields (as `field:<name>`) for a human to inspect.
        Both steps in one MULTI/EXEC: the entry is never acked without being kept, nor kept twice
        by this group.
        """
        record: dict[bytes | str, bytes | str] = {
            "source_stream": self.stream,
            "source_id": entry_id,
            "group": self.group,
            "consumer": self.consumer,
            "reason": reason,
        }
        for name, value in fields.items():
            record[b"field:" + name] = value
        pipe = self._redis.pipeline(transaction=True)
        pipe.xadd(self.dead_letter_stream, record, maxlen=DEAD_LETTER_MAXLEN, approximate=True)
        pipe.xack(self.stream, self.group, entry_id)
        pipe.execute()
        self.dead_lettered += 1
        log.warning(
            "Dead-lettered stream entry %s of %s to %s: %s",
            entry_id,
            self.stream,
            self.dead_letter_stream,
            reason,
        )

    def ack(self, stream_ids: Sequence[str]) -> int:
        """Acknowledge handled entries; returns how many were still pending (re-acks count 0)."""
        if not stream_ids:
            return 0
        return int(self._redis.xack(self.stream, self.group, *stream_ids))

    def pending(self) -> int:
        """Entries of the whole group delivered but not yet acknowledged, any consumer."""
        summary = self._redis.xpending(self.stream, self.group)
        return int(summary["pending"])


def _parse_entry(fields: Mapping[bytes, bytes]) -> tuple[dict[str, Any] | None, str]:
    """The entry's signal (from its JSON payload), or None and why the entry holds none."""
    payload = fields.get(FIELD_PAYLOAD.encode())
    if payload is None:
        return None, "no 'payload' field"
    try:
        signal = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return None, f"payload is not JSON: {exc}"
    if not isinstance(signal, dict):
        return None, f"payload is a JSON {type(signal).__name__}, not an object"
    if not isinstance(signal.get("signal_id"), str):
        return None, "payload has no string 'signal_id'"
    return signal, ""
