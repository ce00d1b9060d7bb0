from __future__ import annotations

from datetime import UTC, datetime

from helix_pipelines.contracts.heatmaps import HeatmapRequest
from helix_pipelines.heatmaps.normalize import normalize_payload
from helix_pipelines.pictures.heatmap import heatmap_grid
from helix_pipelines.testing.payloads import encode, v4_document


def test_grid_places_each_cell_at_its_column_and_level() -> None:
    request = HeatmapRequest("coin", "BTC", 1, "3d")
    snapshot = normalize_payload(encode(v4_document()), request, datetime.now(UTC))
    grid, levels = heatmap_grid(snapshot.cells)
    assert grid.shape == (5, 4)
    assert list(levels) == [100.0, 101.0, 102.5, 104.0, 110.0]
    assert grid[4, 0] == 250.0
    assert grid[3, 2] == 123456.78
    assert grid.sum() == snapshot.cells["liq_usd"].sum()
