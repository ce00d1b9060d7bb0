"""Outcomes: did past clusters, radar entries and signals deliver? Scored against the candles
that followed.

For a cluster: was its peak price touched within the horizon after the snapshot, how soon, and
how far price first moved the other way (maximum adverse excursion, % of the close at the time).
For a radar entry: the same for its target (the near edge of the major zone it pointed at),
from the refresh time. For a signal: was the take-profit reached before the stop within the
horizon, how soon, and its maximum adverse excursion from entry until exit. Subjects whose
horizon has not passed and that were not touched yet are left for a later run. Hit rates by
model, range and consensus level say which models deserve trust; by radar decile and tier,
whether the ranking does. No look-ahead: a subject is judged only on candles that open after it
was made, and carries the rank it had then.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
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


@dataclass(frozen=True, slots=True)
class Touch:
    """Whether a level was reached within the horizon, how soon, and the adverse excursion."""

    touched: bool
    hours_to_touch: float | None
    max_adverse_pct: float


def touch(
    series: tuple[np.ndarray, ...],
    *,
    start_us: int,
    horizon_us: int,
    now_us: int,
    level: float,
    close: float,
) -> Touch | None:
    """One-sided: a level above the close is reached when a high gets to it, even if the candle
    opened beyond it (a gap through the level still ran the stops there); below, a low. Only
    candles that open at or after `start_us` count: what happened before the subject was made is
    not its outcome. None while the horizon is open and the level untouched."""
    ts, low, high = series
    window = _window(ts, start_us, start_us + horizon_us)
    reached = high[window] >= level if level >= close else low[window] <= level
    hit = np.flatnonzero(reached)
    touched = bool(len(hit))
    if not touched and now_us < start_us + horizon_us:
        return None  # still open: judge it later
    until = hit[0] if touched else len(low[window])
    before_low, before_high = low[window][: until + 1], high[window][: until + 1]
    if level >= close:
        adverse = (close - before_low.min()) / close * 100 if len(before_low) else 0.0
    else:
        adverse = (before_high.max() - close) / close * 100 if len(before_high) else 0.0
    return Touch(
        touched,
        (ts[window][hit[0]] - start_us) / _US_PER_HOUR if touched else None,
        max(0.0, float(adverse)),
    )


def _us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def score_clusters(
    clusters: pl.DataFrame, candles: pl.DataFrame, *, horizon_hours: float, now: datetime
) -> pl.DataFrame:
    """One outcome row per cluster whose horizon has passed or whose level was touched."""
    series = _series(candles)
    horizon_us = int(horizon_hours * _US_PER_HOUR)
    rows = []
    for c in clusters.iter_rows(named=True):
        key = (c["scope"], c["exchange"], c["symbol"], c["range"])
        if key not in series:
            continue
        result = touch(
            series[key],
            start_us=_us(c["fetched_at"]),
            horizon_us=horizon_us,
            now_us=_us(now),
            level=c["peak_price"],
            close=c["last_close"],
        )
        if result is None:
            continue
        rows.append(
            {
                "subject_kind": "cluster",
                "subject_id": c["cluster_id"],
                "symbol": c["symbol"],
                "model": c["model"],
                "range": c["range"],
                "consensus_bucket": consensus_bucket(c["consensus_score"]),
                "level_price": c["peak_price"],
                "observed_from": c["fetched_at"],
                "horizon_hours": horizon_hours,
                **asdict(result),
                "evaluated_at": now,
            }
        )
    return pl.DataFrame(rows, schema=OUTCOMES_SCHEMA)


def score_radar(
    radar: pl.DataFrame, candles: pl.DataFrame, *, horizon_hours: float, now: datetime
) -> pl.DataFrame:
    """One outcome row per ranked radar entry whose target zone was reached or whose horizon
    passed, measured from the refresh time on the symbol's finest candles, with the rank,
    decile and tier the entry had when it was made."""
    finest = _finest(candles)
    horizon_us = int(horizon_hours * _US_PER_HOUR)
    rows = []
    for r in radar.iter_rows(named=True):
        if r["symbol"] not in finest or r["target_price"] is None:
            continue
        result = touch(
            finest[r["symbol"]],
            start_us=_us(r["refreshed_at"]),
            horizon_us=horizon_us,
            now_us=_us(now),
            level=r["target_price"],
            close=r["last_price"],
        )
        if result is None:
            continue
        rows.append(
            {
                "subject_kind": "radar",
                "subject_id": radar_subject_id(r["symbol"], r["refreshed_at"]),
                "symbol": r["symbol"],
                "model": None,
                "range": None,
                "consensus_bucket": consensus_bucket(r["consensus_component"]),
                "level_price": r["target_price"],
                "observed_from": r["refreshed_at"],
                "horizon_hours": horizon_hours,
                **asdict(result),
                "evaluated_at": now,
                "radar_rank": r["rank"],
                "radar_decile": r["decile"],
                "radar_tier": r["tier"],
            }
        )
    return pl.DataFrame(rows, schema=OUTCOMES_SCHEMA)


def radar_subject_id(symbol: str, refreshed_at: datetime) -> str:
    """`SYMBOL@refresh time` (ISO, UTC): one radar entry, readable in the outcomes table."""
    return f"{symbol}@{refreshed_at.isoformat()}"


def _finest(candles: pl.DataFrame) -> dict[str, tuple[np.ndarray, ...]]:
    """The finest candles stored per symbol (the shortest range that has any)."""
    series = _series(candles)
    finest: dict[str, tuple[np.ndarray, ...]] = {}
    for key in sorted(series, key=lambda k: RANGES.index(k[3])):
        finest.setdefault(key[2], series[key])
    return finest


def score_signals(
    signals: pl.DataFrame, candles: pl.DataFrame, *, horizon_hours: float, now: datetime
) -> pl.DataFrame:
    """One outcome row per signal that hit its take-profit or stop, or whose horizon passed.

    Uses the finest candles stored for the symbol. A candle that spans both levels counts as the
    stop (the conservative reading: the order of the two inside one candle is unknown).
    """
    finest = _finest(candles)
    now_us = _us(now)
    horizon_us = int(horizon_hours * _US_PER_HOUR)
    rows = []
    for s in signals.iter_rows(named=True):
        if s["symbol"] not in finest:
            continue
        ts, low, high = finest[s["symbol"]]
        start = _us(s["as_of"])
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
                "radar_rank": s.get("radar_rank"),
                "radar_decile": s.get("radar_decile"),
                "radar_tier": s.get("radar_tier"),
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


def radar_hit_rates(outcomes: pl.DataFrame) -> pl.DataFrame:
    """Hit rate, count, median time to touch and adverse excursion of radar entries and signals
    by the radar decile and tier they had when they were made."""
    return (
        outcomes.filter(pl.col("radar_decile").is_not_null())
        .group_by("subject_kind", "radar_tier", "radar_decile")
        .agg(
            n=pl.len(),
            hit_rate=pl.col("touched").mean(),
            median_hours_to_touch=pl.col("hours_to_touch").median(),
            median_max_adverse_pct=pl.col("max_adverse_pct").median(),
        )
        .sort("subject_kind", "radar_decile", "radar_tier")
    )


WinRates = Mapping[str | None, tuple[int, float]]
"""Radar tier (None: every tier) -> (signal outcomes, share that reached the target first)."""


def win_rates(outcomes: pl.DataFrame) -> WinRates:
    """Signal hit rates per radar tier and over all signals, from signal outcomes (the caller
    passes only those decided before the moment the rates are used: no look-ahead)."""
    signals = outcomes.filter(pl.col("subject_kind") == "signal")
    rates: dict[str | None, tuple[int, float]] = {}
    if signals.height:
        rates[None] = (signals.height, float(signals["touched"].mean()))  # type: ignore[arg-type]
    for row in (
        signals.filter(pl.col("radar_tier").is_not_null())
        .group_by("radar_tier")
        .agg(n=pl.len(), rate=pl.col("touched").mean())
        .iter_rows(named=True)
    ):
        rates[row["radar_tier"]] = (row["n"], row["rate"])
    return rates


def win_rate_for(
    tier: str | None, rates: WinRates, prior: float, min_outcomes: int
) -> tuple[float, str]:
    """The Kelly win rate for a signal of radar tier `tier`: its tier's hit rate once the tier
    has `min_outcomes` signal outcomes, else every signal's once there are that many, else the
    prior; with a note saying which."""
    candidates = ([(tier, f"{tier}-tier signals")] if tier else []) + [(None, "signals")]
    for key, name in candidates:
        n, rate = rates.get(key, (0, 0.0))
        if n >= min_outcomes:
            return rate, f"hit rate {rate:.0%} over {n} {name}"
    return prior, f"prior {prior:.0%} (fewer than {min_outcomes} outcomes)"
