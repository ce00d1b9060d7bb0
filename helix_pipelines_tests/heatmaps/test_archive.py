from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest

from helix_pipelines.contracts.heatmaps import HeatmapRequest
from helix_pipelines.heatmaps.archive import FILE_SCHEMA, ParquetArchive, relative_path
from helix_pipelines.heatmaps.normalize import normalize_payload
from helix_pipelines.testing.payloads import encode, v4_document

FETCHED_AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def snapshot(model: int, range_: str = "3d", symbol: str = "BTC"):
    request = HeatmapRequest("coin", symbol, model, range_)
    return normalize_payload(encode(v4_document()), request, FETCHED_AT)


def test_every_model_is_archived_hive_partitioned_with_zstd(tmp_path: Path) -> None:
    archive = ParquetArchive(tmp_path)
    for model in (1, 2, 3):
        written = archive.archive(snapshot(model))
        assert written is not None
        assert Path(written).parent == tmp_path / f"model={model}" / "range=3d" / "date=2026-11-25"
    metadata = pq.ParquetFile(written).metadata
    columns = {
        metadata.row_group(0).column(i).path_in_schema: metadata.row_group(0).column(i)
        for i in range(metadata.num_columns)
    }
    assert set(columns) == set(FILE_SCHEMA)  # model and range live in the path only
    assert {c.compression for c in columns.values()} == {"ZSTD"}
    # The measured encoding: USD byte-stream-split, everything else dictionary-encoded.
    assert "BYTE_STREAM_SPLIT" in columns["liq_usd"].encodings
    assert any("DICTIONARY" in e for e in columns["symbol"].encodings)


def test_archive_reads_back_identically_with_duckdb_polars_and_by_key(tmp_path: Path) -> None:
    archive = ParquetArchive(tmp_path)
    snap = snapshot(3)
    archive.archive(snap)
    archive.archive(snapshot(1, "1y", "ETH"))

    scanned = archive.scan().filter(pl.col("range") == "3d").collect()
    expected = snap.cells.sort("candle_ts", "price")
    assert scanned.height == expected.height
    assert scanned.sort("candle_ts", "price")["liq_usd"].to_list() == expected["liq_usd"].to_list()
    assert set(scanned["model"].to_list()) == {3}

    read = archive.read(snap.ledger)
    assert read is not None
    keyed = snap.keyed(snap.cells).drop("model", "range")
    assert read.equals(keyed)

    glob = str(tmp_path / "**" / "*.parquet")
    rows = duckdb.sql(
        'SELECT model, "range", symbol, count(*), sum(liq_usd) '
        f"FROM read_parquet('{glob}', hive_partitioning=true) GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    total = expected["liq_usd"].sum()
    assert rows == [(1, "1y", "ETH", 5, total), (3, "3d", "BTC", 5, total)]


def test_only_loaded_snapshots_are_archived_once(tmp_path: Path) -> None:
    archive = ParquetArchive(tmp_path)
    assert archive.archive(snapshot(3)) is not None
    assert archive.archive(snapshot(3)) is None  # same snapshot id: already there
    bad = normalize_payload(b"{", HeatmapRequest("coin", "BTC", 3, "3d"), FETCHED_AT)
    assert archive.archive(bad) is None
    assert len(list(tmp_path.rglob("*.parquet"))) == 1
    assert not list(tmp_path.rglob("*.partial"))
    assert archive.size_bytes() == sum(f.stat().st_size for f in tmp_path.rglob("*.parquet"))


def test_a_uri_root_goes_through_the_same_filesystem_layer(tmp_path: Path) -> None:
    archive = ParquetArchive(f"file://{tmp_path}/lake")
    snap = snapshot(2, "12h")
    written = archive.archive(snap)
    assert written == f"{tmp_path}/lake/{relative_path(snap.ledger)}"
    assert Path(written).is_file()
    read = archive.read(snap.ledger)
    assert read is not None
    assert read["liq_usd"].to_list() == snap.cells["liq_usd"].to_list()
    assert archive.scan().collect().height == snap.cells.height


def test_a_missing_grid_reads_as_none_and_an_empty_archive_scans_empty(tmp_path: Path) -> None:
    archive = ParquetArchive(tmp_path / "nothing-yet")
    assert archive.read(snapshot(3).ledger) is None
    assert archive.size_bytes() == 0
    with pytest.raises(FileNotFoundError):
        archive.scan()
