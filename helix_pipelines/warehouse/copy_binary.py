"""PostgreSQL binary COPY buffers built with numpy, one vectorized pass per frame.

Why: a Python loop of `copy.write_row` costs microseconds per row; heatmaps have tens of
thousands of rows per snapshot. In one snapshot's cells every text column is constant, so each
row has the same byte layout and a numpy structured array can hold the whole COPY stream:
`tobytes()` is the payload. Binary COPY also spares the server parsing floats and timestamps.
Frames that do not fit (a text column that varies) go through psycopg's `write_row` instead.
"""

from __future__ import annotations

import numpy as np
import polars as pl

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
_PG_EPOCH_US = 946_684_800 * 1_000_000  # 2000-01-01 UTC, PostgreSQL's timestamp origin
_WIDTH = {
    pl.Int16: ">i2",
    pl.Int32: ">i4",
    pl.Int64: ">i8",
    pl.Float64: ">f8",
    pl.Datetime: ">i8",
    pl.Boolean: ">i1",
}


class NotFixedWidth(ValueError):  # noqa: N818 - a property of the frame
    """The frame's rows do not share one byte layout (a text column varies, or is partly null)."""


def _width(dtype: pl.DataType) -> str | None:
    for kind, width in _WIDTH.items():
        if isinstance(dtype, kind):
            return width
    return None


def rows_buffer(frame: pl.DataFrame) -> bytes:
    """Binary COPY tuples (no header/trailer) of a frame whose text columns are constant and
    whose other columns are either all set or all null (a snapshot whose x axis runs past its
    candles has no candle times at all). Raises NotFixedWidth otherwise."""
    n = frame.height
    if n == 0:
        return b""
    fields: list[tuple[str, str]] = [("n", ">i2")]
    values: dict[str, object] = {"n": frame.width}
    for name, dtype in frame.schema.items():
        series = frame[name]
        nulls = series.null_count()
        fields.append((f"len_{name}", ">i4"))
        if nulls == n:
            values[f"len_{name}"] = -1  # NULL: a length of -1 and no data bytes
            continue
        if nulls:
            raise NotFixedWidth(f"column {name} is partly null ({nulls} of {n})")
        width = _width(dtype)
        if width is None:  # text
            if not (series == series[0]).all():
                raise NotFixedWidth(f"column {name} is not constant within the frame")
            encoded = str(series[0]).encode()
            values[f"len_{name}"] = len(encoded)
            if encoded:
                fields.append((name, f"S{len(encoded)}"))
                values[name] = encoded
            continue
        values[f"len_{name}"] = np.dtype(width).itemsize
        fields.append((name, width))
        if isinstance(dtype, pl.Datetime):
            values[name] = series.dt.epoch("us").to_numpy() - _PG_EPOCH_US
        else:
            values[name] = series.to_numpy()
    rows = np.empty(n, dtype=np.dtype(fields))
    for name, value in values.items():
        rows[name] = value
    return rows.tobytes()
