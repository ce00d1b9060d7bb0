"""The Parquet archive: the full grid of every loaded snapshot, all three models.

The warehouse keeps each snapshot's ledger row, candles and price-level profile; the cells
themselves (tens of thousands a snapshot) live here, where a cell costs about 6.4 bytes, and in
the warehouse only where configured.

Layout: `<root>/model=<m>/range=<range>/date=<YYYY-MM-DD>/<scope>_<exchange>_<symbol>_<id>.parquet`
(hive partitioning). `model`, `range` and `date` live in the path only, so DuckDB
`read_parquet('<root>/**/*.parquet', hive_partitioning=true)`, polars and pyarrow datasets all
return them as columns. The root is a local folder or any URI pyarrow's filesystems open
(`s3://bucket/prefix`, `gs://...`, `file:///...`); credentials come from the environment the
way pyarrow reads them (for S3: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, ...).

Encoding, chosen by measurement at real sizes (docs/performance.md): zstd, dictionary encoding
for every column but `liq_usd`, byte-stream-split for `liq_usd` (its exponent bytes then
compress; 6.4 bytes a cell against 7.8 with pyarrow's defaults).

Idempotent: a file is named by its snapshot id and written once (locally through a temporary
name and a rename; object stores make a PUT visible whole), so archiving a snapshot again is a
no-op.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Protocol

import polars as pl
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from helix_pipelines.contracts.heatmaps import CELLS_SCHEMA, NormalizedSnapshot

PARTITION_COLUMNS = ("model", "range")
"""Key columns the path holds instead of the file."""
FILE_SCHEMA = {c: t for c, t in CELLS_SCHEMA.items() if c not in PARTITION_COLUMNS}
_DICTIONARY_COLUMNS = [c for c in FILE_SCHEMA if c != "liq_usd"]


class SnapshotKey(Protocol):
    """What names one snapshot's file: a `LedgerRow` has it, and so does every view of a
    stored snapshot that keeps its ledger's key."""

    @property
    def snapshot_id(self) -> str: ...
    @property
    def fetched_at(self) -> datetime: ...
    @property
    def scope(self) -> str: ...
    @property
    def exchange(self) -> str: ...
    @property
    def symbol(self) -> str: ...
    @property
    def model(self) -> int: ...
    @property
    def range(self) -> str: ...


def relative_path(key: SnapshotKey) -> str:
    """`model=<m>/range=<r>/date=<d>/<scope>_<exchange>_<symbol>_<id>.parquet`."""
    name = f"{key.scope}_{key.exchange or 'all'}_{key.symbol}_{key.snapshot_id}.parquet"
    day = key.fetched_at.date().isoformat()
    return f"model={key.model}/range={key.range}/date={day}/{name}"


class ParquetArchive:
    def __init__(self, root: str | Path) -> None:
        self.root = str(root)
        if "://" in self.root:
            self._fs, self._base = pafs.FileSystem.from_uri(self.root)
            self._local = self.root.startswith("file://")
        else:
            self._fs, self._base = pafs.LocalFileSystem(), str(Path(self.root).resolve())
            self._local = True

    def path_for(self, key: SnapshotKey) -> str:
        """The file's path inside the root's filesystem."""
        return f"{self._base.rstrip('/')}/{relative_path(key)}"

    def archive(self, snapshot: NormalizedSnapshot) -> str | None:
        """Write one loaded snapshot's grid; None when it is not loaded or already there."""
        if not snapshot.loaded:
            return None
        path = self.path_for(snapshot.ledger)
        if self._fs.get_file_info(path).type != pafs.FileType.NotFound:
            return None
        table = snapshot.keyed(snapshot.cells).drop(PARTITION_COLUMNS).to_arrow()
        self._fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        target = f"{path}.{os.getpid()}.partial" if self._local else path
        pq.write_table(
            table,
            target,
            filesystem=self._fs,
            compression="zstd",
            use_dictionary=_DICTIONARY_COLUMNS,
            use_byte_stream_split=["liq_usd"],
        )
        if target != path:
            self._fs.move(target, path)
        return path

    def read(self, key: SnapshotKey) -> pl.DataFrame | None:
        """One snapshot's cells (`FILE_SCHEMA`), or None when it was never archived here."""
        path = self.path_for(key)
        if self._fs.get_file_info(path).type == pafs.FileType.NotFound:
            return None
        frame = pl.DataFrame(pl.from_arrow(pq.read_table(path, filesystem=self._fs)))
        return frame.cast(FILE_SCHEMA)  # type: ignore[arg-type]

    def scan(self) -> pl.LazyFrame:
        """Every archived cell, with `model`, `range` and `date` from the path."""
        dataset = ds.dataset(self._base, filesystem=self._fs, format="parquet", partitioning="hive")
        return pl.scan_pyarrow_dataset(dataset)

    def size_bytes(self) -> int:
        """Bytes of every file in the archive (for the benchmarks and the metadata)."""
        selector = pafs.FileSelector(self._base, recursive=True, allow_not_found=True)
        return sum(
            info.size or 0
            for info in self._fs.get_file_info(selector)
            if info.type == pafs.FileType.File
        )
