"""Liquidation clusters: bands of adjacent price levels where liquidations stack up.

Detection on one profile (pure, no Dagster):
  1. Robust spread of the profile: 1.4826 x MAD around the median (std when MAD is 0, as in
     sparse profiles), so a few huge levels do not hide the others.
  2. Peaks: local maxima whose prominence (height above the higher of the two surrounding
     valleys) is at least `min_prominence` x spread.
  3. Band of a peak: the contiguous levels above the peak's half-prominence line.
  4. Bands closer than `merge_atr` x ATR (of the snapshot's candles) merge into one cluster.
Per cluster: whose positions it would liquidate (`liquidated_side`: short above the last close,
long below), price_lo / price_hi / peak_price, its USD and share of the profile total, z-score of the peak,
distance in % and in ATR. Flags: magnet (largest share on its side within
`magnet_max_distance_pct`) and swept (price traded through the band since the previous snapshot
and its share fell).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from helix_pipelines.contracts.vocabulary import LiquidatedSide

MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True, slots=True)
class ClusterParams:
    min_prominence: float = 3.0  # in robust spreads
    merge_atr: float = 0.25  # bands closer than this many ATR merge
    magnet_max_distance_pct: float = 15.0


@dataclass(frozen=True, slots=True)
class Cluster:
    cluster_id: str
    liquidated_side: LiquidatedSide  # short above the last close, long below
    price_lo: float
    price_hi: float
    peak_price: float
    share: float
    z_score: float
    distance_pct: float
    distance_atr: float
    usd: float  # liquidation USD in the band (the share's numerator)
    is_magnet: bool = False
    is_swept: bool = False

    def overlaps(self, lo: float, hi: float, tolerance: float = 0.0) -> bool:
        return self.price_lo - tolerance <= hi and lo <= self.price_hi + tolerance


def robust_spread(values: np.ndarray) -> tuple[float, float]:
    """(median, spread) with spread = 1.4826 x MAD, or the standard deviation when MAD is 0."""
    median = float(np.median(values))
    spread = MAD_TO_SIGMA * float(np.median(np.abs(values - median)))
    if spread == 0:
        spread = float(values.std())
    return median, spread


def prominences(values: np.ndarray, peaks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(prominence, left base index, right base index) of each peak.

    A peak's base on each side is the lowest point before the profile rises above the peak (or
    the edge); its prominence is its height above the higher of the two bases.
    """
    n = len(values)
    result, left_bases, right_bases = [], [], []
    for peak in peaks:  # one loop per peak (a handful), not per level
        height = values[peak]
        left = peak
        i = peak
        while i > 0 and values[i - 1] <= height:
            i -= 1
            if values[i] < values[left]:
                left = i
        right = peak
        j = peak
        while j < n - 1 and values[j + 1] <= height:
            j += 1
            if values[j] < values[right]:
                right = j
        result.append(height - max(values[left], values[right]))
        left_bases.append(left)
        right_bases.append(right)
    return np.array(result), np.array(left_bases, dtype=int), np.array(right_bases, dtype=int)


def find_peaks(values: np.ndarray) -> np.ndarray:
    """Indexes of local maxima (a plateau counts once, at its first level)."""
    if len(values) < 3:
        return (
            np.flatnonzero(values == values.max())
            if len(values) and values.max() > 0
            else np.array([], int)
        )
    padded = np.concatenate(([-np.inf], values, [-np.inf]))
    rising = padded[1:-1] > padded[:-2]
    not_falling_after = padded[1:-1] >= padded[2:]
    candidates = np.flatnonzero(rising & not_falling_after)
    # A plateau peak must eventually fall, not rise again.
    keep = []
    for c in candidates:
        k = c
        while k + 1 < len(values) and values[k + 1] == values[c]:
            k += 1
        if k + 1 == len(values) or values[k + 1] < values[c]:
            keep.append(c)
    return np.array(keep, dtype=int)


def find_clusters(
    prices: np.ndarray,
    values: np.ndarray,
    *,
    last_close: float,
    atr: float,
    snapshot_id: str,
    params: ClusterParams = ClusterParams(),
) -> list[Cluster]:
    """Clusters of one profile (prices ascending on a regular grid)."""
    total = float(values.sum())
    if len(values) == 0 or total <= 0:
        return []
    median, spread = robust_spread(values)
    if spread <= 0:
        return []
    peaks = find_peaks(values)
    if len(peaks) == 0:
        return []
    prom, left_bases, right_bases = prominences(values, peaks)
    bands = []
    for peak, p, left_base, right_base in zip(peaks, prom, left_bases, right_bases, strict=True):
        if p < params.min_prominence * spread:
            continue
        line = values[peak] - p / 2
        lo = peak
        while lo > left_base and values[lo - 1] >= line:
            lo -= 1
        hi = peak
        while hi < right_base and values[hi + 1] >= line:
            hi += 1
        bands.append([lo, hi, peak])
    merged = _merge(bands, prices, values, tolerance=params.merge_atr * atr)
    clusters = [
        _cluster(prices, values, lo, hi, peak, total, median, spread, last_close, atr, snapshot_id)
        for lo, hi, peak in merged
    ]
    return flag_magnets(clusters, params.magnet_max_distance_pct)


def _merge(
    bands: list[list[int]], prices: np.ndarray, values: np.ndarray, tolerance: float
) -> list[list[int]]:
    merged: list[list[int]] = []
    for lo, hi, peak in sorted(bands):
        if merged and prices[lo] - prices[merged[-1][1]] <= tolerance:
            last = merged[-1]
            last[1] = max(last[1], hi)
            if values[peak] > values[last[2]]:
                last[2] = peak
        else:
            merged.append([lo, hi, peak])
    return merged


def _cluster(
    prices: np.ndarray,
    values: np.ndarray,
    lo: int,
    hi: int,
    peak: int,
    total: float,
    median: float,
    spread: float,
    last_close: float,
    atr: float,
    snapshot_id: str,
) -> Cluster:
    peak_price = float(prices[peak])
    key = f"{snapshot_id}|{peak_price:.10g}"
    return Cluster(
        cluster_id=hashlib.sha256(key.encode()).hexdigest()[:24],
        liquidated_side="short" if peak_price > last_close else "long",
        price_lo=float(prices[lo]),
        price_hi=float(prices[hi]),
        peak_price=peak_price,
        # A band holding the whole profile sums to the total in another order: clip the ulp.
        share=min(float(values[lo : hi + 1].sum() / total), 1.0),
        z_score=float((values[peak] - median) / spread),
        distance_pct=float((peak_price - last_close) / last_close * 100),
        distance_atr=float((peak_price - last_close) / atr) if atr > 0 else float("nan"),
        usd=float(values[lo : hi + 1].sum()),
    )


def flag_magnets(clusters: Sequence[Cluster], max_distance_pct: float) -> list[Cluster]:
    """Mark the largest-share cluster on each side within `max_distance_pct` of the last close."""
    flagged = [replace(c, is_magnet=False) for c in clusters]
    for side in ("short", "long"):
        near = [
            i
            for i, c in enumerate(flagged)
            if c.liquidated_side == side and abs(c.distance_pct) <= max_distance_pct
        ]
        if near:
            best = max(near, key=lambda i: flagged[i].share)
            flagged[best] = replace(flagged[best], is_magnet=True)
    return flagged


def flag_swept(
    clusters: Sequence[Cluster],
    previous: Sequence[Cluster],
    lows_since: np.ndarray,
    highs_since: np.ndarray,
) -> list[Cluster]:
    """Mark clusters that price traded through since the previous snapshot and that shrank.

    `previous`: the clusters of the previous snapshot of the same symbol, model, range and
    profile; `lows_since` / `highs_since`: candles after that snapshot.
    """
    if not len(lows_since):
        return list(clusters)
    result = []
    for cluster in clusters:
        traded = bool(
            np.any((lows_since <= cluster.peak_price) & (highs_since >= cluster.peak_price))
        )
        before = [p for p in previous if p.overlaps(cluster.price_lo, cluster.price_hi)]
        shrank = bool(before) and cluster.share < max(p.share for p in before)
        result.append(replace(cluster, is_swept=traded and shrank))
    return result
