"""Known answers for imbalance, baselines and the radar's scores, tiers and ranking order."""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from matplotlib import image as mpimg

from helix_pipelines.analytics.baselines import Baseline, RunningStats
from helix_pipelines.analytics.clusters import Cluster
from helix_pipelines.analytics.consensus import ConsensusZone
from helix_pipelines.analytics.imbalance import (
    MajorCluster,
    SnapshotImbalance,
    major_clusters,
    side_totals,
)
from helix_pipelines.analytics.radar import (
    RadarParams,
    SymbolInputs,
    build_radar,
    weighted_imbalance,
)
from helix_pipelines.pictures.radar import WIDTH_PX, radar_png

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
KEY = ("coin", "", "BTC", 1, "24h")


def test_imbalance_counts_levels_strictly_above_and_below_the_close() -> None:
    prices = np.array([98.0, 99.0, 100.0, 101.0, 102.0])
    values = np.array([10.0, 20.0, 1_000.0, 30.0, 40.0])  # the level at the close is neither
    totals = side_totals(prices, values, last_close=100.0)
    assert (totals.usd_above, totals.usd_below) == (70.0, 30.0)
    assert totals.imbalance == pytest.approx(0.7)
    between = side_totals(prices, values, last_close=100.5)
    assert (between.usd_above, between.usd_below) == (70.0, 1_030.0)
    empty = side_totals(prices, np.zeros(5), last_close=100.0)
    assert empty.imbalance is None


def cluster(side: str, usd: float, distance_pct: float) -> Cluster:
    peak = 100 * (1 + distance_pct / 100)
    return Cluster(f"{side}{usd}", side, peak, peak, peak, 0.1, 3.0, distance_pct, 1.0, usd)  # type: ignore[arg-type]


def test_major_cluster_is_the_largest_usd_per_side_with_unsigned_distance() -> None:
    majors = major_clusters(
        [cluster("short", 5e6, 2.0), cluster("short", 9e6, 4.0), cluster("long", 3e6, -1.5)]
    )
    assert majors == {
        "short": MajorCluster("short", 9e6, 4.0),
        "long": MajorCluster("long", 3e6, 1.5),
    }
    assert major_clusters([]) == {}


def test_running_stats_match_the_batch_mean_and_sample_std() -> None:
    values = [6.2, 6.9, 7.4, 6.1, 8.0, 7.7, 6.6, 7.1, 6.8, 7.3, 7.0]
    stats = RunningStats()
    for v in values:
        stats = stats.add(v)
    assert stats.count == 11
    assert stats.mean == pytest.approx(np.mean(values))
    assert stats.std == pytest.approx(np.std(values, ddof=1))
    assert stats.z(9.0) == pytest.approx((9.0 - np.mean(values)) / np.std(values, ddof=1))
    assert stats.z(9.0, min_samples=12) is None  # too thin to say
    assert RunningStats(20, 5.0, 0.0).z(6.0) is None  # flat: no spread to measure against


def test_baseline_folds_each_snapshot_once_and_compares_before_folding() -> None:
    baseline = Baseline(KEY)
    for hour in range(10):
        baseline = baseline.fold(
            NOW + timedelta(hours=hour),
            [MajorCluster("short", 10 ** (6 + hour % 2), 2.0 + hour % 3)],
        )
    assert baseline.samples == 10
    assert baseline.fold(NOW + timedelta(hours=9), [MajorCluster("long", 1e9, 1.0)]) is baseline
    assert baseline.fold(NOW, [MajorCluster("long", 1e9, 1.0)]) is baseline  # older: held
    sizes = [6 + h % 2 for h in range(10)]  # log10 USD
    comparison = baseline.compare(MajorCluster("short", 1e8, 2.0))
    assert comparison.size_z == pytest.approx((8 - np.mean(sizes)) / np.std(sizes, ddof=1))
    distances = [2.0 + h % 3 for h in range(10)]
    assert comparison.distance_z == pytest.approx(
        (2.0 - np.mean(distances)) / np.std(distances, ddof=1)
    )
    assert Baseline.from_row(baseline.as_row()) == baseline


def snapshot(
    symbol: str,
    range_: str,
    cumulative: float | None,
    live: float | None,
    *,
    age_hours: float = 0.5,
    size_z_above: float | None = None,
    size_z_below: float | None = None,
) -> SnapshotImbalance:
    return SnapshotImbalance(
        snapshot_id=f"{symbol}-{range_}",
        fetched_at=NOW - timedelta(hours=age_hours),
        scope="coin",
        exchange="",
        symbol=symbol,
        model=1,
        range=range_,
        last_close=100.0,
        cumulative_usd_above=0.0,
        cumulative_usd_below=0.0,
        cumulative_imbalance=cumulative,
        live_usd_above=0.0,
        live_usd_below=0.0,
        live_imbalance=live,
        major_above_usd=None,
        major_above_distance_pct=None,
        major_below_usd=None,
        major_below_distance_pct=None,
        size_z_above=size_z_above,
        size_z_below=size_z_below,
        distance_z_above=None,
        distance_z_below=None,
        baseline_samples=0,
    )


def zone(
    symbol: str, lo: float, hi: float, consensus: float, price: float = 100.0
) -> ConsensusZone:
    peak = (lo + hi) / 2
    side = "short" if peak > price else "long"
    return ConsensusZone(
        f"{symbol}{lo}", symbol, side, lo, hi, peak, (1, 2), ("24h",), 2, 0.2, consensus, False,  # type: ignore[arg-type]
        (peak - price) / price * 100,
    )  # fmt: skip


def test_weighted_imbalance_weighs_ranges_and_blends_live() -> None:
    params = RadarParams()
    snaps = [snapshot("X", "12h", 0.8, 0.6), snapshot("X", "1y", 0.2, None)]
    # 12h: 0.5 x 0.8 + 0.5 x 0.6 = 0.7 at weight 1.0; 1y: cumulative only, 0.2 at weight 0.2
    assert weighted_imbalance(snaps, params) == pytest.approx((0.7 * 1.0 + 0.2 * 0.2) / 1.2)
    assert weighted_imbalance([snapshot("X", "24h", None, None)], params) is None


def test_radar_scores_tiers_and_ranks_every_universe_symbol() -> None:
    params = RadarParams()
    inputs = [
        # Leans hard above, a major zone 0.3% above: HOT, pointing up.
        SymbolInputs(
            "AAA",
            [snapshot("AAA", "12h", 0.9, 0.9, size_z_above=2.0)],
            [zone("AAA", 100.3, 100.6, 0.9), zone("AAA", 97.0, 98.0, 0.6)],
            100.0,
            0.5,
        ),
        # Balanced (leans up by less than the dead band); nearest major zone 1.5% below: WARM,
        # pointing down toward the nearest, with no imbalance credit (its lean is upward).
        SymbolInputs(
            "BBB",
            [snapshot("BBB", "24h", 0.52, 0.5)],
            [zone("BBB", 97.0, 98.5, 0.5), zone("BBB", 103.0, 104.0, 0.7)],
            100.0,
            1.0,
        ),
        # Leans below but has no major zone below: points at the zone above, 5% away, SAFE.
        SymbolInputs(
            "CCC", [snapshot("CCC", "24h", 0.1, 0.1)], [zone("CCC", 105.0, 106.0, 1.0)], 100.0, 2.0
        ),
        # Only a minor zone: excluded.
        SymbolInputs(
            "DDD", [snapshot("DDD", "24h", 0.9, 0.9)], [zone("DDD", 100.2, 100.4, 0.3)], 100.0, 1.0
        ),
        # Heatmaps 7 hours old: excluded as stale.
        SymbolInputs(
            "EEE",
            [snapshot("EEE", "24h", 0.9, 0.9, age_hours=7)],
            [zone("EEE", 100.2, 100.4, 1.0)],
            100.0,
            1.0,
        ),
    ]
    radar = build_radar(inputs, ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"], now=NOW, params=params)
    by_symbol = {e.symbol: e for e in radar}
    assert [e.symbol for e in radar] == ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"]
    assert [e.rank for e in radar] == [1, 2, 3, None, None, None]
    assert [e.decile for e in radar[:3]] == [4, 7, 10]  # ceil(10 x rank / 3)

    a = by_symbol["AAA"]
    assert (a.tier, a.direction, a.target_price) == ("HOT", "up", 100.3)
    assert a.imbalance_component == pytest.approx(0.8)
    assert a.nearest_distance_pct == pytest.approx(0.3)
    assert a.above_distance_atr == pytest.approx(0.6)  # 0.3 / ATR 0.5
    assert a.below_distance_pct == pytest.approx(2.0)
    assert a.size_component == pytest.approx(1.0)  # 0.5 + 2 / 4
    expected_a = 0.35 * 0.8 + 0.35 / (1 + 0.3) + 0.15 * 1.0 + 0.15 * 0.9
    assert a.score == pytest.approx(expected_a)

    b = by_symbol["BBB"]
    assert (b.tier, b.direction, b.target_price) == ("WARM", "down", 98.5)
    assert b.size_component == 0.5  # no baseline yet: neutral
    expected_b = 0.35 * 0.0 + 0.35 / (1 + 1.5) + 0.15 * 0.5 + 0.15 * 0.5
    assert b.score == pytest.approx(expected_b)

    c = by_symbol["CCC"]
    assert (c.tier, c.direction, c.target_price, c.below_price) == ("SAFE", "up", 105.0, None)
    assert c.imbalance_component == 0.0  # it leans down, away from its only target

    assert by_symbol["DDD"].excluded_reason == "no major zone (consensus >= 0.5) on either side"
    assert by_symbol["EEE"].excluded_reason == "stale: newest heatmap 7.0 h old (limit 6 h)"
    assert by_symbol["EEE"].data_age_seconds == pytest.approx(7 * 3600)
    assert by_symbol["FFF"].excluded_reason == "no loaded heatmap"
    assert by_symbol["FFF"].snapshots == 0


def test_price_inside_a_band_is_zero_distance_and_hot() -> None:
    zones = [zone("AAA", 99.5, 101.5, 0.8)]
    inputs = [SymbolInputs("AAA", [snapshot("AAA", "24h", 0.5, 0.5)], zones, 100.0, 1.0)]
    (entry,) = build_radar(inputs, [], now=NOW)
    assert entry.nearest_distance_pct == 0.0
    assert (entry.tier, entry.proximity_component) == ("HOT", 1.0)


def test_tiers_follow_configured_limits_and_bad_params_are_refused() -> None:
    params = RadarParams(hot_pct=0.2, watch_pct=0.4, safe_pct=3.0)
    assert [params.tier(d) for d in (0.1, 0.3, 2.9, 3.0)] == ["HOT", "WATCH", "WARM", "SAFE"]
    with pytest.raises(ValueError, match="hot_pct <= watch_pct <= safe_pct"):
        RadarParams(hot_pct=2.0, watch_pct=1.0)
    with pytest.raises(ValueError, match="score weights"):
        RadarParams(weight_imbalance=0, weight_proximity=0, weight_size=0, weight_consensus=0)
    assert not math.isnan(RadarParams().proximity_half_pct)


def test_the_radar_chart_decodes_at_its_documented_size() -> None:
    zones = [zone("AAA", 100.3, 100.6, 0.9)]
    inputs = [SymbolInputs("AAA", [snapshot("AAA", "24h", 0.9, 0.9)], zones, 100.0, 1.0)]
    entries = build_radar(inputs, ["ZZZ"], now=NOW)
    png = radar_png(entries, top=20)
    assert png.startswith(b"\x89PNG")
    pixels = mpimg.imread(io.BytesIO(png), format="png")
    assert pixels.shape[:2] == (140 + 28 * 1, WIDTH_PX)  # one ranked coin; ZZZ is excluded
