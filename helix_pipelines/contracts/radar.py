"""The radar entry: one symbol's place on the liquidation radar at one refresh, the shape the
`liquidation_radar` table, the Redis radar stream and trade signals share (the analytics build
it, `analytics.radar` documents how).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Literal, get_args

Tier = Literal["HOT", "WATCH", "WARM", "SAFE"]
TIERS: tuple[Tier, ...] = get_args(Tier)
"""Nearest major zone closer than 0.5%, 1%, 2%, or farther (the limits are configurable)."""
Direction = Literal["up", "down"]
"""Where the radar expects price to be drawn: toward the short liquidations above, or the long
liquidations below."""


@dataclass(frozen=True, slots=True)
class RadarEntry:
    """One `liquidation_radar` row."""

    refreshed_at: datetime
    symbol: str
    rank: int | None = None
    decile: int | None = None
    tier: Tier | None = None
    score: float | None = None
    direction: Direction | None = None
    target_price: float | None = None  # the near edge of the major zone in that direction
    imbalance: float | None = None
    imbalance_component: float | None = None
    proximity_component: float | None = None
    size_component: float | None = None
    consensus_component: float | None = None
    last_price: float | None = None
    atr: float | None = None
    above_price: float | None = None
    above_distance_pct: float | None = None
    above_distance_atr: float | None = None
    below_price: float | None = None
    below_distance_pct: float | None = None
    below_distance_atr: float | None = None
    nearest_distance_pct: float | None = None
    size_z: float | None = None
    snapshots: int = 0
    newest_snapshot_at: datetime | None = None
    oldest_snapshot_at: datetime | None = None
    data_age_seconds: float | None = None
    excluded_reason: str | None = None

    def as_row(self) -> dict[str, object]:
        return asdict(self)
