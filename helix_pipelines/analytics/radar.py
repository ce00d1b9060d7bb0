"""The liquidation radar: every coin of the universe ranked by how strongly its liquidations lean
one way and how close price is to a major cluster.

Per symbol, from the newest snapshot of every model x range (its `SnapshotImbalance`) and its
consensus zones (pure, no Dagster):

  imbalance    weighted mean over the snapshots of (1 - live_weight) x cumulative imbalance +
               live_weight x live imbalance; weights by range (`RANGE_WEIGHTS`: the short
               ranges, which describe what can happen next, weigh most), models equally.
               0.5 is balanced, above 0.5 more short liquidations above the price.
  major zones  consensus zones scoring at least `major_consensus`; the nearest one above and
               below, their distance from the price to the zone's near edge in % and in ATR.
  direction    `up` when the imbalance leans above by more than the dead band, `down` when it
               leans below, otherwise (or when that side has no major zone) toward the nearest
               major zone; the target is that side's nearest major zone.
  size_z       range-weighted mean z-score of the target side's major cluster size against its
               baseline (None until baselines have enough samples).

The score is a weighted sum of four components, each in [0, 1]:

  imbalance_component  2 x (imbalance - 0.5) toward the target side,
                       0 when it leans away                          weight 0.35
  proximity_component  1 / (1 + nearest distance / 1%)            weight 0.35
  size_component       clip(0.5 + size_z / 4, 0, 1); 0.5 unknown    weight 0.15
  consensus_component  consensus score of the nearest major zone    weight 0.15

Tiers by the nearest major zone's distance: HOT < 0.5%, WATCH < 1%, WARM < 2%, SAFE beyond.
Excluded (no rank, with the reason): no loaded heatmap, data older than `max_age_hours`, no
major zone on either side. Ranks are 1..n by score (ties by symbol); decile 1 is the top tenth.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType

from helix_pipelines.analytics.consensus import ConsensusZone
from helix_pipelines.analytics.imbalance import SnapshotImbalance
from helix_pipelines.contracts.radar import PriceSource, RadarEntry, Tier

RANGE_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"12h": 1.0, "24h": 1.0, "3d": 0.8, "7d": 0.6, "30d": 0.4, "90d": 0.3, "180d": 0.2, "1y": 0.2}
)


@dataclass(frozen=True, slots=True)
class RadarParams:
    range_weights: Mapping[str, float] = field(default_factory=lambda: RANGE_WEIGHTS)
    live_weight: float = 0.5
    weight_imbalance: float = 0.35
    weight_proximity: float = 0.35
    weight_size: float = 0.15
    weight_consensus: float = 0.15
    major_consensus: float = 0.5
    proximity_half_pct: float = 1.0  # the distance at which proximity is 0.5
    hot_pct: float = 0.5
    watch_pct: float = 1.0
    safe_pct: float = 2.0  # WARM below this, SAFE beyond
    direction_dead_band: float = 0.1  # |2 x (imbalance - 0.5)| below this has no direction
    max_age_hours: float = 6.0

    def __post_init__(self) -> None:
        if not 0 < self.hot_pct <= self.watch_pct <= self.safe_pct:
            raise ValueError(
                "tier limits must satisfy 0 < hot_pct <= watch_pct <= safe_pct, got "
                f"{self.hot_pct}, {self.watch_pct}, {self.safe_pct}"
            )
        weights = (
            self.weight_imbalance,
            self.weight_proximity,
            self.weight_size,
            self.weight_consensus,
        )
        if min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"score weights must be >= 0 and not all 0, got {weights}")
        if not 0 <= self.live_weight <= 1:
            raise ValueError(f"live_weight must be in [0, 1], got {self.live_weight}")

    def tier(self, distance_pct: float) -> Tier:
        if distance_pct < self.hot_pct:
            return "HOT"
        if distance_pct < self.watch_pct:
            return "WATCH"
        return "WARM" if distance_pct < self.safe_pct else "SAFE"


@dataclass(frozen=True, slots=True)
class SymbolInputs:
    """What the radar needs of one symbol: its snapshots' imbalances, its zones, its price."""

    symbol: str
    snapshots: Sequence[SnapshotImbalance]
    zones: Sequence[ConsensusZone]
    last_price: float
    atr: float
    price_origin: PriceSource = "heatmap"
    realized: tuple[float, int] | None = None  # realized liquidations: USD, events


def with_live_state(
    inputs: Sequence[SymbolInputs],
    prices: Mapping[str, tuple[float, PriceSource]],
    realized: Mapping[str, tuple[float, int]] | None,
) -> list[SymbolInputs]:
    """The inputs priced at the live price where there is one, with each symbol's realized
    liquidations (0 where the feed saw none; None throughout when no feed runs)."""
    result = []
    for item in inputs:
        price, origin = prices.get(item.symbol, (item.last_price, "heatmap"))
        done = None if realized is None else realized.get(item.symbol, (0.0, 0))
        result.append(replace(item, last_price=price, price_origin=origin, realized=done))
    return result


def _range_weighted(
    values: Sequence[tuple[str, float | None]], weights: Mapping[str, float]
) -> float | None:
    """Mean of (range, value) pairs weighted by range; None when no value has weight."""
    total = weight_sum = 0.0
    for range_, value in values:
        weight = weights.get(range_, 0.0)
        if value is not None and weight > 0:
            total += weight * value
            weight_sum += weight
    return total / weight_sum if weight_sum > 0 else None


def weighted_imbalance(snapshots: Sequence[SnapshotImbalance], params: RadarParams) -> float | None:
    """The range-weighted imbalance of a symbol's snapshots (None when none has any USD)."""
    return _range_weighted(
        [(s.range, _snapshot_imbalance(s, params.live_weight)) for s in snapshots],
        params.range_weights,
    )


def _snapshot_imbalance(snapshot: SnapshotImbalance, live_weight: float) -> float | None:
    cumulative, live = snapshot.cumulative_imbalance, snapshot.live_imbalance
    if cumulative is None or live is None:
        return cumulative if live is None else live
    return (1 - live_weight) * cumulative + live_weight * live


def _nearest_zones(
    zones: Sequence[ConsensusZone], price: float, major_consensus: float
) -> tuple[ConsensusZone | None, ConsensusZone | None]:
    major = [z for z in zones if z.consensus_score >= major_consensus]
    above = [z for z in major if z.liquidated_side == "short"]
    below = [z for z in major if z.liquidated_side == "long"]
    return (
        min(above, key=lambda z: z.price_lo) if above else None,
        max(below, key=lambda z: z.price_hi) if below else None,
    )


def _distance_pct(zone: ConsensusZone, price: float) -> float:
    """From the price to the zone's near edge, in % (0 when price is inside the band)."""
    edge = zone.price_lo - price if zone.liquidated_side == "short" else price - zone.price_hi
    return max(0.0, edge) / price * 100


def _near_edge(zone: ConsensusZone) -> float:
    return zone.price_lo if zone.liquidated_side == "short" else zone.price_hi


def score_symbol(inputs: SymbolInputs, now: datetime, params: RadarParams) -> RadarEntry:
    """One symbol's radar entry, unranked (or excluded with the reason)."""
    snapshots = inputs.snapshots
    newest = max(s.fetched_at for s in snapshots)
    oldest = min(s.fetched_at for s in snapshots)
    age = (now - newest).total_seconds()
    base = RadarEntry(
        refreshed_at=now,
        symbol=inputs.symbol,
        last_price=inputs.last_price,
        atr=inputs.atr,
        snapshots=len(snapshots),
        newest_snapshot_at=newest,
        oldest_snapshot_at=oldest,
        data_age_seconds=age,
        price_origin=inputs.price_origin,
        realized_liq_usd=None if inputs.realized is None else inputs.realized[0],
        realized_liq_events=None if inputs.realized is None else inputs.realized[1],
    )
    if age > params.max_age_hours * 3600:
        return _excluded(
            base,
            f"stale: newest heatmap {age / 3600:.1f} h old (limit {params.max_age_hours:g} h)",
        )
    price = inputs.last_price
    above, below = _nearest_zones(inputs.zones, price, params.major_consensus)
    if above is None and below is None:
        return _excluded(
            base, f"no major zone (consensus >= {params.major_consensus:g}) on either side"
        )
    imbalance = weighted_imbalance(snapshots, params)
    tilt = 0.0 if imbalance is None else 2 * (imbalance - 0.5)
    distances = {z.liquidated_side: _distance_pct(z, price) for z in (above, below) if z}
    nearest_side = min(distances, key=lambda side: distances[side])
    leaning = "short" if tilt > 0 else "long"
    target_side = (
        leaning if abs(tilt) > params.direction_dead_band and leaning in distances else nearest_side
    )
    target = above if target_side == "short" else below
    assert target is not None  # target_side is a key of distances, which holds only real zones
    nearest_zone = above if nearest_side == "short" else below
    assert nearest_zone is not None
    size_z = _range_weighted(
        [(s.range, s.size_z(target_side)) for s in snapshots], params.range_weights
    )
    nearest = distances[nearest_side]
    components = {
        # Only a lean toward the target counts: leaning away from it is no support.
        "imbalance_component": max(0.0, tilt if target_side == "short" else -tilt),
        "proximity_component": 1 / (1 + nearest / params.proximity_half_pct),
        "size_component": 0.5 if size_z is None else min(1.0, max(0.0, 0.5 + size_z / 4)),
        "consensus_component": nearest_zone.consensus_score,
    }
    weights = (
        params.weight_imbalance,
        params.weight_proximity,
        params.weight_size,
        params.weight_consensus,
    )
    score = sum(w * c for w, c in zip(weights, components.values(), strict=True)) / sum(weights)
    atr = inputs.atr if inputs.atr > 0 else math.nan
    return RadarEntry(
        **{
            **base.as_row(),
            **components,
            "tier": params.tier(nearest),
            "score": score,
            "direction": "up" if target_side == "short" else "down",
            "target_price": _near_edge(target),
            "imbalance": imbalance,
            "above_price": above.price_lo if above else None,
            "above_distance_pct": distances.get("short"),
            "above_distance_atr": (above.price_lo - price) / atr if above else None,
            "below_price": below.price_hi if below else None,
            "below_distance_pct": distances.get("long"),
            "below_distance_atr": (price - below.price_hi) / atr if below else None,
            "nearest_distance_pct": nearest,
            "size_z": size_z,
        }
    )


def _excluded(entry: RadarEntry, reason: str) -> RadarEntry:
    return RadarEntry(**{**entry.as_row(), "excluded_reason": reason})


def build_radar(
    inputs: Sequence[SymbolInputs],
    universe: Sequence[str],
    *,
    now: datetime,
    params: RadarParams | None = None,
) -> list[RadarEntry]:
    """One entry per symbol of the universe and of the inputs: ranked first (rank 1 = highest
    score), then the excluded ones by symbol."""
    params = params or RadarParams()
    scored = [score_symbol(i, now, params) for i in inputs if i.snapshots]
    present = {e.symbol for e in scored}
    missing = [
        RadarEntry(refreshed_at=now, symbol=s, excluded_reason="no loaded heatmap")
        for s in sorted(set(universe) - present)
    ]
    ranked = sorted(
        (e for e in scored if e.excluded_reason is None),
        key=lambda e: (-(e.score or 0.0), e.symbol),
    )
    n = len(ranked)
    result = [
        RadarEntry(**{**e.as_row(), "rank": i, "decile": math.ceil(10 * i / n)})
        for i, e in enumerate(ranked, start=1)
    ]
    excluded = sorted((e for e in scored if e.excluded_reason is not None), key=lambda e: e.symbol)
    return result + sorted(excluded + missing, key=lambda e: e.symbol)
