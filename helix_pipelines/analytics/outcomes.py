"""Outcomes: did past clusters and signals deliver? Scored against the candles that followed.

For a cluster: was its peak price touched within the horizon after the snapshot, how soon, and
how far price first moved the other way (maximum adverse excursion, % of the close at the time).
For a signal: was the take-profit reached before the stop within the horizon, how soon, and its
maximum adverse excursion from entry until exit. Subjects whose horizon has not passed and that
were not touched yet are left for a later run. Hit rates by model, range and consensus level say
which models deserve trust.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from helix_pipelines.contracts.tables import OUTCOMES_SCHEMA
from helix_pipelines.contracts.vocabulary import RANGES

_US_PER_HOUR = 3_600_000_000


def consensus_bucket(score: float | None) -> str:
    if score is None or np.isnan(score):
        return "none"
    if score >= 0.75:
        return "high"
    return "medium" if score >= 0.5 else "low"


def _series(candles: pl.DataFrame) -> dict[tuple[str, ...], tuple[np.ndarray, ...]]:
    """(ts in microseconds, low, high) per (scope, exchange, symbol, range), sorted by time."""
    result = {}
    for key, frame in (
        candles.sort("ts")
        .partition_by(["scope", "exchange", "symbol", "range"], as_dict=True)
        .items()
    ):
        result[tuple(str(k) for k in key)] = (
            frame["ts"].dt.epoch("us").to_numpy(),
            frame["low"].to_numpy(),
            frame["high"].to_numpy(),
        )
    return result


def _window(ts: np.ndarray, start_us: int, end_us: int) -> slice:
    return slice(
        int(np.searchsorted(ts, start_us, "left")), int(np.searchsorted(ts, end_us, "left"))
    )


def score_clusters(
    clusters: pl.DataFrame, candles: pl.DataFrame, *, horizon_hours: float, now: datetime
) -> pl.DataFrame:
    """One outcome row per cluster whose horizon has passed or whose level was touched."""
    series = _series(candles)
    now_us = int(now.timestamp() * 1_000_000)
    horizon_us = int(horizon_hours * _US_PER_HOUR)
    rows = []
    for c in clusters.iter_rows(named=True):
        key = (c["scope"], c["exchange"], c["symbol"], c["range"])
        if key not in series:
            continue
        ts, low, high = series[key]
        start = int(c["fetched_at"].timestamp() * 1_000_000)
        window = _window(ts, start, start + horizon_us)
        level, close = c["peak_price"], c["last_close"]
        # One-sided: a level above the close is reached when a high gets to it, even if the candle
        # opened beyond it (a gap through the level still ran the stops there).
        reached = high[window] >= level if level >= close else low[window] <= level
        hit = np.flatnonzero(reached)
        touched = bool(len(hit))
        if not touched and now_us < start + horizon_us:
            continue  # still open: judge it later
        until = hit[0] if touched else len(low[window])
        before_low, before_high = low[window][: until + 1], high[window][: until + 1]
        if level >= close:
            adverse = (close - before_low.min()) / close * 100 if len(before_low) else 0.0
        else:
            adverse = (before_high.max() - close) / close * 100 if len(before_high) else 0.0
        rows.append(
            {
                "subject_kind": "cluster",
                "subject_id": c["cluster_id"],
                "symbol": c["symbol"],
                "model": c["model"],
                "range": c["range"],
                "consensus_bucket": consensus_bucket(c["consensus_score"]),
                "level_price": level,
                "observed_from": c["fetched_at"],
                "horizon_hours": horizon_hours,
                "touched": touched,
                "hours_to_touch": (ts[window][hit[0]] - start) / _US_PER_HOUR if touched else None,
                "max_adverse_pct": max(0.0, float(adverse)),
                "evaluated_at": now,
            }
        )
    return pl.DataFrame(rows, schema=OUTCOMES_SCHEMA)


def score_signals(
    signals: pl.DataFrame, candles: pl.DataFrame, *, horizon_hours: float, now: datetime
) -> pl.DataFrame:
    """One outcome row per signal that hit its take-profit or stop, or whose horizon passed.

    Uses the finest candles stored for the symbol. A candle that spans both levels counts as the
    stop (the conservative reading: the order of the two inside one candle is unknown).
    """
    series = _series(candles)
    finest: dict[str, tuple[np.ndarray, ...]] = {}
    for key in sorted(series, key=lambda k: RANGES.index(k[3])):
        finest.setdefault(key[2], series[key])
    now_us = int(now.timestamp() * 1_000_000)
    horizon_us = int(horizon_hours * _US_PER_HOUR)
    rows = []
    for s in signals.iter_rows(named=True):
        if s["symbol"] not in finest:
            continue
        ts, low, high = finest[s["symbol"]]
        start = int(s["as_of"].timestamp() * 1_000_000)
        window = _window(ts, start, start + horizon_us)
        lo, hi = low[window], high[window]
        long = s["side"] == "long"
        take = hi >= s["take_profit"] if long else lo <= s["take_profit"]
        stop = lo <= s["stop_loss"] if long else hi >= s["stop_loss"]
        exits = np.flatnonzero(take | stop)
        if not len(exits) and now_us < start + horizon_us:
            continue
        end = exits[0] + 1 if len(exits) else len(lo)
        won = bool(len(exits)) and bool(take[exits[0]]) and not bool(stop[exits[0]])
        entry = s["entry"]
        if end == 0:
            adverse = 0.0  # no candle after the signal: nothing moved against it that we know of
        else:
            adverse = (entry - lo[:end].min()) / entry if long else (hi[:end].max() - entry) / entry
        rows.append(
            {
                "subject_kind": "signal",
                "subject_id": s["signal_id"],
                "symbol": s["symbol"],
                "model": None,
                "range": None,
                "consensus_bucket": consensus_bucket(s["consensus_score"]),
                "level_price": s["take_profit"],
                "observed_from": s["as_of"],
                "horizon_hours": horizon_hours,
                "touched": won,
                "hours_to_touch": (ts[window][exits[0]] - start) / _US_PER_HOUR if won else None,
                "max_adverse_pct": max(0.0, float(adverse) * 100),
                "evaluated_at": now,
            }
        )
    return pl.DataFrame(rows, schema=OUTCOMES_SCHEMA)


def hit_rates(outcomes: pl.DataFrame) -> pl.DataFrame:
    """Hit rate, count and median time to touch by subject, model, range and consensus level."""
    return (
        outcomes.group_by("subject_kind", "model", "range", "consensus_bucket")
        .agg(
            n=pl.len(),
            hit_rate=pl.col("touched").mean(),
            median_hours_to_touch=pl.col("hours_to_touch").median(),
            median_max_adverse_pct=pl.col("max_adverse_pct").median(),
        )
        .sort("subject_kind", "model", "range", "consensus_bucket", nulls_last=True)
    )
