"""What one ingest run is told (`IngestOptions`) and what it reports (`IngestReport`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from helix_pipelines.contracts.heatmaps import HeatmapRequest, NormalizedSnapshot
from helix_pipelines.services.inflight import InFlightStats
from helix_pipelines.warehouse.heatmap_store import StoreResult


@dataclass(frozen=True, slots=True)
class Quarantined:
    label: str
    reason: str
    payload_path: Path


@dataclass
class IngestReport:
    """What one model x range ingest did, for metadata, checks and the CLI."""

    model: int
    range: str
    source_kind: str
    requested: int = 0
    stored: StoreResult = field(default_factory=StoreResult)
    unchanged: int = 0
    quarantined: list[Quarantined] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    failed_requests: list[HeatmapRequest] = field(default_factory=list)  # the same, as requests
    unavailable: list[str] = field(default_factory=list)
    skipped_unavailable: list[str] = field(default_factory=list)
    x_beyond_candles: list[str] = field(default_factory=list)
    schema_variants: Counter[str] = field(default_factory=Counter)
    archived_files: int = 0
    cells_pruned: int = 0
    in_flight: InFlightStats = field(default_factory=InFlightStats)
    loaded_snapshot_ids: list[str] = field(default_factory=list)
    changed_symbols: set[str] = field(default_factory=set)  # a new loaded payload this run
    preview: NormalizedSnapshot | None = None
    duration_seconds: float = 0.0
    request_stats: dict[str, int] = field(default_factory=dict)
    """What the run cost against the plan's budget (requests, retries, 429s, ...)."""

    @property
    def covered(self) -> int:
        """Members with a usable snapshot now in the warehouse (new or unchanged)."""
        return len(self.loaded_snapshot_ids)

    @property
    def expected(self) -> int:
        """Members that should have data: the universe less keys CoinGlass has none for."""
        return self.requested - len(self.unavailable) - len(self.skipped_unavailable)

    @property
    def coverage(self) -> float:
        if self.expected <= 0:
            return 1.0 if self.requested else 0.0
        return self.covered / self.expected

    @property
    def requests_saved(self) -> int:
        """Requests not sent for keys known to be unavailable (at least one each)."""
        return len(self.skipped_unavailable)


@dataclass(frozen=True)
class IngestOptions:
    """How one run paces its work; the defaults keep a real-size partition of any universe
    under about 1 GB (bench/full_sweep.py)."""

    preview_symbol: str | None = None
    batch_size: int = 8
    batches_in_flight: int = 2
    max_payloads_in_flight: int = 48
    max_bytes_in_flight: int = 192 << 20
    skip_unavailable_for: timedelta | None = timedelta(hours=24)

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.batches_in_flight < 1:
            raise ValueError("batch_size and batches_in_flight must be at least 1")
        if self.max_payloads_in_flight < self.batch_size:
            raise ValueError(
                f"max_payloads_in_flight ({self.max_payloads_in_flight}) must be at least "
                f"batch_size ({self.batch_size}), or no batch could ever fill"
            )
