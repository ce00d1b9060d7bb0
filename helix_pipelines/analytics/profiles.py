"""Price-level profiles of one heatmap snapshot, on a regular price grid.

A heatmap is liquidation USD per (candle, price level). Its profile sums it per price level
(stored per snapshot in `liquidation_price_levels` when it is loaded):
  - cumulative: over every candle of the snapshot (where liquidations stacked up over the range);
  - live: the latest column only (what is resting right now), by `x_index`, which every
    snapshot has even when its x axis is not a candle index.
Each is also given as shares of its own total, which makes the opaque CoinGlass models and
ranges comparable with each other (CoinGlass does not document how they differ).

Stored profiles are sparse (levels without cells are omitted), so the price grid is rebuilt
from the level step: adjacency of levels matters for cluster detection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl


@dataclass(frozen=True, slots=True)
class LevelProfile:
    """Per price level (ascending, regular grid): cumulative and live USD."""

    prices: np.ndarray
    cumulative: np.ndarray
    live: np.ndarray

    @property
    def step(self) -> float:
        return float(self.prices[1] - self.prices[0]) if len(self.prices) > 1 else 0.0

    @staticmethod
    def _shares(values: np.ndarray) -> np.ndarray:
        total = values.sum()
        return values / total if total > 0 else np.zeros_like(values)

    @property
    def cumulative_shares(self) -> np.ndarray:
        return self._shares(self.cumulative)

    @property
    def live_shares(self) -> np.ndarray:
        return self._shares(self.live)

    def values(self, kind: str) -> np.ndarray:
        if kind == "cumulative":
            return self.cumulative
        if kind == "live":
            return self.live
        raise ValueError(f"profile kind must be 'cumulative' or 'live', got {kind!r}")


def level_grid(prices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(regular ascending grid, index of each price in it) from the levels that occur.

    The step is the smallest gap between distinct levels (CoinGlass axes are regular; rounding of
    the printed levels makes gaps differ by a tick at most, absorbed by nearest-index snapping).
    """
    unique = np.unique(prices)
    if len(unique) == 1:
        return unique, np.zeros(len(prices), dtype=np.int64)
    gaps = np.diff(unique)
    step = float(gaps.min())
    size = round((unique[-1] - unique[0]) / step) + 1
    if size > 4 * len(unique):
        # Not a regular axis (a few odd gaps): keep the levels as they are.
        return unique, np.searchsorted(unique, prices)
    grid = unique[0] + step * np.arange(size)
    index = np.rint((prices - unique[0]) / step).astype(np.int64)
    return grid, np.clip(index, 0, size - 1)


def snapshot_profile(levels: pl.DataFrame) -> LevelProfile:
    """The regular-grid profile of one snapshot's stored levels (`price`, `cumulative_usd`,
    `live_usd`); levels the grid has but the snapshot does not are zero."""
    if levels.height == 0:
        empty = np.array([], dtype=np.float64)
        return LevelProfile(empty, empty, empty)
    grid, index = level_grid(levels["price"].to_numpy())
    cumulative = np.bincount(
        index, weights=levels["cumulative_usd"].to_numpy(), minlength=len(grid)
    )
    live = np.bincount(index, weights=levels["live_usd"].to_numpy(), minlength=len(grid))
    return LevelProfile(grid, cumulative, live)
