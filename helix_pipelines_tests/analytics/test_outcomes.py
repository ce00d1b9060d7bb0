from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from helix_pipelines.analytics.outcomes import (
    consensus_bucket,
    hit_rates,
    radar_hit_rates,
    score_clusters,
    score_radar,
    score_signals,
    win_rate_for,
    win_rates,
)
from helix_pipelines.contracts.heatmaps import CANDLES_SCHEMA
from helix_pipelines.contracts.signals import SIGNALS_SCHEMA
from helix_pipelines.contracts.tables import CLUSTERS_SCHEMA, OUTCOMES_SCHEMA, RADAR_SCHEMA

T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=3)


def candles(
    path: list[tuple[float, float]], range_: str = "3d", symbol: str = "BTC"
) -> pl.DataFrame:
    """Hourly candles from T0 with the given (low, high)."""
    rows = [
        (
            "coin",
            "",
            symbol,
            range_,
            T0 + timedelta(hours=i),
            (lo + hi) / 2,
            hi,
            lo,
            (lo + hi) / 2,
            1.0,
        )
        for i, (lo, hi) in enumerate(path)
    ]
    return pl.DataFrame(rows, schema=CANDLES_SCHEMA, orient="row")


def cluster_row(
    cluster_id: str, peak: float, close: float = 100.0, score: float | None = 0.8
) -> dict:
    row = {name: None for name in CLUSTERS_SCHEMA}
    row.update(
        cluster_id=cluster_id, snapshot_id="s", fetched_at=T0, scope="coin", exchange="",
        symbol="BTC", model=2, range="3d", profile="cumulative", side="short" if peak > close else "long",
        price_lo=peak - 1, price_hi=peak + 1, peak_price=peak, share=0.2, z_score=4.0,
        distance_pct=0.0, distance_atr=0.0, is_magnet=False, is_swept=False, last_close=close,
        atr=1.0, consensus_score=score,
    )  # fmt: skip
    return row


def test_cluster_touch_time_and_adverse_excursion_by_hand() -> None:
    path = [(99, 101), (97, 100), (100, 104), (103, 106)]  # reaches 105 in hour 3
    clusters = pl.DataFrame(
        [cluster_row("up", 105.0), cluster_row("far", 150.0)], schema=CLUSTERS_SCHEMA
    )
    outcomes = score_clusters(clusters, candles(path), horizon_hours=24, now=NOW).sort("subject_id")

    far, up = outcomes.rows(named=True)
    assert up["touched"] is True
    assert up["hours_to_touch"] == 3.0
    assert up["max_adverse_pct"] == pytest.approx(3.0)  # dipped to 97 from a 100 close first
    assert up["consensus_bucket"] == "high"
    assert far["touched"] is False  # horizon (24 h) passed without reaching 150
    assert far["hours_to_touch"] is None


def test_open_subjects_wait_for_their_horizon() -> None:
    clusters = pl.DataFrame([cluster_row("far", 150.0)], schema=CLUSTERS_SCHEMA)
    early = score_clusters(
        clusters, candles([(99, 101)]), horizon_hours=24, now=T0 + timedelta(hours=2)
    )
    assert early.height == 0


def signal_row(side: str, entry: float, stop: float, take: float) -> dict:
    row = {name: None for name in SIGNALS_SCHEMA}
    row.update(
        signal_id=f"{side}-{take}", schema_version=1, strategy_version="t", created_at=T0, as_of=T0,
        symbol="BTC", side=side, entry=entry, stop_loss=stop, take_profit=take, reward_to_risk=2.0,
        qty=1.0, notional_usd=entry, leverage=1, risk_usd=1.0, risk_fraction=0.001,
        liquidation_price=1.0, consensus_score=0.6, target_zone_id="z1", stop_zone_id="z2",
    )  # fmt: skip
    return row


def test_signal_hits_take_profit_before_stop() -> None:
    path = [(99, 101), (98, 100), (100, 106)]
    signals = pl.DataFrame([signal_row("long", 100.0, 95.0, 105.0)], schema=SIGNALS_SCHEMA)
    (outcome,) = score_signals(signals, candles(path), horizon_hours=24, now=NOW).rows(named=True)
    assert outcome["touched"] is True
    assert outcome["hours_to_touch"] == 2.0
    assert outcome["max_adverse_pct"] == pytest.approx(2.0)
    assert outcome["consensus_bucket"] == "medium"


def test_a_candle_spanning_stop_and_target_counts_as_the_stop() -> None:
    signals = pl.DataFrame(
        [signal_row("short", 100.0, 104.0, 96.0), signal_row("long", 100.0, 95.0, 150.0)],
        schema=SIGNALS_SCHEMA,
    )
    path = [(99, 101), (95, 105)]
    rows = {
        r["subject_id"]: r
        for r in score_signals(signals, candles(path), horizon_hours=24, now=NOW).rows(named=True)
    }
    assert rows["short-96.0"]["touched"] is False
    assert rows["short-96.0"]["max_adverse_pct"] == pytest.approx(5.0)
    assert rows["long-150.0"]["touched"] is False  # stopped at 95


def test_signals_use_the_finest_candles_of_the_symbol() -> None:
    coarse = candles([(99, 101), (99, 101)], range_="1y")
    fine = candles([(99, 101), (104, 106)], range_="12h")
    signals = pl.DataFrame([signal_row("long", 100.0, 90.0, 105.0)], schema=SIGNALS_SCHEMA)
    (outcome,) = score_signals(signals, pl.concat([coarse, fine]), horizon_hours=24, now=NOW).rows(
        named=True
    )
    assert outcome["touched"] is True


def test_hit_rates_by_model_range_and_consensus() -> None:
    clusters = pl.DataFrame(
        [cluster_row("a", 105.0), cluster_row("b", 150.0), cluster_row("c", 104.0, score=0.3)],
        schema=CLUSTERS_SCHEMA,
    )
    path = [(99, 101), (100, 106)]
    rates = hit_rates(score_clusters(clusters, candles(path), horizon_hours=24, now=NOW))
    assert rates.select("consensus_bucket", "n", "hit_rate").rows() == [
        ("high", 2, 0.5),
        ("low", 1, 1.0),
    ]
    assert [consensus_bucket(s) for s in (None, 0.2, 0.5, 0.75)] == [
        "none",
        "low",
        "medium",
        "high",
    ]


def test_a_level_gapped_through_counts_as_touched() -> None:
    clusters = pl.DataFrame([cluster_row("gap", 102.0)], schema=CLUSTERS_SCHEMA)
    path = [(103, 104), (104, 106)]  # opened beyond 102 and never traded back down to it
    (outcome,) = score_clusters(clusters, candles(path), horizon_hours=24, now=NOW).rows(named=True)
    assert outcome["touched"] is True
    assert outcome["hours_to_touch"] == 0.0


def test_a_signal_without_any_later_candle_is_scored_untouched_not_a_crash() -> None:
    signals = pl.DataFrame([signal_row("long", 100.0, 95.0, 105.0)], schema=SIGNALS_SCHEMA)
    later = T0 + timedelta(days=2)
    signals = signals.with_columns(pl.lit(later).cast(signals["as_of"].dtype).alias("as_of"))
    (outcome,) = score_signals(
        signals, candles([(99, 101)]), horizon_hours=24, now=NOW + timedelta(days=2)
    ).rows(named=True)
    assert outcome["touched"] is False
    assert outcome["max_adverse_pct"] == 0.0


def radar_row(symbol: str, target: float, rank: int, decile: int, tier: str, at: datetime) -> dict:
    row = {name: None for name in RADAR_SCHEMA}
    row.update(
        refreshed_at=at, symbol=symbol, rank=rank, decile=decile, tier=tier, score=0.5,
        direction="up" if target > 100 else "down", target_price=target, last_price=100.0,
        consensus_component=0.8, snapshots=3,
    )  # fmt: skip
    return row


def test_radar_entries_are_judged_only_on_candles_after_their_refresh() -> None:
    # Hour 1 reaches 103 (before the refresh at hour 2), then price stays below it: the radar's
    # target was touched before it was ranked, which is no outcome of the ranking.
    path = [(99, 101), (100, 103), (99, 101), (98, 100), (99, 102)]
    at = T0 + timedelta(hours=2)
    radar = pl.DataFrame(
        [
            radar_row("BTC", 103.0, 1, 1, "WATCH", at),
            radar_row("BTC", 98.0, 2, 6, "HOT", at + timedelta(minutes=1)),
        ],
        schema=RADAR_SCHEMA,
    )
    open_now = score_radar(radar, candles(path), horizon_hours=24, now=T0 + timedelta(hours=5))
    (down,) = open_now.rows(named=True)  # 103 untouched after the refresh: still open
    assert down["touched"] is True
    assert down["hours_to_touch"] == pytest.approx(59 / 60)  # hour 3's low, from 02:01
    assert (down["radar_rank"], down["radar_decile"], down["radar_tier"]) == (2, 6, "HOT")
    assert down["subject_id"] == f"BTC@{(at + timedelta(minutes=1)).isoformat()}"
    decided = score_radar(radar, candles(path), horizon_hours=24, now=NOW).sort("radar_rank")
    up = decided.row(0, named=True)
    assert up["touched"] is False  # the hour-1 high at 103 came before the ranking
    assert up["max_adverse_pct"] == pytest.approx(2.0)  # the low of 98 while it waited
    assert up["observed_from"] == at


def test_hit_rates_by_radar_decile_and_tier() -> None:
    at = T0 + timedelta(hours=1)
    radar = pl.DataFrame(
        [
            radar_row("BTC", 101.5, 1, 1, "HOT", at),
            radar_row("BTC", 110.0, 9, 10, "SAFE", at + timedelta(minutes=1)),
            radar_row("BTC", 101.8, 1, 1, "HOT", at + timedelta(minutes=2)),
        ],
        schema=RADAR_SCHEMA,
    )
    path = [(99, 101), (100, 101.6), (99, 101)]
    rates = radar_hit_rates(score_radar(radar, candles(path), horizon_hours=24, now=NOW))
    assert rates.select("subject_kind", "radar_tier", "radar_decile", "n", "hit_rate").rows() == [
        ("radar", "HOT", 1, 2, 0.5),
        ("radar", "SAFE", 10, 1, 0.0),
    ]


def test_the_kelly_win_rate_comes_from_enough_signal_outcomes_or_the_prior() -> None:
    def outcome(i: int, tier: str | None, touched: bool) -> dict:
        row = {name: None for name in OUTCOMES_SCHEMA}
        row.update(subject_kind="signal", subject_id=f"s{i}", symbol="BTC", consensus_bucket="high",
                   level_price=1.0, observed_from=T0, horizon_hours=24.0, touched=touched,
                   evaluated_at=NOW, radar_tier=tier)  # fmt: skip
        return row

    rows = [outcome(i, "HOT", i % 4 != 0) for i in range(40)]  # 30 of 40 won
    rows += [outcome(100 + i, "SAFE", i % 2 == 0) for i in range(10)]  # 5 of 10
    rates = win_rates(pl.DataFrame(rows, schema=OUTCOMES_SCHEMA))
    assert rates == {None: (50, 0.7), "HOT": (40, 0.75), "SAFE": (10, 0.5)}
    assert win_rate_for("HOT", rates, 0.5, 30) == (0.75, "hit rate 75% over 40 HOT-tier signals")
    assert win_rate_for("SAFE", rates, 0.5, 30) == (0.7, "hit rate 70% over 50 signals")
    assert win_rate_for("WATCH", rates, 0.5, 60)[0] == 0.5
    assert win_rate_for(None, {}, 0.45, 30) == (0.45, "prior 45% (fewer than 30 outcomes)")
