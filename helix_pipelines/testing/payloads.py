"""Hand-built CoinGlass heatmap payloads for tests: small, exact, and easy to corrupt."""

from __future__ import annotations

import copy
from typing import Any

import orjson

T0 = 1_763_000_000  # a candle timestamp in seconds (Nov 2025)


def v4_document(
    *,
    n_candles: int = 4,
    levels: list[float] | None = None,
    cells: list[list[Any]] | None = None,
    step_seconds: int = 300,
) -> dict[str, Any]:
    """A valid v4 envelope: 4 candles, 5 levels, a few cells unless told otherwise."""
    levels = levels if levels is not None else [100.0, 101.0, 102.5, 104.0, 110.0]
    candles = [
        [T0 + i * step_seconds, f"{101 + i}", f"{103 + i}", f"{100 + i}", f"{102 + i}", "1500000.5"]
        for i in range(n_candles)
    ]
    if cells is None:
        cells = [[0, 0, 1000.5], [0, 4, 250.0], [1, 2, 99.75], [3, 1, 0.0], [2, 3, 123456.78]]
    return {
        "code": "0",
        "msg": "success",
        "data": {
            "y_axis": levels,
            "liquidation_leverage_data": cells,
            "price_candlesticks": candles,
            "update_time": (T0 + n_candles * step_seconds) * 1000,
        },
    }


def as_v3(document: dict[str, Any]) -> dict[str, Any]:
    """The same data in the alternate key set (`y` / `liq` / `prices`)."""
    converted = copy.deepcopy(document)
    data = converted["data"]
    data["y"] = data.pop("y_axis")
    data["liq"] = data.pop("liquidation_leverage_data")
    data["prices"] = data.pop("price_candlesticks")
    return converted


def encode(document: dict[str, Any]) -> bytes:
    return orjson.dumps(document)
