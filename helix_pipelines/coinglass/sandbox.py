"""Sandbox source: schema-faithful synthetic CoinGlass heatmaps, with no API key and no network.

Why it exists: a fresh machine can run the whole pipeline, and tests and demos exercise the same
code paths as production. What it guarantees:
  - the same interface (`HeatmapSource`) and the same JSON bytes layout as CoinGlass v4;
  - deterministic output per (scope, exchange, symbol, model, range, candle period): asking again
    inside one candle period returns identical bytes, so re-ingesting stores nothing new;
  - realistic sizes (hundreds of candles and levels, tens of thousands of cells on long ranges);
  - the v3 key set (`y` / `liq` / `prices`) for Model 2 on 180d and 1y, as observed in the wild;
  - liquidation clusters at per-symbol price levels that persist from one snapshot to the next,
    and a price path that is a function of absolute time, so overlapping snapshots agree.
Nothing here is real market data; every consumer labels it as sandbox.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import orjson

from helix_pipelines.clock import utc_now
from helix_pipelines.coinglass.source import SourceKind, SourceStats
from helix_pipelines.contracts.heatmaps import HeatmapRequest


@dataclass(frozen=True, slots=True)
class RangeShape:
    """Candle period, candle count, price-level count and half-width of the price axis."""

    candle_seconds: int
    n_candles: int
    n_levels: int
    half_span: float


RANGE_SHAPES: dict[str, RangeShape] = {
    "12h": RangeShape(300, 144, 120, 0.04),
    "24h": RangeShape(300, 288, 150, 0.06),
    "3d": RangeShape(900, 288, 180, 0.10),
    "7d": RangeShape(1800, 336, 200, 0.15),
    "30d": RangeShape(7200, 360, 220, 0.25),
    "90d": RangeShape(14400, 540, 250, 0.40),
    "180d": RangeShape(28800, 540, 260, 0.55),
    "1y": RangeShape(43200, 730, 280, 0.70),
}

# Rough price anchors so sandbox charts look like the coins they are named after.
_ANCHORS = {
    "BTC": 95_000.0, "ETH": 3_400.0, "SOL": 180.0, "XRP": 2.3, "DOGE": 0.32, "BNB": 650.0,
    "ADA": 0.9, "AVAX": 38.0, "LINK": 21.0, "TRX": 0.25, "DOT": 7.5, "LTC": 105.0,
    "SUI": 3.9, "TON": 5.6, "PEPE": 0.000019, "HYPE": 27.0,
}  # fmt: skip
SANDBOX_COINS: tuple[str, ...] = (
    *_ANCHORS,
    "ARB", "OP", "APT", "NEAR", "ATOM", "FIL", "INJ", "TIA", "SEI", "WLD",
    "AAVE", "UNI", "ETC", "BCH", "XLM", "HBAR", "ICP", "RNDR", "FET", "ENA",
)  # fmt: skip
SANDBOX_EXCHANGES: tuple[str, ...] = ("Binance", "Bybit", "OKX")
_QUOTES = ("USDT", "USDC", "USD")
_V3_VARIANT = {(2, "180d"), (2, "1y")}
_N_CLUSTERS = 9


def _seed(*parts: object) -> int:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def base_asset(symbol: str) -> str:
    """'BTCUSDT' -> 'BTC'; coin symbols pass through."""
    for quote in _QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)]
    return symbol


def _anchor(asset: str) -> float:
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
    return _anchor(asset) * np.exp(drift + 0.004 * noise)


def _hash_unit(values: np.ndarray, salt: int) -> np.ndarray:
    """Vectorized splitmix64: a stable uniform [0, 1) per integer, independent of array shape."""
    z = values.astype(np.uint64) + np.uint64(salt & 0xFFFFFFFFFFFFFFFF)
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _tick(step: float) -> float:
    """A 1-2-5 tick at most a tenth of the level step, so rounded levels stay strictly increasing."""
    exponent = np.floor(np.log10(step / 10))
    return float(10**exponent)


def _fmt(value: float) -> str:
    return f"{value:.10g}"


class SandboxHeatmaps:
    """Synthetic heatmap generator; `clock` decides which candle period 'now' falls in."""

    def __init__(self, clock: Callable[[], datetime] = utc_now) -> None:
        self._clock = clock

    def payload(self, request: HeatmapRequest) -> bytes:
        """The JSON body CoinGlass would send for `request` at the current candle period."""
        shape = RANGE_SHAPES[request.range]
        now = int(self._clock().timestamp())
        end = now - now % shape.candle_seconds
        asset = base_asset(request.symbol)
        key = (request.scope, request.exchange, request.symbol, request.model, request.range, end)
        rng = np.random.default_rng(_seed("snapshot", *key))

        starts = end - shape.candle_seconds * np.arange(shape.n_candles, 0, -1, dtype=np.int64)
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
        step = (hi - lo) / (shape.n_levels - 1)
        tick = _tick(step)
        levels = np.round(np.linspace(lo, hi, shape.n_levels) / tick) * tick

        cells = self._cells(request, asset, levels, lows, highs, rng)
        candles = [
            [int(ts), _fmt(o), _fmt(h), _fmt(low), _fmt(c), _fmt(v)]
            for ts, o, h, low, c, v in zip(
                starts.tolist(), opens, highs, lows, closes, volumes, strict=True
            )
        ]
        level_list = [float(_fmt(v)) for v in levels]
        if (request.model, request.range) in _V3_VARIANT:
            data: dict[str, object] = {"y": level_list, "liq": cells, "prices": candles}
        else:
            data = {
                "y_axis": level_list,
                "liquidation_leverage_data": cells,
                "price_candlesticks": candles,
            }
        data["update_time"] = end * 1000
        return orjson.dumps({"code": "0", "msg": "success", "data": data})

    def _cells(
        self,
        request: HeatmapRequest,
        asset: str,
        levels: np.ndarray,
        lows: np.ndarray,
        highs: np.ndarray,
        rng: np.random.Generator,
    ) -> list[list[float]]:
        """Sparse [x, y, usd] cells: persistent clusters that price wipes out when it trades through.

        Cluster prices depend on the asset only (they persist across snapshots); their weights and
        widths depend on the model, because the three CoinGlass models disagree in practice.
        """
        anchor_rng = np.random.default_rng(_seed("clusters", asset))
        centres = _anchor(asset) * np.exp(anchor_rng.uniform(-0.45, 0.45, _N_CLUSTERS))
        model_rng = np.random.default_rng(_seed("model", asset, request.model))
        weights = anchor_rng.lognormal(0, 0.7, _N_CLUSTERS) * model_rng.uniform(
            0.5, 1.5, _N_CLUSTERS
        )
        widths = (
            centres * anchor_rng.uniform(0.004, 0.02, _N_CLUSTERS) * model_rng.uniform(0.8, 1.3)
        )

        price = levels[None, :]
        density = (
            weights[:, None] * np.exp(-(((price - centres[:, None]) / widths[:, None]) ** 2))
        ).sum(0)
        density = density + 0.05 * density.max()
        # A level is alive at candle x until price trades through it; afterwards positions there
        # were liquidated and the map starts to refill from that point.
        traded = (lows[:, None] <= price) & (highs[:, None] >= price)
        since_wipe = np.maximum.accumulate(
            np.where(traded, np.arange(len(lows))[:, None], 0), axis=0
        )
        age = np.arange(len(lows))[:, None] - since_wipe
        build_up = 1 - np.exp(-age / 40.0)
        values = density[None, :] * build_up * rng.lognormal(0, 0.5, (len(lows), len(levels)))
        scale = 2e6 * (_anchor(asset) / 95_000.0) ** 0.2
        values = values / values.max() * scale
        keep = values > np.quantile(values, 0.65)
        xs, ys = np.nonzero(keep)
        usd = np.round(values[xs, ys], 2)
        return [list(cell) for cell in zip(xs.tolist(), ys.tolist(), usd.tolist(), strict=True)]


class SandboxSource:
    """`HeatmapSource` over `SandboxHeatmaps`: no network, no key, counts requests like the client."""

    kind: SourceKind = "sandbox"

    def __init__(self, clock: Callable[[], datetime] = utc_now) -> None:
        self._heatmaps = SandboxHeatmaps(clock)
        self.stats = SourceStats()

    async def fetch_heatmap(self, request: HeatmapRequest) -> bytes:
        self.stats.requests_sent += 1
        return self._heatmaps.payload(request)

    async def supported_coins(self) -> list[str]:
        self.stats.requests_sent += 1
        return list(SANDBOX_COINS)

    async def supported_exchange_pairs(self) -> dict[str, list[dict[str, str]]]:
        self.stats.requests_sent += 1
        return {
            exchange: [
                {"instrument_id": f"{coin}USDT", "base_asset": coin, "quote_asset": "USDT"}
                for coin in SANDBOX_COINS
            ]
            for exchange in SANDBOX_EXCHANGES
        }

    async def aclose(self) -> None:
        return None
