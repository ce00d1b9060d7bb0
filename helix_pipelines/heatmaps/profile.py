"""The price-level profile of one snapshot, computed once when it is normalized.

Grain: one row per price level that holds at least one cell (`PROFILE_SCHEMA`). This is what
the warehouse keeps of every snapshot (the full grid goes to the Parquet archive, and to the
warehouse only where configured): the analytics find clusters in it, the checks compare its cell
counts with the ledger, Grafana draws it. Sums run in the cells' order, the same order a sum
over the stored grid would take, so a profile read back equals one recomputed from the cells.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from helix_pipelines.contracts.heatmaps import PROFILE_SCHEMA, empty_profile


def price_level_profile(
    levels: np.ndarray, cell_x: np.ndarray, cell_y: np.ndarray, cell_usd: np.ndarray
) -> pl.DataFrame:
    """Per level of the `levels` axis (`cell_y` indexes it): cells, cumulative and live USD.

    Live is the latest column: the highest `cell_x`, whether or not x names a candle.
    """
    if len(cell_x) == 0:
        return empty_profile()
    size = len(levels)
    counts = np.bincount(cell_y, minlength=size)
    cumulative = np.bincount(cell_y, weights=cell_usd, minlength=size)
    latest = cell_x == cell_x.max()
    live = np.bincount(cell_y[latest], weights=cell_usd[latest], minlength=size)
    present = counts > 0
    return pl.DataFrame(
        {
            "price": levels[present],
            "cells": counts[present],
            "cumulative_usd": cumulative[present],
            "live_usd": live[present],
        },
        schema=PROFILE_SCHEMA,
    )


def profile_of_cells(cells: pl.DataFrame) -> pl.DataFrame:
    """The profile of a frame of cells (`price`, `x_index`, `liq_usd`), e.g. read back from the
    archive: its levels are the distinct prices."""
    if cells.height == 0:
        return empty_profile()
    levels, cell_y = np.unique(cells["price"].to_numpy(), return_inverse=True)
    return price_level_profile(
        levels, cells["x_index"].to_numpy(), cell_y, cells["liq_usd"].to_numpy()
    )
