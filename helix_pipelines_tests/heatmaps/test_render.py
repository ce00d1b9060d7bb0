from __future__ import annotations

import struct
import zlib
from datetime import UTC, datetime

import numpy as np

from helix_pipelines.contracts.heatmaps import HeatmapRequest
from helix_pipelines.heatmaps.normalize import normalize_payload
from helix_pipelines.heatmaps.render import encode_png, heatmap_grid, render_png
from helix_pipelines.testing.payloads import encode, v4_document


def decode_png(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    length = struct.unpack(">I", png[33:37])[0]
    raw = zlib.decompress(png[41 : 41 + length])
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, width * 3 + 1)
    assert (rows[:, 0] == 0).all()  # filter byte "none" on every row
    return rows[:, 1:].reshape(height, width, 3)


def test_encode_png_round_trips_pixels() -> None:
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    assert (decode_png(encode_png(image)) == image).all()


def test_grid_places_each_cell_at_its_candle_and_level() -> None:
    request = HeatmapRequest("coin", "BTC", 1, "3d")
    snapshot = normalize_payload(encode(v4_document()), request, datetime.now(UTC))
    grid, levels, closes = heatmap_grid(snapshot.cells, snapshot.candles)
    assert grid.shape == (5, 4)
    assert list(levels) == [100.0, 101.0, 102.5, 104.0, 110.0]
    assert grid[4, 0] == 250.0
    assert grid[3, 2] == 123456.78
    assert list(closes) == [102.0, 103.0, 104.0, 105.0]
    image = decode_png(render_png(snapshot.cells, snapshot.candles, max_width=40, height=20))
    assert image.shape == (20, 8, 3)
    assert (image == 255).all(axis=2).any()  # the close line is drawn
