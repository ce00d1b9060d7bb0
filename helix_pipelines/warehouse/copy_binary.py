"""PostgreSQL binary COPY buffers built with numpy, one vectorized pass per snapshot.

Why: a Python loop of `copy.write_row` costs microseconds per row; heatmaps have tens of
thousands of rows per snapshot. In a snapshot's cells every text column is constant, so each row
has the same byte layout and a numpy structured array can hold the whole COPY stream: `tobytes()`
is the payload. Binary COPY also spares the server parsing floats and timestamps from text.
"""

from __future__ import annotations

import numpy as np
import polars as pl

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
_PG_EPOCH_US = 946_684_800 * 1_000_000  # 2000-01-01 UTC, PostgreSQL's timestamp origin

# Contract columns of liquidation_data_raw and how each is encoded.
_CELL_COLUMNS: tuple[tuple[str, str], ...] = (
    ("snapshot_id", "text"),
    ("fetched_at", "timestamptz"),
    ("scope", "text"),
    ("exchange", "text"),
    ("symbol", "text"),
    ("model", "int2"),
    ("range", "text"),
    ("candle_ts", "timestamptz"),
    ("price", "float8"),
    ("liq_usd", "float8"),
    ("x_index", "int4"),
)
_CANDLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("scope", "text"),
    ("exchange", "text"),
    ("symbol", "text"),
    ("range", "text"),
    ("ts", "timestamptz"),
    ("open", "float8"),
    ("high", "float8"),
    ("low", "float8"),
    ("close", "float8"),
    ("volume_usd", "float8"),
)
_WIDTH = {"int2": ">i2", "int4": ">i4", "float8": ">f8", "timestamptz": ">i8"}


def _timestamps_us(series: pl.Series) -> np.ndarray:
    return series.dt.epoch("us").to_numpy() - _PG_EPOCH_US


def rows_buffer(frame: pl.DataFrame, columns: tuple[tuple[str, str], ...]) -> bytes:
    """Binary COPY tuples (no header/trailer) for a frame whose text columns are constant and
    whose other columns are either all set or all null (a snapshot whose x axis runs past its
    candles has no candle times at all).

    Raises ValueError if a text column varies or a column is partly null (the fixed layout would
    be wrong).
    """
    n = frame.height
    if n == 0:
        return b""
    fields: list[tuple[str, str]] = [("n", ">i2")]
    values: dict[str, object] = {"n": len(columns)}
    for name, kind in columns:
        series = frame[name]
        if kind == "text":
            if not (series == series[0]).all():
                raise ValueError(f"column {name} is not constant within the frame")
            encoded = str(series[0]).encode()
            fields.append((f"len_{name}", ">i4"))
            values[f"len_{name}"] = len(encoded)
            if encoded:
                fields.append((name, f"S{len(encoded)}"))
                values[name] = encoded
            continue
        nulls = series.null_count()
        fields.append((f"len_{name}", ">i4"))
        if nulls == n:
            values[f"len_{name}"] = -1  # NULL: a length of -1 and no data bytes
            continue
        if nulls:
            raise ValueError(f"column {name} is partly null ({nulls} of {n})")
        values[f"len_{name}"] = np.dtype(_WIDTH[kind]).itemsize
        fields.append((name, _WIDTH[kind]))
        values[name] = _timestamps_us(series) if kind == "timestamptz" else series.to_numpy()
    rows = np.empty(n, dtype=np.dtype(fields))
    for name, value in values.items():
        rows[name] = value
    return rows.tobytes()


def cells_buffer(cells: pl.DataFrame) -> bytes:
    """COPY tuples of one snapshot's cells (all text columns constant within a snapshot)."""
    return rows_buffer(cells, _CELL_COLUMNS)


def candles_buffer(candles: pl.DataFrame) -> bytes:
    """COPY tuples of one snapshot's candles."""
    return rows_buffer(candles, _CANDLE_COLUMNS)
