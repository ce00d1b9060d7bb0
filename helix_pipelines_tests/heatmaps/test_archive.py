from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from helix_pipelines.contracts.heatmaps import HeatmapRequest
from helix_pipelines.heatmaps.archive import ParquetArchive
from helix_pipelines.heatmaps.normalize import normalize_payload
from helix_pipelines.testing.payloads import encode, v4_document

FETCHED_AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def snapshot(model: int, range_: str = "3d", symbol: str = "BTC"):
    request = HeatmapRequest("coin", symbol, model, range_)
    return normalize_payload(encode(v4_document()), request, FETCHED_AT)


def test_model3_snapshot_is_archived_hive_partitioned_with_zstd(tmp_path: Path) -> None:
    archive = ParquetArchive(tmp_path)
    written = archive.archive(snapshot(3))

    assert written is not None
    assert written.parent == tmp_path / "range=3d" / "date=2026-11-25"
    metadata = pl.read_parquet_metadata(written)  # readable as plain parquet
    assert metadata is not None
    import pyarrow.parquet as pq

    assert pq.ParquetFile(written).metadata.row_group(0).column(0).compression == "ZSTD"


def test_archive_reads_back_identically_with_duckdb_and_polars(tmp_path: Path) -> None:
    archive = ParquetArchive(tmp_path)
    snap = snapshot(3)
    archive.archive(snap)
    archive.archive(snapshot(3, "1y", "ETH"))

    scanned = archive.scan().filter(pl.col("range") == "3d").collect()
    expected = snap.cells.sort("candle_ts", "price")
    assert scanned.height == expected.height
    assert scanned.sort("candle_ts", "price")["liq_usd"].to_list() == expected["liq_usd"].to_list()

    glob = str(tmp_path / "**" / "*.parquet")
    rows = duckdb.sql(
        f"SELECT \"range\", symbol, count(*), sum(liq_usd) FROM read_parquet('{glob}', hive_partitioning=true) "
        "GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    total = expected["liq_usd"].sum()
    assert rows == [("1y", "ETH", 5, total), ("3d", "BTC", 5, total)]


def test_only_loaded_model3_snapshots_are_archived_once(tmp_path: Path) -> None:
    archive = ParquetArchive(tmp_path)
    assert archive.archive(snapshot(1)) is None
    assert archive.archive(snapshot(2)) is None
    assert archive.archive(snapshot(3)) is not None
    assert archive.archive(snapshot(3)) is None  # same snapshot id: already there
    bad = normalize_payload(b"{", HeatmapRequest("coin", "BTC", 3, "3d"), FETCHED_AT)
    assert archive.archive(bad) is None
    assert len(list(tmp_path.rglob("*.parquet"))) == 1
