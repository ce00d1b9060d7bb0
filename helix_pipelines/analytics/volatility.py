"""Volatility and wicks: Wilder's ATR of a snapshot's candles, and how far wicks overshoot levels.

Every buffer in risk is in ATR, so a rule means the same thing on BTC and on a small-cap coin.
Liquidation cascades overshoot: wicks pierce a cluster and snap back; `wick_overshoot_atr`
measures how far, so a stop is placed where a normal wick would not reach it.
"""

from __future__ import annotations

import math

import numpy as np

from helix_pipelines.analytics.risk import DEFAULT_WICK_OVERSHOOT_ATR, is_int, is_real


def _as_series(name: str, values: np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: at least one candle is needed")
    if not np.all(np.isfinite(array)):
        bad = int(np.flatnonzero(~np.isfinite(array))[0])
        raise ValueError(f"{name} has a non-finite value {float(array[bad])!r} at index {bad}")
    return array


def _candles(
    high: np.ndarray, low: np.ndarray, close: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h, lo, c = _as_series("high", high), _as_series("low", low), _as_series("close", close)
    if not h.size == lo.size == c.size:
        raise ValueError(
            f"high, low and close must have the same length, got {h.size}, {lo.size}, {c.size}"
        )
    inverted = np.flatnonzero(h < lo)
    if inverted.size:
        i = int(inverted[0])
        raise ValueError(f"candle {i} has high {float(h[i])!r} below low {float(lo[i])!r}")
    return h, lo, c


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """Wilder's true range per candle: the candle's range widened to include any gap from the
    previous close, so overnight-style jumps count as volatility. The first candle has no previous
    close, so its true range is `high - low`.
    """
    h, lo, c = _candles(high, low, close)
    tr = h - lo
    if h.size > 1:
        prev_close = c[:-1]
        tr[1:] = np.maximum.reduce(
            [tr[1:], np.abs(h[1:] - prev_close), np.abs(lo[1:] - prev_close)]
        )
    return tr


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int = 14) -> float:
    """Average true range with Wilder's smoothing, as of the last candle.

    Seeded with the mean of the first `period` true ranges, then
    `atr = (atr_prev * (period - 1) + tr) / period` for each later candle. With fewer candles than
    `period` (a short heatmap range), the mean true range of what there is.
    """
    if not is_int(period) or period < 1:
        raise ValueError(f"period must be an int >= 1, got {period!r}")
    tr = true_range(high, low, close)
    if tr.size < period:
        return float(tr.mean())
    value = float(tr[:period].mean())
    for x in tr[period:]:
        value = (value * (period - 1) + float(x)) / period
    return value


def wick_overshoot_atr(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    levels: np.ndarray,
    atr_value: float,
    quantile: float = 0.8,
) -> float:
    """How far wicks typically run past a level, in ATR: the stop buffer a cluster needs.

    A candle "wicks through" a level when its extreme crosses the level but its body stays on the
    near side, i.e. price probed past the level and was rejected. The body is approximated by the
    previous close (as the open) and the close, so the first candle, which has no previous close,
    is not scored. For a level below the body: `low < level <= min(prev_close, close)`, overshoot
    `(level - low) / atr`; for a level above the body: `high > level >= max(prev_close, close)`,
    overshoot `(high - level) / atr`. A candle that closes beyond the level broke it rather than
    wicked through it and is not counted.

    Returns the `quantile` of all overshoots (linear interpolation), or
    `DEFAULT_WICK_OVERSHOOT_ATR` when no candle wicked through any level.
    """
    h, lo, c = _candles(high, low, close)
    if not (is_real(atr_value) and math.isfinite(atr_value) and atr_value > 0):
        raise ValueError(f"atr_value must be a positive finite number, got {atr_value!r}")
    if not (is_real(quantile) and 0.0 <= quantile <= 1.0):
        raise ValueError(f"quantile must be in [0, 1], got {quantile!r}")
    lv = np.asarray(levels, dtype=np.float64)
    if lv.ndim != 1:
        raise ValueError(f"levels must be one-dimensional, got shape {lv.shape}")
    if not np.all(np.isfinite(lv)):
        raise ValueError("levels has a non-finite value")
    if lv.size == 0 or h.size < 2:
        return DEFAULT_WICK_OVERSHOOT_ATR

    prev_close, cur_close = c[:-1], c[1:]
    body_lo = np.minimum(prev_close, cur_close)[:, None]
    body_hi = np.maximum(prev_close, cur_close)[:, None]
    hi, lw = h[1:, None], lo[1:, None]
    level = lv[None, :]
    below = (lw < level) & (level <= body_lo)
    above = (hi > level) & (level >= body_hi)
    overshoots = np.concatenate(
        [
            np.broadcast_to(level - lw, below.shape)[below],
            np.broadcast_to(hi - level, above.shape)[above],
        ]
    )
    if overshoots.size == 0:
        return DEFAULT_WICK_OVERSHOOT_ATR
    return float(np.quantile(overshoots / atr_value, quantile))
