"""Consensus: liquidation clusters that several models and ranges agree on.

CoinGlass does not document how its models differ, so no single map is trusted. For one symbol,
the clusters of the latest snapshot of every model x range (cumulative profiles) are grouped
into zones wherever their price bands overlap (within `tolerance_atr` x ATR). A zone's

    consensus_score = (models in the zone / models available)
                      x (0.5 + 0.5 x ranges in the zone / ranges available)

is 1.0 when every model sees it on every range, and at most 0.5 when only one model does. The
score is the main input to risk: trades are only planned around zones that score high enough.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from helix_pipelines.analytics.clusters import Cluster
from helix_pipelines.contracts.vocabulary import RANGES, LiquidatedSide


@dataclass(frozen=True, slots=True)
class SourcedCluster:
    """A cluster with the model and range of the snapshot it came from."""

    model: int
    range: str
    cluster: Cluster


@dataclass(frozen=True, slots=True)
class ConsensusZone:
    zone_id: str
    symbol: str
    liquidated_side: LiquidatedSide  # short above the last close, long below
    price_lo: float
    price_hi: float
    peak_price: float  # share-weighted mean of member peaks
    models: tuple[int, ...]
    ranges: tuple[str, ...]
    n_clusters: int
    mean_share: float
    consensus_score: float
    has_magnet: bool
    distance_pct: float


def build_zones(
    symbol: str,
    clusters: Sequence[SourcedCluster],
    *,
    last_close: float,
    atr: float,
    models_available: int,
    ranges_available: int,
    tolerance_atr: float = 0.25,
) -> list[ConsensusZone]:
    """Group overlapping clusters into zones, strongest consensus first."""
    if not clusters:
        return []
    tolerance = tolerance_atr * atr
    ordered = sorted(clusters, key=lambda s: s.cluster.price_lo)
    groups: list[list[SourcedCluster]] = []
    group_hi = float("-inf")
    for item in ordered:  # sweep line over bands sorted by their low edge
        if groups and item.cluster.price_lo <= group_hi + tolerance:
            groups[-1].append(item)
            group_hi = max(group_hi, item.cluster.price_hi)
        else:
            groups.append([item])
            group_hi = item.cluster.price_hi
    zones = [
        _zone(symbol, group, last_close, models_available, ranges_available) for group in groups
    ]
    return sorted(zones, key=lambda z: (-z.consensus_score, -z.mean_share))


def _zone(
    symbol: str,
    group: list[SourcedCluster],
    last_close: float,
    models_available: int,
    ranges_available: int,
) -> ConsensusZone:
    models = tuple(sorted({g.model for g in group}))
    ranges = tuple(sorted({g.range for g in group}, key=RANGES.index))  # by length, as shown
    weights = [g.cluster.share for g in group]
    total = sum(weights) or 1.0
    peak = sum(g.cluster.peak_price * w for g, w in zip(group, weights, strict=True)) / total
    score = (len(models) / max(models_available, 1)) * (
        0.5 + 0.5 * len(ranges) / max(ranges_available, 1)
    )
    lo = min(g.cluster.price_lo for g in group)
    hi = max(g.cluster.price_hi for g in group)
    key = f"{symbol}|{lo:.10g}|{hi:.10g}|{','.join(sorted(g.cluster.cluster_id for g in group))}"
    return ConsensusZone(
        zone_id=hashlib.sha256(key.encode()).hexdigest()[:24],
        symbol=symbol,
        liquidated_side="short" if peak > last_close else "long",
        price_lo=lo,
        price_hi=hi,
        peak_price=peak,
        models=models,
        ranges=ranges,
        n_clusters=len(group),
        mean_share=total / len(group),
        consensus_score=min(1.0, score),
        has_magnet=any(g.cluster.is_magnet for g in group),
        distance_pct=(peak - last_close) / last_close * 100,
    )
