"""A heatmap preview as PNG bytes, so a person can look at a snapshot in the Dagster UI.

The image is the liquidation grid (time left to right, price bottom to top, log-scaled colour)
with the candle closes drawn as a white line. Encoded with zlib directly: a preview needs no
plotting library.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

import numpy as np
import polars as pl

# Dark purple -> blue -> teal -> yellow, the familiar liquidation-heatmap palette.
_PALETTE = np.array(
    [[20, 6, 40], [40, 40, 120], [30, 110, 140], [40, 170, 120], [170, 220, 50], [250, 240, 30]],
    dtype=np.float64,
)


def _colour(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to RGB by linear interpolation along the palette."""
    position = np.clip(values, 0, 1) * (len(_PALETTE) - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, len(_PALETTE) - 1)
    frac = (position - low)[..., None]
    return (_PALETTE[low] * (1 - frac) + _PALETTE[high] * frac).astype(np.uint8)


def heatmap_grid(
    cells: pl.DataFrame, candles: pl.DataFrame
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(grid[level, column] of USD, sorted level prices, close per column) of one snapshot.

    Columns are the cells' `x_index`. When x names candles (cells carry candle times), column i
    is the snapshot's candle i and gets its close; when the x axis runs past the candles, no
    close is drawn (which column is which time is not known).
    """
    levels = np.sort(cells["price"].unique().to_numpy()) if cells.height else np.array([0.0])
    columns = int(cells["x_index"].max()) + 1 if cells.height else 1
    grid = np.zeros((len(levels), max(columns, 1)))
    if cells.height:
        y = np.searchsorted(levels, cells["price"].to_numpy())
        np.add.at(grid, (y, cells["x_index"].to_numpy()), cells["liq_usd"].to_numpy())
    candle_aligned = cells.height > 0 and cells["candle_ts"].null_count() == 0
    if not (candle_aligned and candles.height):
        return grid, levels, np.array([])
    # Candle i of the snapshot is column i; the candles given may start a few candles later or
    # earlier, so one cell's (column, candle time) pair anchors them.
    ordered = candles.sort("ts")
    times = ordered["ts"].dt.epoch("us").to_numpy()
    anchor_column = int(cells["x_index"][0])
    anchor_time = int(cells["candle_ts"].dt.epoch("us")[0])
    columns_of_candles = np.arange(len(times)) + anchor_column - np.searchsorted(times, anchor_time)
    inside = (columns_of_candles >= 0) & (columns_of_candles < grid.shape[1])
    per_column = np.full(grid.shape[1], np.nan)
    per_column[columns_of_candles[inside]] = ordered["close"].to_numpy()[inside]
    filled = pl.Series(per_column).fill_nan(None).forward_fill().backward_fill().to_numpy()
    return grid, levels, filled


Line = tuple[float, tuple[int, int, int]]


def render_png(
    cells: pl.DataFrame,
    candles: pl.DataFrame,
    *,
    max_width: int = 480,
    height: int = 240,
    lines: Sequence[Line] = (),
) -> bytes:
    """PNG preview of one snapshot, at most `max_width` x `height` pixels.

    `lines`: horizontal price lines drawn across the map, e.g. cluster zones and a signal's
    entry, stop-loss and take-profit, as (price, RGB colour).
    """
    grid, levels, closes = heatmap_grid(cells, candles)
    n_levels, n_candles = grid.shape
    width = max(1, min(max_width, n_candles * 2))
    cols = np.minimum((np.arange(width) * n_candles) // width, n_candles - 1)
    rows = np.minimum((np.arange(height)[::-1] * n_levels) // height, n_levels - 1)
    scaled = np.log1p(grid)
    top = scaled.max() or 1.0
    image = _colour(scaled[np.ix_(rows, cols)] / top)
    if len(levels) > 1 and len(closes):
        # Row of each close on the (roughly linear) price axis, drawn two pixels thick.
        frac = (closes[cols] - levels[0]) / (levels[-1] - levels[0])
        y = np.clip(((1 - frac) * (height - 1)).round().astype(int), 0, height - 1)
        image[y, np.arange(width)] = 255
        image[np.minimum(y + 1, height - 1), np.arange(width)] = 255
    if len(levels) > 1:
        for price, colour in lines:
            frac = (price - levels[0]) / (levels[-1] - levels[0])
            if 0 <= frac <= 1:
                row = round((1 - frac) * (height - 1))
                # Three pixels thick and dashed, so the line reads at a glance and the heatmap
                # under it stays visible.
                dashes = (np.arange(width) // 8) % 3 != 2
                image[max(row - 1, 0) : row + 2, dashes] = colour
    return encode_png(image)


def encode_png(rgb: np.ndarray) -> bytes:
    """Minimal PNG encoder for an (h, w, 3) uint8 array."""
    height, width, _ = rgb.shape
    raw = np.hstack(
        [np.zeros((height, 1), dtype=np.uint8), rgb.reshape(height, width * 3)]
    ).tobytes()

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )
