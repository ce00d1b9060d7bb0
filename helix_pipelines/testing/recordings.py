"""Recorded CoinGlass answers for replay: what the sandbox would have served at one moment, one
file per request, as `COINGLASS_CAPTURE_DIR` writes them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import orjson

from helix_pipelines.coinglass.sandbox import SandboxHeatmaps
from helix_pipelines.contracts.heatmaps import HeatmapRequest
from helix_pipelines.contracts.vocabulary import MODELS, RANGES


def record_sandbox(
    directory: Path,
    at: datetime,
    symbols: Sequence[str],
    *,
    models: Sequence[int] = MODELS,
    ranges: Sequence[str] = RANGES,
    cell_fraction: float = 1.0,
) -> Path:
    """Every heatmap of `symbols` as the sandbox serves it at `at` (young coins' missing ranges
    as CoinGlass's "no data" answer), plus the supported coins. `cell_fraction` thins the cells
    on the real grids, for tests that do not measure size."""
    directory.mkdir(parents=True, exist_ok=True)
    sandbox = SandboxHeatmaps(clock=lambda: at, cell_fraction=cell_fraction)
    for symbol in symbols:
        for model in models:
            for range_ in ranges:
                request = HeatmapRequest("coin", symbol, model, range_)
                (directory / request.capture_name).write_bytes(sandbox.payload(request))
    coins = {"code": "0", "msg": "success", "data": list(symbols)}
    (directory / "supported-coins.json").write_bytes(orjson.dumps(coins))
    return directory
