"""Bench (a): parse + normalize of a 60k-cell heatmap payload, as a ratio to `orjson.loads`.

Both are timed on the same bytes in the same process, interleaved, best of N runs (the
least-disturbed measurement of each). The ratio is what matters: it says how much the whole
normalizer costs on top of merely parsing the JSON.

    uv run python -m bench.normalize_vs_orjson [--cells 60000] [--repeats 40]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import orjson

from helix_pipelines.contracts.heatmaps import HeatmapRequest
from helix_pipelines.heatmaps.normalize import normalize_payload


def payload(n_cells: int, *, v3: bool = False, seed: int = 7) -> dict:
    """A 1y-shaped payload (730 candles x 280 levels) with `n_cells` distinct cells."""
    rng = np.random.default_rng(seed)
    n_candles, n_levels = 730, 280
    flat = rng.choice(n_candles * n_levels, size=n_cells, replace=False)
    xs, ys = np.divmod(np.sort(flat), n_levels)
    values = np.round(rng.lognormal(11, 1.5, n_cells), 2)
    cells = [list(c) for c in zip(xs.tolist(), ys.tolist(), values.tolist(), strict=True)]
    levels = np.round(np.linspace(60_000, 130_000, n_levels), 1).tolist()
    t0 = 1_730_000_000
    candles = [
        [t0 + i * 43_200, "95000.1", "96000.2", "94000.3", "95500.4", "123456789.5"]
        for i in range(n_candles)
    ]
    keys = (
        ("y", "liq", "prices")
        if v3
        else ("y_axis", "liquidation_leverage_data", "price_candlesticks")
    )
    return {
        "code": "0",
        "msg": "success",
        "data": dict(zip(keys, (levels, cells, candles), strict=True)),
    }


def best_of(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def measure(raw: bytes, label: str, repeats: int) -> float:
    request = HeatmapRequest("coin", "BTC", 2, "1y")
    fetched_at = datetime.now(UTC)
    snapshot = normalize_payload(raw, request, fetched_at)
    assert snapshot.ledger.status == "loaded", snapshot.ledger.reason
    for _ in range(3):  # warm-up
        orjson.loads(raw)
        normalize_payload(raw, request, fetched_at)
    base_min, base_med = best_of(lambda: orjson.loads(raw), repeats)
    ours_min, ours_med = best_of(lambda: normalize_payload(raw, request, fetched_at), repeats)
    ratio = ours_min / base_min
    print(
        f"normalize_vs_orjson case={label} cells={snapshot.ledger.n_cells} bytes={len(raw)} "
        f"orjson_ms={base_min * 1e3:.2f} (median {base_med * 1e3:.2f}) "
        f"normalize_ms={ours_min * 1e3:.2f} (median {ours_med * 1e3:.2f}) ratio={ratio:.2f}"
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cells", type=int, default=60_000)
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    measure(orjson.dumps(payload(args.cells)), "v4_compact", args.repeats)
    measure(orjson.dumps(payload(args.cells, v3=True)), "v3_compact", args.repeats)
    # Pretty-printed JSON takes the general path (no compact cell array to cut out).
    measure(
        json.dumps(payload(args.cells), indent=1).encode(), "v4_pretty_general_path", args.repeats
    )


if __name__ == "__main__":
    main()
