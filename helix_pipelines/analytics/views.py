"""Snapshot views: the newest two snapshots of every heatmap key, with what the analytics need
of each (price, ATR, candle span, side totals, clusters), read a few symbols at a time.

Profiles come through a reader the caller passes, asked `SYMBOLS_PER_READ` symbols at a time, so
memory holds one slice of the universe's profiles, never all of them. The newest view of a key
has its clusters flagged swept against the previous one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from helix_pipelines.analytics.clusters import Cluster, ClusterParams, find_clusters, flag_swept
from helix_pipelines.analytics.imbalance import SideTotals, side_totals
from helix_pipelines.analytics.profiles import snapshot_profile
from helix_pipelines.analytics.volatility import atr
from helix_pipelines.contracts.heatmaps import NormalizedSnapshot

PROFILES = ("cumulative", "live")
SYMBOLS_PER_READ = 20
"""Symbols whose profiles are read and analyzed together (about 20 x 48 snapshots x a few
hundred levels: some 300k rows in memory at a time)."""

LevelsReader = Callable[[Sequence[str]], pl.DataFrame]
"""snapshot ids -> their profiles (snapshot_id, price, cumulative_usd, live_usd)."""
CandlesByKey = dict[tuple[object, ...], pl.DataFrame]
"""(scope, exchange, symbol, range) -> its candles, by time."""


@dataclass
class SnapshotView:
    """One snapshot with what the analytics need of it."""

    snapshot_id: str
    fetched_at: datetime
    scope: str
    exchange: str
    symbol: str
    model: int
    range: str
    level_lo: float
    level_hi: float
    last_close: float
    atr: float
    first_candle_ts: datetime
    last_candle_ts: datetime
    clusters: dict[str, list[Cluster]] = field(default_factory=dict)
    totals: dict[str, SideTotals] = field(default_factory=dict)  # per profile kind

    @property
    def key(self) -> tuple[str, str, str, int, str]:
        return (self.scope, self.exchange, self.symbol, self.model, self.range)


def snapshot_views(
    latest: pl.DataFrame,
    levels_of: LevelsReader,
    candles_by_key: CandlesByKey,
    params: ClusterParams,
) -> dict[str, SnapshotView]:
    views: dict[str, SnapshotView] = {}
    symbols = latest["symbol"].unique(maintain_order=True).to_list()
    for start in range(0, len(symbols), SYMBOLS_PER_READ):
        chunk = latest.filter(pl.col("symbol").is_in(symbols[start : start + SYMBOLS_PER_READ]))
        levels = levels_of(chunk["snapshot_id"].to_list())
        by_snapshot = levels.partition_by("snapshot_id", as_dict=True, include_key=False)
        for row in chunk.iter_rows(named=True):
            snapshot_levels = by_snapshot.get((row["snapshot_id"],))
            key_candles = candles_by_key.get(
                (row["scope"], row["exchange"], row["symbol"], row["range"])
            )
            if snapshot_levels is None or key_candles is None or snapshot_levels.height == 0:
                continue
            view = _view(row, snapshot_levels, key_candles, params)
            if view is not None:
                views[view.snapshot_id] = view
    return views


def current_views(
    latest: pl.DataFrame,
    views: dict[str, SnapshotView],
    candles_by_key: CandlesByKey,
) -> list[SnapshotView]:
    """The newest view of every key, its clusters flagged swept against the previous view."""

    def by_recency(recency: int) -> list[SnapshotView]:
        ids = latest.filter(pl.col("recency") == recency)["snapshot_id"].to_list()
        return [views[i] for i in ids if i in views]

    previous = {v.key: v for v in by_recency(2)}
    current = by_recency(1)
    for view in current:
        before = previous.get(view.key)
        if before is None:
            continue
        since = candles_by_key[(view.scope, view.exchange, view.symbol, view.range)].filter(
            pl.col("ts") > before.last_candle_ts
        )
        lows, highs = since["low"].to_numpy(), since["high"].to_numpy()
        for profile in PROFILES:
            view.clusters[profile] = flag_swept(
                view.clusters[profile], before.clusters[profile], lows, highs
            )
    return current


def snapshot_view(
    snapshot: NormalizedSnapshot, params: ClusterParams | None = None
) -> SnapshotView | None:
    """The view of one snapshot just normalized (its levels and candles in hand, nothing read
    from the warehouse), e.g. to label its clusters on a preview; None without candles."""
    return _view(
        snapshot.ledger.as_dict(), snapshot.levels, snapshot.candles, params or ClusterParams()
    )


def _view(
    row: dict[str, object], levels: pl.DataFrame, candles: pl.DataFrame, params: ClusterParams
) -> SnapshotView | None:
    span = (row["first_candle_ts"], row["last_candle_ts"])
    if None in span:
        return None
    window = candles.filter(pl.col("ts").is_between(*span))
    if window.height == 0:
        return None
    high, low, close = (window[c].to_numpy() for c in ("high", "low", "close"))
    atr_value = atr(high, low, close)
    profile = snapshot_profile(levels)
    view = SnapshotView(
        snapshot_id=str(row["snapshot_id"]),
        fetched_at=row["fetched_at"],  # type: ignore[arg-type]
        scope=str(row["scope"]),
        exchange=str(row["exchange"]),
        symbol=str(row["symbol"]),
        model=int(row["model"]),  # type: ignore[call-overload]
        range=str(row["range"]),
        level_lo=float(profile.prices.min()),
        level_hi=float(profile.prices.max()),
        last_close=float(close[-1]),
        atr=atr_value,
        first_candle_ts=window["ts"].min(),  # type: ignore[arg-type]
        last_candle_ts=window["ts"].max(),  # type: ignore[arg-type]
    )
    for kind in PROFILES:
        view.totals[kind] = side_totals(profile.prices, profile.values(kind), view.last_close)
        view.clusters[kind] = find_clusters(
            profile.prices,
            profile.values(kind),
            last_close=view.last_close,
            atr=atr_value,
            snapshot_id=f"{view.snapshot_id}|{kind}",
            params=params,
        )
    return view
