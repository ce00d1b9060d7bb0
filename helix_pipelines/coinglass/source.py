"""The interface every heatmap source shares: the real HTTP client, the sandbox and replay.

Assets and the CLI talk only to `HeatmapSource`, so whether data comes from CoinGlass, from the
synthetic sandbox or from a directory of recorded payloads is a configuration choice, never a
code path of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from helix_pipelines.contracts.heatmaps import HeatmapRequest

SourceKind = Literal["coinglass", "sandbox", "replay"]


@dataclass
class SourceStats:
    """Request accounting for one source: what a run cost against the plan's budget."""

    requests_sent: int = 0
    retries: int = 0
    rate_limited: int = 0
    unavailable: int = 0
    limit_per_minute: int | None = None
    used_in_window: int | None = None
    status_counts: dict[int, int] = field(default_factory=dict)

    def as_metadata(self) -> dict[str, int]:
        meta = {
            "requests_sent": self.requests_sent,
            "retries": self.retries,
            "http_429_received": self.rate_limited,
            "unavailable_answers": self.unavailable,
        }
        if self.limit_per_minute is not None:
            meta["plan_limit_per_minute"] = self.limit_per_minute
        return meta


class HeatmapSource(Protocol):
    """Async source of raw heatmap payloads and of the symbol universe."""

    kind: SourceKind
    stats: SourceStats

    async def fetch_heatmap(self, request: HeatmapRequest) -> bytes:
        """Raw response body of one heatmap; parsing and validation are the normalizer's job."""
        ...

    async def supported_coins(self) -> list[str]: ...

    async def supported_exchange_pairs(self) -> dict[str, list[dict[str, str]]]: ...

    async def aclose(self) -> None: ...
