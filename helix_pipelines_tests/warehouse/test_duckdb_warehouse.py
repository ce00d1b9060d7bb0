from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from helix_pipelines.coinglass.endpoints import HeatmapRequest
from helix_pipelines.heatmaps.normalize import normalize_payload
from helix_pipelines.warehouse.duckdb_warehouse import DuckDBWarehouse
from helix_pipelines_tests.payloads import encode, v4_document


def test_failed_batch_rolls_back_entirely(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(tmp_path / "helix.duckdb")
    warehouse.ensure_schema()
    at = datetime(2026, 11, 25, tzinfo=UTC)
    good = normalize_payload(encode(v4_document()), HeatmapRequest("coin", "BTC", 1, "3d"), at)
    broken = normalize_payload(encode(v4_document()), HeatmapRequest("coin", "ETH", 1, "3d"), at)
    object.__setattr__(
        broken, "cells", broken.cells.with_columns(pl.lit(None, pl.Float64).alias("price"))
    )
    with pytest.raises(duckdb.ConstraintException):
        warehouse.store_snapshots([good, broken])
    with warehouse.connect() as con:
        assert con.execute("SELECT count(*) FROM heatmap_snapshots").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM liquidation_data_raw").fetchone() == (0,)
