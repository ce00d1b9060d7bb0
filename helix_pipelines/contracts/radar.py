"""The radar entry: one symbol's place on the liquidation radar at one refresh, the shape the
`liquidation_radar` table, the Redis radar stream and trade signals share (the analytics build
it, `analytics.radar` documents how).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Literal, get_args

from helix_pipelines.contracts.columns import Count

Tier = Literal["HOT", "WATCH", "WARM", "SAFE"]
TIERS: tuple[Tier, ...] = get_args(Tier)
"""Nearest major zone closer than 0.5%, 1%, 2%, or farther (the limits are configurable)."""
PriceSource = Literal["heatmap", "ws", "rest"]
"""Where the radar's price came from: the newest heatmap candle's close, or the live Bybit ticker
(websocket, or its REST fallback)."""
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
    price_origin: PriceSource | None = None
    realized_liq_usd: float | None = None  # liquidations CoinGlass reported in the window
    realized_liq_events: Count | None = None  # (None: no liquidation feed was running)

    def as_row(self) -> dict[str, object]:
        # Every field is a scalar: a shallow copy is the row, and asdict's deep copy was most of
        # the cost of ranking the universe on every price move.
        return {f.name: getattr(self, f.name) for f in fields(self)}
