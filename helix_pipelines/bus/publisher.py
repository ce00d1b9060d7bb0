"""Publishing trade signals on Redis: a Stream read through consumer groups, and a pub/sub
notification.

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
from collections.abc import Sequence
from dataclasses import dataclass

from helix_pipelines.bus.names import (
    NOTIFY_MAX_IDS,
    PUBLISHED_SET,
    SIGNAL_CHANNEL,
    SIGNAL_STREAM,
    RedisClient,
    text,
)
from helix_pipelines.contracts.signals import TradeSignal

log = logging.getLogger(__name__)

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


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What one `publish` call did: entries appended (with their stream ids), ids already there."""

    published: int
    duplicates: int
    stream_ids: list[str]


class SignalPublisher(RedisClient):
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
        super().__init__(redis_url)
        self._script = self._redis.register_script(_PUBLISH_LUA)

    def __repr__(self) -> str:
        return f"SignalPublisher(url={self._url!r}, stream={self.stream!r})"

    def publish(self, signals: Sequence[TradeSignal]) -> PublishResult:
        """Append the signals not published before, in order, and send one notification.

        Each entry carries the signal as JSON in `payload` (`TradeSignal.to_message`), plus its
        `signal_id` and `schema_version` for tools that filter without parsing. Ids repeated
        within the call, or published by an earlier call, count as duplicates. The
        notification goes out only when at least one signal was appended.
        """
        if not signals:
            return PublishResult(published=0, duplicates=0, stream_ids=[])
        args: list[bytes | str | int] = [self.channel, self.stream_maxlen, NOTIFY_MAX_IDS]
        for index, signal in enumerate(signals):
            if not isinstance(signal, TradeSignal):
                raise TypeError(
                    f"signal #{index} is a {type(signal).__name__}, not a TradeSignal: "
                    "nothing was published"
                )
            args += [signal.signal_id, signal.schema_version, signal.to_message()]
        duplicates, stream_ids = self._script(keys=[self.stream, self.published_set], args=args)
        result = PublishResult(
            published=len(stream_ids),
            duplicates=int(duplicates),
            stream_ids=[text(entry_id) for entry_id in stream_ids],
        )
        log.info(
            "Published %d signal(s) to %s on %s (%d already published)",
            result.published,
            self.stream,
            self._url,
            result.duplicates,
        )
        return result
