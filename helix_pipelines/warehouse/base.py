"""The warehouse interface every storage backend implements, and the values it exchanges.

Table and column names are those of DESIGN.md section 4 in every backend, so SQL written against
one (Grafana panels, ad-hoc queries) reads the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import polars as pl

from helix_pipelines.heatmaps.normalize import NormalizedSnapshot


@dataclass(frozen=True, slots=True)
class UniverseMember:
    """One symbol the pipeline follows: coin scope (exchange '') or one exchange's pair."""

    scope: str
    exchange: str
    symbol: str
    rank: int


@dataclass(frozen=True, slots=True)
class StoreResult:
    """What one batch added; replays of known snapshots add nothing."""

    snapshots_added: int = 0
    quarantined_added: int = 0
    unavailable_added: int = 0
    cells_added: int = 0
    candles_upserted: int = 0
    already_known: int = 0

    def __add__(self, other: StoreResult) -> StoreResult:
        return StoreResult(
            *(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__)
        )


@dataclass(frozen=True, slots=True)
class QualityReport:
    """Integrity of the stored cells of the given loaded snapshots (all zero when sound)."""

    snapshots: int
    cells: int
    cell_count_mismatch: int  # snapshots whose stored cells differ from the ledger's n_cells
    non_positive_price: int
    negative_or_nan_usd: int
    candle_ts_without_candle: int

    @property
    def violations(self) -> int:
        return (
            self.cell_count_mismatch
            + self.non_positive_price
            + self.negative_or_nan_usd
            + self.candle_ts_without_candle
        )


def unique_snapshots(snapshots: Sequence[NormalizedSnapshot]) -> list[NormalizedSnapshot]:
    """First of each snapshot id, in order (one payload fetched twice in a batch stores once)."""
    seen: set[str] = set()
    unique = []
    for snapshot in snapshots:
        if snapshot.ledger.snapshot_id not in seen:
            seen.add(snapshot.ledger.snapshot_id)
            unique.append(snapshot)
    return unique


class Warehouse(Protocol):
    """Storage for the heatmap ledger, cells, candles and the symbol universe."""

    kind: str
    description: str  # where the data lives, safe to show (no password)

    def ensure_schema(self) -> object:
        """Create missing tables; safe to call on every start."""
        ...

    def close(self) -> None:
        """Release connections (a no-op where there are none to keep)."""
        ...

    def session(self) -> AbstractContextManager[None]:
        """Group a burst of small operations on one connection where that saves time."""
        ...

    def exclusive(self, name: str) -> AbstractContextManager[None]:
        """Hold a named lock across threads and processes that share this warehouse."""
        ...

    def known_snapshots(self, snapshot_ids: Sequence[str]) -> dict[str, str]:
        """Status ('loaded'/'quarantined') of those ids the ledger already holds; one lookup."""
        ...

    def store_snapshots(self, snapshots: Sequence[NormalizedSnapshot]) -> StoreResult:
        """Store a batch in one transaction: ledger rows, cells, candles (upserted).

        Snapshots already in the ledger are skipped, so re-storing a batch adds no rows.
        """
        ...

    def recently_unavailable(self, range_: str, since: datetime) -> set[tuple[str, str, str]]:
        """(scope, exchange, symbol) of keys of `range_` whose newest answer since `since`
        was 'unavailable' (CoinGlass has no data for them), in one lookup."""
        ...

    def replace_universe(self, members: Sequence[UniverseMember]) -> None: ...

    def load_universe(self) -> list[UniverseMember]: ...

    def quality(self, snapshot_ids: Sequence[str]) -> QualityReport: ...

    def ledger_summary(self) -> list[dict[str, object]]:
        """Per model x range: loaded and quarantined snapshot counts, cells, latest fetch."""
        ...

    def latest_snapshots(self, depth: int = 2) -> pl.DataFrame:
        """The `depth` newest loaded snapshots of each heatmap key (`recency` 1 = newest)."""
        ...

    def snapshot_cells(self, snapshot_ids: Sequence[str]) -> pl.DataFrame:
        """snapshot_id, candle_ts, price, liq_usd of these snapshots."""
        ...

    def candles_since(self, since: datetime) -> pl.DataFrame:
        """Every stored candle at or after `since` (the candles contract)."""
        ...

    def upsert_frame(self, table: str, frame: pl.DataFrame) -> int:
        """Write an analytics frame in one transaction, replacing rows with the same key."""
        ...

    def read_table(self, table: str) -> pl.DataFrame:
        """All rows of an analytics table, in its contract schema."""
        ...
