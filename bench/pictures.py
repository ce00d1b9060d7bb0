"""Bench: the preview picture of a real-size snapshot, as a ratio to normalizing that snapshot.

Every heatmap partition draws one preview (`defs.heatmap_ingest`) next to the universe's
normalize/store work, so the question is what a picture costs against the work it accompanies:
both are timed on the same BTC payload of each model x range, best of N, in this process. Also
printed: the PNG's bytes, which ride in Dagster's event log with every materialization, against
the true-colour PNG the palette replaced.

    uv run python -m bench.pictures [--repeats 3]
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from datetime import UTC, datetime

from PIL import Image

from bench.normalize_vs_orjson import payload
from helix_pipelines.contracts.vocabulary import MODELS, RANGES
from helix_pipelines.heatmaps.normalize import normalize_payload
from helix_pipelines.pictures.heatmap import heatmap_picture


def best(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ratios, sizes, true_colour = [], [], []
    for model in MODELS:
        for range_ in RANGES:
            request, raw = payload(model, range_)
            fetched_at = datetime.now(UTC)
            snapshot = normalize_payload(raw, request, fetched_at)

            def draw(snapshot=snapshot, model=model, range_=range_, fetched_at=fetched_at):
                return heatmap_picture(
                    snapshot.cells, snapshot.candles, symbol="BTC", model=model,
                    range_=range_, fetched_at=fetched_at, source_kind="sandbox",
                )  # fmt: skip

            normalize_s = best(
                lambda raw=raw, request=request, at=fetched_at: normalize_payload(raw, request, at),
                args.repeats,
            )
            picture_s = best(draw, args.repeats)
            png = draw().png
            rgb = io.BytesIO()
            Image.open(io.BytesIO(png)).convert("RGB").save(rgb, format="PNG")
            ratios.append(picture_s / normalize_s)
            sizes.append(len(png))
            true_colour.append(len(rgb.getvalue()))
            print(
                f"pictures case=m{model}_{range_} cells={snapshot.ledger.n_cells} "
                f"normalize_ms={normalize_s * 1e3:.1f} picture_ms={picture_s * 1e3:.1f} "
                f"ratio={picture_s / normalize_s:.2f} png_kb={len(png) / 1024:.0f} "
                f"true_colour_kb={len(rgb.getvalue()) / 1024:.0f}"
            )
    print(
        f"pictures summary: picture/normalize median {sorted(ratios)[len(ratios) // 2]:.2f}, "
        f"max {max(ratios):.2f}; png {sum(sizes) / 1024:.0f} KB for 24 previews "
        f"(true colour {sum(true_colour) / 1024:.0f} KB, ratio {sum(sizes) / sum(true_colour):.2f})"
    )


if __name__ == "__main__":
    main()
