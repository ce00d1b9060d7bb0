from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from helix_pipelines.contracts.heatmaps import HeatmapRequest
from helix_pipelines.heatmaps.normalize import normalize_payload
from helix_pipelines.testing.payloads import encode, v4_document
from helix_pipelines.testing.warehouses import duckdb_warehouse, rows


def test_failed_batch_rolls_back_entirely(tmp_path: Path) -> None:
    warehouse = duckdb_warehouse(tmp_path / "helix.duckdb")
    at = datetime(2026, 11, 25, tzinfo=UTC)
    good = normalize_payload(encode(v4_document()), HeatmapRequest("coin", "BTC", 1, "3d"), at)
    broken = normalize_payload(encode(v4_document()), HeatmapRequest("coin", "ETH", 1, "3d"), at)
    object.__setattr__(
        broken, "levels", broken.levels.with_columns(pl.lit(None, pl.Float64).alias("price"))
    )
    with pytest.raises(duckdb.ConstraintException):
        warehouse.heatmaps.store_snapshots([good, broken])
    for table in ("heatmap_snapshots", "liquidation_price_levels", "heatmap_candles"):
        assert rows(warehouse, f"SELECT count(*) FROM {table}") == [(0,)]
