"""Parquet archive of Model 3 heatmap snapshots.

Layout: `<root>/range=<range>/date=<YYYY-MM-DD>/<scope>_<exchange>_<symbol>_<snapshot_id>.parquet`
(hive partitioning, zstd). `range` and `date` live in the path only, so DuckDB
`read_parquet('<root>/**/*.parquet', hive_partitioning=true)` and polars
`scan_parquet(root, hive_partitioning=True)` both return them as columns.

Idempotent: a file is named by its snapshot id and written once (atomic rename), so archiving the
same snapshot again is a no-op.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from helix_pipelines.contracts.heatmaps import NormalizedSnapshot

ARCHIVED_MODEL = 3


class ParquetArchive:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, snapshot: NormalizedSnapshot) -> Path:
        ledger = snapshot.ledger
        day = ledger.fetched_at.date().isoformat()
        exchange = ledger.exchange or "all"
        name = f"{ledger.scope}_{exchange}_{ledger.symbol}_{ledger.snapshot_id}.parquet"
        return self.root / f"range={ledger.range}" / f"date={day}" / name

    def archive(self, snapshot: NormalizedSnapshot) -> Path | None:
        """Write one loaded Model 3 snapshot; None when it is not archived or already there."""
        if snapshot.quarantined or snapshot.ledger.model != ARCHIVED_MODEL:
            return None
        path = self.path_for(snapshot)
        if path.exists():
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".parquet.{os.getpid()}.partial")
        snapshot.cells.drop("range").write_parquet(partial, compression="zstd")
        partial.replace(path)
        return path

    def scan(self) -> pl.LazyFrame:
        """Every archived cell, with `range` and `date` from the path."""
        return pl.scan_parquet(self.root / "**" / "*.parquet", hive_partitioning=True)
