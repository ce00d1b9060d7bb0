"""Consuming trade signals from the Redis Stream through a consumer group.

At-least-once delivery: an executor that dies mid-batch leaves its entries pending, and another
consumer of the group reclaims them once they have been idle for `claim_idle_ms`. An entry can
therefore be handled twice (a consumer that finished the work but died before `ack`), so whoever
acts on a signal must be idempotent by `signal_id`, which the pipeline derives deterministically.
An entry that holds no readable signal, one that breaks the contract, or one of a schema version
this build does not know is moved to the dead-letter stream with the reason, never guessed at.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import redis

from helix_pipelines.bus.names import (
    DEAD_LETTER_MAXLEN,
    DEAD_LETTER_STREAM,
    FIELD_PAYLOAD,
    SIGNAL_STREAM,
    RedisClient,
    text,
)
from helix_pipelines.contracts.signals import InvalidSignal, TradeSignal

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StreamSignal:
    """One signal read from the stream; `ack` its `stream_id` once it has been acted on.

    `deliveries` counts how often the group handed this entry out (1 on first read); more than 1
    means an earlier consumer took it and never acknowledged, so the work may have been done
    already and must be checked by `signal_id`.
    """

    stream_id: str
    signal: TradeSignal
    deliveries: int


class SignalConsumer(RedisClient):
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
        super().__init__(redis_url)
        # XAUTOCLAIM scans the pending list a slice per call; the cursor carries on where the
        # last call stopped so idle entries deep in a long list are reached too.
        self._claim_cursor = "0-0"
        self._create_group()

    def __repr__(self) -> str:
        return (
            f"SignalConsumer(url={self._url!r}, stream={self.stream!r}, "
            f"group={self.group!r}, consumer={self.consumer!r})"
        )

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
                    signal = self._decode(text(entry_id), fields, deliveries=1)
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
        self._claim_cursor = text(next_cursor)
        # Entries trimmed from the stream come back as deleted ids (Redis 7 also drops them from
        # the pending list); only live entries are handed out.
        live = [
            (text(entry_id), fields)
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


def _parse_entry(fields: Mapping[bytes, bytes]) -> tuple[TradeSignal | None, str]:
    """The entry's signal, or None and why the entry holds none (malformed, invalid, or of a
    schema version this build does not read)."""
    payload = fields.get(FIELD_PAYLOAD.encode())
    if payload is None:
        return None, "no 'payload' field"
    try:
        return TradeSignal.from_message(payload), ""
    except InvalidSignal as exc:
        return None, str(exc)
