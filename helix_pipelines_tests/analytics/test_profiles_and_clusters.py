from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from helix_pipelines.analytics.clusters import (
    Cluster,
    ClusterParams,
    find_clusters,
    find_peaks,
    flag_magnets,
    flag_swept,
    prominences,
    robust_spread,
)
from helix_pipelines.analytics.consensus import SourcedCluster, build_zones
from helix_pipelines.analytics.profiles import level_grid, snapshot_profile
from helix_pipelines.contracts.columns import UTC_TIME
from helix_pipelines.heatmaps.profile import profile_of_cells

T0 = datetime(2026, 11, 25, tzinfo=UTC)


def cells(rows: list[tuple[int, float, float]]) -> pl.DataFrame:
    """(candle index, price, usd) -> cells frame with 5-minute candles."""
    return pl.DataFrame(
        {
            "x_index": [i for i, _, _ in rows],
            "candle_ts": [T0 + timedelta(minutes=5 * i) for i, _, _ in rows],
            "price": [p for _, p, _ in rows],
            "liq_usd": [u for _, _, u in rows],
        },
        schema={
            "x_index": pl.Int32,
            "candle_ts": UTC_TIME,
            "price": pl.Float64,
            "liq_usd": pl.Float64,
        },
    )


def test_profile_sums_per_level_and_keeps_the_live_column() -> None:
    levels = profile_of_cells(
        cells([(0, 100.0, 10.0), (1, 100.0, 5.0), (1, 102.0, 20.0), (0, 103.0, 15.0)])
    )
    # Stored: one row per level with cells.
    assert levels.rows() == [(100.0, 2, 15.0, 5.0), (102.0, 1, 20.0, 20.0), (103.0, 1, 15.0, 0.0)]
    profile = snapshot_profile(levels)
    # The level 101 is missing from the cells but exists on the regular axis.
    assert list(profile.prices) == [100.0, 101.0, 102.0, 103.0]
    assert list(profile.cumulative) == [15.0, 0.0, 20.0, 15.0]
    assert list(profile.live) == [5.0, 0.0, 20.0, 0.0]  # candle 1 only
    assert list(profile.cumulative_shares) == [0.3, 0.0, 0.4, 0.3]
    assert list(profile.live_shares) == [0.2, 0.0, 0.8, 0.0]


def test_the_live_column_is_the_last_x_even_when_x_is_no_candle_index() -> None:
    frame = cells([(0, 100.0, 10.0), (7, 100.0, 5.0), (7, 102.0, 20.0), (3, 103.0, 15.0)])
    levels = profile_of_cells(frame.with_columns(pl.lit(None, UTC_TIME).alias("candle_ts")))
    profile = snapshot_profile(levels)
    assert list(profile.live) == [5.0, 0.0, 20.0, 0.0]  # column 7 only
    assert list(profile.cumulative) == [15.0, 0.0, 20.0, 15.0]


def test_irregular_levels_are_kept_as_they_are() -> None:
    grid, index = level_grid(np.array([1.0, 1.001, 50.0, 100.0]))
    assert list(grid) == [1.0, 1.001, 50.0, 100.0]
    assert list(index) == [0, 1, 2, 3]


def test_robust_spread_uses_mad_and_falls_back_to_std() -> None:
    assert robust_spread(np.array([1.0, 2.0, 3.0, 4.0, 100.0])) == (3.0, 1.4826)
    median, spread = robust_spread(np.array([0.0, 0.0, 0.0, 4.0]))
    assert (median, spread) == (0.0, pytest.approx(np.std([0, 0, 0, 4])))


def test_peaks_and_prominences_by_hand() -> None:
    values = np.array([0, 3, 1, 5, 5, 2, 4, 0], dtype=float)
    peaks = find_peaks(values)
    assert list(peaks) == [1, 3, 6]  # the 5-5 plateau counts once, at its first level
    prom, left, right = prominences(values, peaks)
    # peak 1 (3): bases 0 (left edge) and 2 (1 before the 5) -> 3 - max(0, 1) = 2
    # peak 3 (5): highest, bases 0 and 7 -> 5 - 0 = 5
    # peak 6 (4): left base 5 (2, before the higher 5), right base 7 (0) -> 4 - 2 = 2
    assert list(prom) == [2.0, 5.0, 2.0]
    assert list(left) == [0, 0, 5]
    assert list(right) == [2, 7, 7]


def two_bumps() -> tuple[np.ndarray, np.ndarray]:
    """Levels 100..129; a bump 6/12/6 at 105-107 and a plateau 13/13 at 120-121."""
    prices = np.arange(100.0, 130.0)
    values = np.zeros(30)
    values[5:8] = [6, 12, 6]
    values[20:22] = [13, 13]
    return prices, values


def test_a_profile_with_two_known_bumps_yields_exactly_those_clusters() -> None:
    prices, values = two_bumps()
    clusters = find_clusters(prices, values, last_close=112.0, atr=2.0, snapshot_id="s1")

    # Median 0, MAD 0 -> spread = std: mean 50/30, mean square 554/30 -> std 3.961;
    # prominences 12 and 13 both exceed 3 x 3.961 = 11.88.
    assert [(c.price_lo, c.price_hi, c.peak_price) for c in clusters] == [
        (105.0, 107.0, 106.0),  # half-prominence line 6: levels 105..107
        (120.0, 121.0, 120.0),  # line 6.5: the plateau, peak at its first level
    ]
    low, high = clusters
    assert (low.liquidated_side, high.liquidated_side) == ("long", "short")
    assert low.share == pytest.approx(24 / 50)
    assert high.share == pytest.approx(26 / 50)
    assert low.distance_pct == pytest.approx((106 - 112) / 112 * 100)
    assert low.distance_atr == pytest.approx(-3.0)
    assert high.distance_atr == pytest.approx(4.0)
    assert float(np.std(values)) == pytest.approx(3.961, abs=1e-3)
    assert low.z_score == pytest.approx(12 / float(np.std(values)))
    assert low.is_magnet
    assert high.is_magnet


def test_a_bump_below_the_prominence_threshold_is_not_a_cluster() -> None:
    prices, values = two_bumps()
    clusters = find_clusters(
        prices, values, last_close=112.0, atr=2.0, snapshot_id="s1",
        params=ClusterParams(min_prominence=3.1),  # 3.1 x 3.961 = 12.28: only the 13-plateau stays
    )  # fmt: skip
    assert [c.peak_price for c in clusters] == [120.0]


def test_bands_closer_than_the_atr_tolerance_merge() -> None:
    prices = np.arange(100.0, 130.0)
    values = np.zeros(30)
    values[5:8] = [6, 12, 6]
    values[9:11] = [13, 13]  # gap of one level (108) between the bands
    apart = find_clusters(prices, values, last_close=120.0, atr=2.0, snapshot_id="s")
    merged = find_clusters(
        prices,
        values,
        last_close=120.0,
        atr=2.0,
        snapshot_id="s",
        params=ClusterParams(merge_atr=1.0),
    )
    assert len(apart) == 2  # 109 - 107 = 2 > 0.25 x 2
    assert [(c.price_lo, c.price_hi, c.peak_price) for c in merged] == [(105.0, 110.0, 109.0)]
    assert merged[0].share == pytest.approx(1.0)


def cluster(peak: float, share: float, side: str, distance_pct: float) -> Cluster:
    return Cluster(
        f"c{peak}", side, peak - 1, peak + 1, peak, share, 5.0, distance_pct, 1.0, share * 1e6
    )


def test_magnet_is_the_largest_share_per_side_within_the_distance() -> None:
    flagged = flag_magnets(
        [
            cluster(110, 0.2, "short", 10.0),
            cluster(120, 0.5, "short", 20.0),  # biggest, but too far
            cluster(105, 0.3, "short", 5.0),
            cluster(95, 0.1, "long", -5.0),
        ],
        max_distance_pct=15.0,
    )
    assert [c.is_magnet for c in flagged] == [False, False, True, True]


def test_swept_needs_price_through_the_band_and_a_smaller_share() -> None:
    previous = [cluster(110, 0.4, "short", 10.0), cluster(90, 0.3, "long", -10.0)]
    current = [cluster(110, 0.1, "short", 10.0), cluster(90, 0.35, "long", -10.0)]
    lows, highs = np.array([95.0, 105.0]), np.array([100.0, 111.0])  # traded through 110 only
    flagged = flag_swept(current, previous, lows, highs)
    assert [c.is_swept for c in flagged] == [True, False]
    through_both = flag_swept(current, previous, np.array([85.0]), np.array([115.0]))
    assert [c.is_swept for c in through_both] == [True, False]  # 90 grew: not swept


def test_consensus_groups_overlapping_bands_and_scores_agreement() -> None:
    def at(lo: float, hi: float, share: float = 0.2) -> Cluster:
        return Cluster(f"{lo}", "short", lo, hi, (lo + hi) / 2, share, 5.0, 1.0, 1.0, share * 1e6)

    clusters = [
        SourcedCluster(1, "3d", at(110, 112)),
        SourcedCluster(2, "3d", at(111, 113)),
        SourcedCluster(3, "7d", at(112.5, 114, 0.4)),
        SourcedCluster(1, "7d", at(130, 131)),
    ]
    zones = build_zones(
        "BTC", clusters, last_close=100.0, atr=2.0, models_available=3, ranges_available=2
    )
    strong, lone = zones
    assert (strong.price_lo, strong.price_hi) == (110.0, 114.0)
    assert strong.models == (1, 2, 3)
    assert strong.ranges == ("3d", "7d")
    assert strong.consensus_score == pytest.approx(1.0)  # 3/3 x (0.5 + 0.5 x 2/2)
    assert strong.peak_price == pytest.approx((111 * 0.2 + 112 * 0.2 + 113.25 * 0.4) / 0.8)
    assert lone.consensus_score == pytest.approx((1 / 3) * (0.5 + 0.5 * 1 / 2))
    assert lone.liquidated_side == "short"


def test_a_cluster_holding_the_whole_profile_has_a_share_of_one_not_more() -> None:
    """Summed in another order, a band that holds every liquidation exceeds the total by one
    ulp (1.0000000000000002 for these values): the share is clipped, so the check passes."""
    prices = np.arange(1.0, 41.0)
    values = np.zeros(40)
    values[23:27] = [84939.5902, 91067.3246, 84520.132, 96691.9082]
    assert values[23:27].sum() / values.sum() > 1  # the float fact the clip is for
    (cluster,) = find_clusters(prices, values, last_close=10.0, atr=1.0, snapshot_id="s1")
    assert cluster.share == 1.0
