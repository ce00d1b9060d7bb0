"""The one synthetic CoinGlass heatmap generator: the sandbox, the fake server and the benches all
draw their payloads from here, shaped like what the live API returns (docs/real-apis.md).

What it reproduces, per (model, range):
  - the recorded cell counts of one BTC moment (Model 3 up to about 200k cells per payload, all
    24 payloads about 1.7 M), varying by a few percent from one candle period to the next;
  - the recorded price axes of each model (Model 1 127 levels over about ±4.5 % on 12h, Model 2
    79 over ±9 %, Model 3 396 over ±21 %), wider on longer ranges;
  - Model 3's x axis at twice the candle list;
  - Model 2 on 180d and 1y in the legacy key set (`y` / `liq` / `prices` with `precision`,
    `rangeLow`, `rangeHigh`, `instrument`, no `update_time`, empty leading columns up to x = 5,
    candle times in milliseconds: the unit was never recorded, so the generator picks the one that
    exercises detection);
  - young coins: a range longer than a coin's history is `NO_DATA_BODY`, every time.
What it chooses where nothing was recorded: every coin is as dense as BTC (a conservative bound
for memory), level counts on ranges other than 12h grow until the recorded cell count fits the
grid, and candle periods follow the range (5 minutes on 12h up to 12 hours on 1y).

Deterministic: the bytes are a function of the request and the end of its candle period, so
asking again inside one period gives identical bytes and re-ingesting stores nothing new. Prices
are a function of absolute time, so overlapping snapshots agree on their candles, and cluster
centres depend on the coin only, so clusters persist from snapshot to snapshot. Nothing here is
market data.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import orjson

from helix_pipelines.contracts.heatmaps import HeatmapRequest
from helix_pipelines.contracts.vocabulary import MODELS, RANGE_HOURS, RANGES

NO_DATA_BODY = b'{"code":"500","msg":"Server Error"}'
"""What CoinGlass answers (HTTP 200) for a range longer than a young coin's history."""

CANDLES: dict[str, tuple[int, int]] = {
    "12h": (300, 144), "24h": (300, 288), "3d": (900, 288), "7d": (1800, 336),
    "30d": (7200, 360), "90d": (14400, 540), "180d": (28800, 540), "1y": (43200, 730),
}  # fmt: skip
"""range -> (candle seconds, candles)."""

RECORDED_CELLS: dict[tuple[int, str], int] = {
    (1, "12h"): 3_887, (1, "24h"): 16_271, (1, "3d"): 26_149, (1, "7d"): 33_573,
    (1, "30d"): 42_246, (1, "90d"): 36_636, (1, "180d"): 80_248, (1, "1y"): 75_351,
    (2, "12h"): 7_722, (2, "24h"): 31_479, (2, "3d"): 33_823, (2, "7d"): 39_223,
    (2, "30d"): 42_352, (2, "90d"): 40_921, (2, "180d"): 58_420, (2, "1y"): 53_115,
    (3, "12h"): 111_476, (3, "24h"): 60_288, (3, "3d"): 199_927, (3, "7d"): 88_270,
    (3, "30d"): 178_858, (3, "90d"): 134_015, (3, "180d"): 120_777, (3, "1y"): 188_275,
}  # fmt: skip
"""Cells of BTC's 24 payloads at one moment, as recorded from the live API."""

LEGACY_KEY_SET = frozenset({(2, "180d"), (2, "1y")})
LEGACY_FIRST_COLUMN = 5
_LEVELS_12H = {1: 127, 2: 79, 3: 396}
_HALF_SPAN_12H = {1: 0.045, 2: 0.09, 3: 0.21}
_SPAN_GROWTH = {"12h": 1.0, "24h": 1.5, "3d": 2.5, "7d": 3.75, "30d": 6.25, "90d": 10.0,
                "180d": 13.75, "1y": 17.5}  # fmt: skip
_MAX_HALF_SPAN = 0.85  # the lowest level stays positive
_MAX_FILL = {1: 0.75, 2: 0.75, 3: 0.98}  # Model 3 12h fills 97 % of its recorded grid
_COLUMNS_PER_CANDLE = {1: 1, 2: 1, 3: 2}
_N_CLUSTERS = 9
_QUOTES = ("USDT", "USDC", "USD")

# Rough price anchors so synthetic charts look like the coins they are named after.
_ANCHORS = {
    "BTC": 95_000.0, "ETH": 3_400.0, "SOL": 180.0, "XRP": 2.3, "DOGE": 0.32, "BNB": 650.0,
    "ADA": 0.9, "AVAX": 38.0, "LINK": 21.0, "TRX": 0.25, "DOT": 7.5, "LTC": 105.0,
    "SUI": 3.9, "TON": 5.6, "PEPE": 0.000019, "HYPE": 27.0,
}  # fmt: skip
SYNTHETIC_COINS: tuple[str, ...] = (
    *_ANCHORS,
    "ARB", "OP", "APT", "NEAR", "ATOM", "FIL", "INJ", "TIA", "SEI", "WLD",
    "AAVE", "UNI", "ETC", "BCH", "XLM", "HBAR", "ICP", "RNDR", "FET", "ENA",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class PayloadShape:
    """The grid of one (model, range): candles, levels, x columns, and the cells it holds."""

    candle_seconds: int
    n_candles: int
    n_levels: int
    half_span: float
    n_columns: int
    first_column: int
    cells: int
    legacy: bool


def _shape(model: int, range_: str) -> PayloadShape:
    candle_seconds, n_candles = CANDLES[range_]
    legacy = (model, range_) in LEGACY_KEY_SET
    first_column = LEGACY_FIRST_COLUMN if legacy else 0
    n_columns = n_candles * _COLUMNS_PER_CANDLE[model]
    cells = RECORDED_CELLS[model, range_]
    needed = math.ceil(cells / ((n_columns - first_column) * _MAX_FILL[model]))
    return PayloadShape(
        candle_seconds=candle_seconds,
        n_candles=n_candles,
        n_levels=max(_LEVELS_12H[model], needed),
        half_span=min(_HALF_SPAN_12H[model] * _SPAN_GROWTH[range_], _MAX_HALF_SPAN),
        n_columns=n_columns,
        first_column=first_column,
        cells=cells,
        legacy=legacy,
    )


SHAPES: dict[tuple[int, str], PayloadShape] = {(m, r): _shape(m, r) for m in MODELS for r in RANGES}


def has_history(range_: str, history_days: float | None) -> bool:
    """Whether CoinGlass has this range for a coin with `history_days` of history (None: all)."""
    return history_days is None or RANGE_HOURS[range_] <= history_days * 24


def base_asset(symbol: str) -> str:
    """'BTCUSDT' -> 'BTC'; coin symbols pass through."""
    for quote in _QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)]
    return symbol


def _seed(*parts: object) -> int:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def anchor_price(asset: str) -> float:
    if asset in _ANCHORS:
        return _ANCHORS[asset]
    return float(10 ** np.random.default_rng(_seed("anchor", asset)).uniform(-2, 3))


def price_path(asset: str, times: np.ndarray) -> np.ndarray:
    """Deterministic price at absolute epoch seconds: slow cycles plus per-instant noise."""
    rng = np.random.default_rng(_seed("path", asset))
    periods = np.array([3.0, 11.0, 37.0, 120.0, 400.0]) * 86_400 * rng.uniform(0.8, 1.2, 5)
    amplitudes = np.array([0.012, 0.03, 0.06, 0.12, 0.2]) * rng.uniform(0.6, 1.4, 5)
    phases = rng.uniform(0, 2 * np.pi, 5)
    t = times.astype(np.float64)[:, None]
    drift = (amplitudes * np.sin(2 * np.pi * t / periods + phases)).sum(axis=1)
    noise = _hash_unit(times.astype(np.uint64), _seed("noise", asset)) - 0.5
    return anchor_price(asset) * np.exp(drift + 0.004 * noise)


def _hash_unit(values: np.ndarray, salt: int) -> np.ndarray:
    """Vectorized splitmix64: a stable uniform [0, 1) per integer, independent of array shape."""
    z = values.astype(np.uint64) + np.uint64(salt & 0xFFFFFFFFFFFFFFFF)
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _fmt(value: float) -> str:
    return f"{value:.10g}"


def heatmap_payload(
    request: HeatmapRequest, period_end: int, *, cell_fraction: float = 1.0
) -> bytes:
    """The body CoinGlass would send for `request` when the candle period ending at
    `period_end` (epoch seconds, a multiple of the range's candle period) is the latest.

    `cell_fraction` scales the cell count only (the grid keeps its real shape): tests that do not
    measure size use a fraction to stay fast.
    """
    if not 0 < cell_fraction <= 1:
        raise ValueError(f"cell_fraction must be in (0, 1], got {cell_fraction}")
    shape = SHAPES[request.model, request.range]
    asset = base_asset(request.symbol)
    key = (request.scope, request.exchange, request.symbol, request.model, request.range)
    rng = np.random.default_rng(_seed("snapshot", *key, period_end))

    starts = period_end - shape.candle_seconds * np.arange(shape.n_candles, 0, -1, dtype=np.int64)
    opens = price_path(asset, starts)
    closes = price_path(asset, starts + shape.candle_seconds)
    wick = 1 + np.abs(rng.normal(0, 0.004, (2, shape.n_candles))) * np.sqrt(
        shape.candle_seconds / 300
    )
    highs = np.maximum(opens, closes) * wick[0]
    lows = np.minimum(opens, closes) / wick[1]
    volumes = rng.lognormal(16, 0.6, shape.n_candles)

    last = closes[-1]
    lo, hi = last * (1 - shape.half_span), last * (1 + shape.half_span)
    tick = float(10 ** np.floor(np.log10((hi - lo) / (shape.n_levels - 1) / 10)))
    levels = np.round(np.linspace(lo, hi, shape.n_levels) / tick) * tick
    cells = _cells(shape, request.model, asset, levels, lows, highs, rng, cell_fraction)

    level_list = [float(_fmt(v)) for v in levels]
    rows = zip(starts.tolist(), opens, highs, lows, closes, volumes, strict=True)
    if shape.legacy:
        prices = [
            [t * 1000, _fmt(o), _fmt(h), _fmt(lw), _fmt(c), _fmt(v)] for t, o, h, lw, c, v in rows
        ]
        data: dict[str, object] = {
            "y": level_list, "liq": cells, "prices": prices, "precision": 2,
            "rangeLow": level_list[0], "rangeHigh": level_list[-1],
            "instrument": {"exName": request.exchange or "ALL", "symbol": request.symbol},
        }  # fmt: skip
    else:
        candles = [[t, _fmt(o), _fmt(h), _fmt(lw), _fmt(c), _fmt(v)] for t, o, h, lw, c, v in rows]
        data = {
            "y_axis": level_list,
            "liquidation_leverage_data": cells,
            "price_candlesticks": candles,
            "update_time": period_end * 1000,
        }
    return orjson.dumps({"code": "0", "msg": "success", "data": data})


def _cells(
    shape: PayloadShape,
    model: int,
    asset: str,
    levels: np.ndarray,
    lows: np.ndarray,
    highs: np.ndarray,
    rng: np.random.Generator,
    cell_fraction: float,
) -> list[list[float]]:
    """Sparse [x, y, usd] cells: the strongest of a dense map of persistent clusters that price
    wipes out when it trades through them and that build up again afterwards.

    Cluster prices depend on the coin only; weights and widths on the model too, because the
    three CoinGlass models agree on where clusters are and differ in density.
    """
    anchor_rng = np.random.default_rng(_seed("clusters", asset))
    centres = anchor_price(asset) * np.exp(anchor_rng.uniform(-0.45, 0.45, _N_CLUSTERS))
    model_rng = np.random.default_rng(_seed("model", asset, model))
    weights = anchor_rng.lognormal(0, 0.7, _N_CLUSTERS) * model_rng.uniform(0.5, 1.5, _N_CLUSTERS)
    widths = centres * anchor_rng.uniform(0.004, 0.02, _N_CLUSTERS) * model_rng.uniform(0.8, 1.3)
    price = levels[None, :]
    density = (
        weights[:, None] * np.exp(-(((price - centres[:, None]) / widths[:, None]) ** 2))
    ).sum(0)
    density = density + 0.05 * density.max()

    # Column x belongs to candle x // per_candle. A level is alive until price trades through
    # it; afterwards positions there were liquidated and the map refills from that column.
    per_candle = shape.n_columns // shape.n_candles
    candle_of = np.arange(shape.n_columns) // per_candle
    traded = ((lows[:, None] <= price) & (highs[:, None] >= price))[candle_of]
    columns = np.arange(shape.n_columns)[:, None]
    since_wipe = np.maximum.accumulate(np.where(traded, columns, 0), axis=0)
    build_up = 1 - np.exp(-(columns - since_wipe) / (40.0 * per_candle))
    values = density[None, :] * build_up * rng.lognormal(0, 0.5, build_up.shape)
    values[: shape.first_column] = 0
    scale = 2e6 * (anchor_price(asset) / 95_000.0) ** 0.2
    values = values / values.max() * scale

    wanted = round(shape.cells * cell_fraction * rng.uniform(0.97, 1.03))
    flat = values.ravel()
    count = min(wanted, int(np.count_nonzero(flat > 0.01)))
    keep = np.argpartition(flat, -count)[-count:]
    # The first column always holds a cell, as every recorded payload's did (x = 5 in the
    # legacy shape): thinning must not move where the x axis starts.
    first = shape.first_column * shape.n_levels + int(np.argmax(values[shape.first_column]))
    if first not in keep:
        keep[np.argmin(flat[keep])] = first
    xs, ys = np.divmod(np.sort(keep), shape.n_levels)
    usd = np.round(values[xs, ys], 2)
    return [list(cell) for cell in zip(xs.tolist(), ys.tolist(), usd.tolist(), strict=True)]


def period_end_at(request: HeatmapRequest, now_seconds: int) -> int:
    """The end of the latest full candle period of `request`'s range at `now_seconds`."""
    candle_seconds = SHAPES[request.model, request.range].candle_seconds
    return now_seconds - now_seconds % candle_seconds
