from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from helix_pipelines.analytics.outcomes import (
    consensus_bucket,
    hit_rates,
    score_clusters,
    score_signals,
)
from helix_pipelines.contracts.heatmaps import CANDLES_SCHEMA
from helix_pipelines.contracts.signals import SIGNALS_SCHEMA
from helix_pipelines.contracts.tables import CLUSTERS_SCHEMA

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
