"""Publishing the liquidation radar on Redis for other tools (dashboards, bots, the live service).

Three names, written together in one MULTI/EXEC so a reader never sees them disagree:

  helix:radar          a Stream, one entry per refresh: `refreshed_at`, `ranked` (how many coins
                       were ranked) and `payload`, JSON of the top `stream_top` entries; trimmed to
                       about `stream_maxlen` refreshes (history for tools that replay it)
  helix:radar:latest   a string: JSON of the whole newest refresh, excluded coins included
  helix:radar:notify   a pub/sub channel: `{"refreshed_at": ..., "ranked": n}` after each refresh

The radar is a view, recomputed every refresh, not a command: a lost notification costs nothing
because the stream and the latest key hold the same facts. Names take the bus `key_prefix`.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from helix_pipelines.bus.names import (
    RADAR_CHANNEL,
    RADAR_LATEST,
    RADAR_STREAM,
    RedisClient,
)
from helix_pipelines.contracts.radar import RadarEntry


def radar_json(entries: Sequence[RadarEntry]) -> bytes:
    """JSON list of entries with ISO-8601 UTC times and sorted keys."""
    return orjson.dumps(
        [e.as_row() for e in entries],
        option=orjson.OPT_SORT_KEYS | orjson.OPT_UTC_Z | orjson.OPT_SERIALIZE_NUMPY,
    )


class RadarPublisher(RedisClient):
    """Writes one radar refresh to the stream, the latest key and the channel."""

    def __init__(
        self,
        redis_url: str,
        *,
        key_prefix: str = "",
        stream_top: int = 50,
        stream_maxlen: int = 10_000,
    ) -> None:
        if stream_top <= 0 or stream_maxlen <= 0:
            raise ValueError(
                f"stream_top and stream_maxlen must be positive, got {stream_top}, {stream_maxlen}"
            )
        self.stream = f"{key_prefix}{RADAR_STREAM}"
        self.latest = f"{key_prefix}{RADAR_LATEST}"
        self.channel = f"{key_prefix}{RADAR_CHANNEL}"
        self.stream_top = stream_top
        self.stream_maxlen = stream_maxlen
        super().__init__(redis_url)

    def __repr__(self) -> str:
        return f"RadarPublisher(url={self._url!r}, stream={self.stream!r})"

    def publish(self, entries: Sequence[RadarEntry]) -> str | None:
        """Publish one refresh (entries as `build_radar` orders them); the stream entry id, or
        None when there is nothing to publish."""
        if not entries:
            return None
        refreshed_at = entries[0].refreshed_at.isoformat()
        ranked = [e for e in entries if e.rank is not None]
        pipe = self._redis.pipeline(transaction=True)
        pipe.xadd(
            self.stream,
            {
                "refreshed_at": refreshed_at,
                "ranked": len(ranked),
                "payload": radar_json(ranked[: self.stream_top]),
            },
            maxlen=self.stream_maxlen,
            approximate=True,
        )
        pipe.set(self.latest, radar_json(entries))
        pipe.publish(
            self.channel, orjson.dumps({"refreshed_at": refreshed_at, "ranked": len(ranked)})
        )
        stream_id, *_ = pipe.execute()
        return stream_id.decode() if isinstance(stream_id, bytes) else str(stream_id)
