"""Field-level checks of one heatmap payload, vectorized: each raises `PayloadValidationError`
whose message is the quarantine reason, naming the key, the index and what was wrong.

Real payloads do things the documentation does not say (docs/real-apis.md); these are accepted and
reported, never rejected: leading empty x columns, an x axis wider than the candle list (Model 3),
candle timestamps in seconds or milliseconds and `update_time` in either, told apart by magnitude.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from helix_pipelines.contracts.heatmaps import TimeUnit

CANDLE_FIELDS = ("ts", "open", "high", "low", "close", "volume_usd")
# Epoch timestamps between 2009 and 2100, in seconds; the same window times 1000 is milliseconds.
# The two windows do not overlap, so the magnitude alone tells the unit.
_TS_MIN, _TS_MAX = 1_230_768_000, 4_102_444_800
US_PER: dict[TimeUnit, int] = {"s": 1_000_000, "ms": 1_000}
# An x axis wider than this many columns per candle is no column index of this heatmap.
MAX_X_COLUMNS_PER_CANDLE = 8
# Extra keys of `data` are kept as JSON up to this size (the legacy `instrument` object is unknown).
MAX_SOURCE_EXTRA_BYTES = 16_384


class PayloadValidationError(ValueError):
    """A payload failed validation; the message is the quarantine reason."""


def levels(raw_levels: Any, key: str) -> np.ndarray:
    """Price levels: a non-empty flat list of positive finite numbers, strictly increasing."""
    if not isinstance(raw_levels, list) or not raw_levels:
        raise PayloadValidationError(f"{key} must be a non-empty list of price levels")
    try:
        values = np.array(raw_levels, dtype=np.float64)
    except (TypeError, ValueError):
        raise PayloadValidationError(f"{key} holds values that are not numbers") from None
    if values.ndim != 1:
        raise PayloadValidationError(f"{key} must be a flat list of numbers")
    bad = ~np.isfinite(values) | (values <= 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise PayloadValidationError(
            f"{key}[{i}] = {float(values[i])} is not a positive finite price"
        )
    steps = np.diff(values)
    if (steps <= 0).any():
        i = int(np.argmax(steps <= 0)) + 1
        raise PayloadValidationError(
            f"{key} is not strictly increasing: [{i - 1}] = {values[i - 1]} then [{i}] = {values[i]}"
        )
    return values


def candles(rows: Any, key: str) -> tuple[np.ndarray, TimeUnit, np.ndarray]:
    """Candle rows `[ts, open, high, low, close, volume_usd]` with OHLCV as strings, timestamps
    in epoch seconds or milliseconds (one unit for the whole list), strictly increasing.

    Returns (each candle's start in epoch microseconds, the unit found, OHLCV as floats).
    """
    if not isinstance(rows, list) or not rows:
        raise PayloadValidationError(f"{key} must be a non-empty list of candles")
    for i, row in enumerate(rows):  # one check per candle (hundreds), not per cell
        if not isinstance(row, list) or len(row) != 6:
            raise PayloadValidationError(f"{key}[{i}] is not a 6-field candle: {str(row)[:80]}")
    try:
        table = np.array(rows, dtype=np.float64)
    except (TypeError, ValueError):
        raise PayloadValidationError(_first_unparseable_candle(rows, key)) from None
    bad = ~np.isfinite(table)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        raise PayloadValidationError(
            f"{key}[{i}] field '{CANDLE_FIELDS[j]}' is not a finite number"
        )
    ts = table[:, 0]
    unit = time_unit(ts)
    if unit is None:
        odd = (ts != np.floor(ts)) | ~(_in_window(ts, "s") | _in_window(ts, "ms"))
        if odd.any():
            i = int(np.argmax(odd))
            raise PayloadValidationError(
                f"{key}[{i}] ts {rows[i][0]!r} is neither epoch seconds nor milliseconds"
            )
        raise PayloadValidationError(f"{key} timestamps mix seconds and milliseconds")
    if (np.diff(ts) <= 0).any():
        i = int(np.argmax(np.diff(ts) <= 0)) + 1
        raise PayloadValidationError(f"{key} timestamps are not strictly increasing at [{i}]")
    return ts.astype(np.int64) * US_PER[unit], unit, table[:, 1:]


def _first_unparseable_candle(rows: list[Any], key: str) -> str:
    for i, row in enumerate(rows):
        for j, field in enumerate(row):
            try:
                float(field)
            except (TypeError, ValueError):
                return f"{key}[{i}] field '{CANDLE_FIELDS[j]}' is unparseable: {str(field)[:40]!r}"
    return f"{key} holds fields that are not numbers"


def _in_window(values: np.ndarray, unit: TimeUnit) -> np.ndarray:
    scale = 1 if unit == "s" else 1000
    return (values >= _TS_MIN * scale) & (values <= _TS_MAX * scale)


def time_unit(values: np.ndarray) -> TimeUnit | None:
    """'s' or 'ms' when every value is a whole epoch timestamp in that unit, else None."""
    if (values != np.floor(values)).any():
        return None
    if _in_window(values, "s").all():
        return "s"
    if _in_window(values, "ms").all():
        return "ms"
    return None


def cell_triples(raw_cells: Any, key: str) -> np.ndarray:
    """The general path's cell array: a list of [x, y, value] number triples, as n x 3 floats."""
    if not isinstance(raw_cells, list):
        raise PayloadValidationError(f"{key} must be a list of [x, y, value] cells")
    if not raw_cells:
        return np.empty((0, 3), dtype=np.float64)
    try:
        cells = np.array(raw_cells, dtype=np.float64)
    except (TypeError, ValueError):
        raise PayloadValidationError(
            f"{key} is not a list of [x, y, value] number triples"
        ) from None
    if cells.ndim != 2 or cells.shape[1] != 3:
        raise PayloadValidationError(f"{key} is not a list of [x, y, value] number triples")
    return cells


def check_cells(cells: np.ndarray, key: str, n_levels: int, n_candles: int) -> None:
    """x: a whole column index within MAX_X_COLUMNS_PER_CANDLE x the candles (it may start past
    0 and run past the candle list); y: a whole index of the price levels; value: USD >= 0."""
    x, y, value = cells[:, 0], cells[:, 1], cells[:, 2]
    max_columns = max(MAX_X_COLUMNS_PER_CANDLE * n_candles, 64)
    _check_index(x, max_columns, f"{key} x (column index)", f"{max_columns} columns allowed")
    _check_index(y, n_levels, f"{key} y (price-level index)", f"{n_levels} price levels")
    bad = ~np.isfinite(value) | (value < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise PayloadValidationError(
            f"{key}[{i}] value {float(value[i])} is negative or not finite"
        )


def _check_index(index: np.ndarray, size: int, what: str, target: str) -> None:
    bad = ~np.isfinite(index) | (index != np.floor(index)) | (index < 0) | (index >= size)
    if bad.any():
        i = int(np.argmax(bad))
        raise PayloadValidationError(
            f"{what} at cell {i} is {float(index[i])}, outside 0..{size - 1} ({target})"
        )


def update_time(value: Any) -> datetime | None:
    """`update_time` in epoch milliseconds (as documented) or seconds, told apart by magnitude;
    None when absent or not a timestamp at all (it is informative, never a reason to reject)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    unit = time_unit(np.array([value], dtype=np.float64))
    if unit is None:
        return None
    return datetime.fromtimestamp(value * US_PER[unit] / 1_000_000, UTC)


def source_extra(data: dict[str, Any], known: tuple[str, ...]) -> str | None:
    """The keys of `data` outside the contract as sorted JSON, None when there are none."""
    extra = {k: v for k, v in data.items() if k not in known}
    if not extra:
        return None
    try:
        encoded = orjson.dumps(extra, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        encoded = orjson.dumps({k: repr(v)[:200] for k, v in extra.items()})
    if len(encoded) > MAX_SOURCE_EXTRA_BYTES:
        encoded = orjson.dumps({"truncated_keys": sorted(extra)})
    return encoded.decode()
