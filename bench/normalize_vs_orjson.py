"""Bench (a): parse + normalize of real-size heatmap payloads, as a ratio to `orjson.loads`.

Payloads come from the one synthetic generator (`coinglass.synthetic`) at the cell counts the
live API was recorded to return: Model 1 1y (~75k cells), the legacy Model 2 1y key set
(~53k), Model 3 3d (~200k, the largest), and Model 1 1y pretty-printed (the general path).
Both are timed on the same bytes in the same process, interleaved, best of N runs (the
least-disturbed measurement of each). The ratio is what matters: it says how much the whole
normalizer costs on top of merely parsing the JSON.

    uv run python -m bench.normalize_vs_orjson [--repeats 40]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

import orjson

from helix_pipelines.coinglass.synthetic import heatmap_payload, period_end_at
from helix_pipelines.contracts.heatmaps import HeatmapRequest
from helix_pipelines.heatmaps.normalize import normalize_payload

MOMENT = 1_750_000_000


def payload(model: int, range_: str) -> tuple[HeatmapRequest, bytes]:
    request = HeatmapRequest("coin", "BTC", model, range_)
    return request, heatmap_payload(request, period_end_at(request, MOMENT))


def best_of(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def measure(request: HeatmapRequest, raw: bytes, label: str, repeats: int) -> float:
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
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    measure(*payload(1, "1y"), "m1_1y_v4_compact", args.repeats)
    measure(*payload(2, "1y"), "m2_1y_v3_legacy_compact", args.repeats)
    measure(*payload(3, "3d"), "m3_3d_v4_compact_largest", args.repeats)
    # Pretty-printed JSON takes the general path (no compact cell array to cut out).
    request, raw = payload(1, "1y")
    pretty = json.dumps(json.loads(raw), indent=1).encode()
    measure(request, pretty, "m1_1y_v4_pretty_general_path", args.repeats)


if __name__ == "__main__":
    main()
