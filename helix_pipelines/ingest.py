"""Ingest one model x range for the whole universe: fetch concurrently, normalize, store, archive.

Plain Python (no Dagster): the heatmap asset, the CLI and the benchmarks all call this.

Grain and idempotency: one call covers one (model, range) for every universe member. Payloads are
handled in batches; for each batch the ledger is asked first which snapshot ids it already holds,
and only new payloads are normalized and stored, in one transaction per batch. Re-running with
unchanged payloads therefore adds no rows. A payload that fails validation is stored as a
quarantined ledger row and its bytes are kept in the quarantine folder; a symbol whose request
fails is reported and the others go on. Only an authentication/plan error stops the whole run,
because every other symbol would fail the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from helix_pipelines.clock import utc_now
from helix_pipelines.coinglass.endpoints import HeatmapRequest
from helix_pipelines.coinglass.errors import CoinGlassAuthError, CoinGlassError
from helix_pipelines.coinglass.source import HeatmapSource
from helix_pipelines.heatmaps.archive import ParquetArchive
from helix_pipelines.heatmaps.normalize import (
    NormalizedSnapshot,
    normalize_payload,
    payload_sha256,
    snapshot_id_for,
)
from helix_pipelines.heatmaps.quarantine import QuarantineStore
from helix_pipelines.warehouse.base import StoreResult, UniverseMember, Warehouse

log = logging.getLogger(__name__)


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
    schema_variants: Counter[str] = field(default_factory=Counter)
    archived_files: int = 0
    loaded_snapshot_ids: list[str] = field(default_factory=list)
    preview: NormalizedSnapshot | None = None
    duration_seconds: float = 0.0

    @property
    def covered(self) -> int:
        """Members with a usable snapshot now in the warehouse (new or unchanged)."""
        return len(self.loaded_snapshot_ids)

    @property
    def coverage(self) -> float:
        return self.covered / self.requested if self.requested else 0.0


@dataclass
class _Fetched:
    request: HeatmapRequest
    raw: bytes
    fetched_at: datetime


async def ingest_heatmaps(
    source: HeatmapSource,
    warehouse: Warehouse,
    archive: ParquetArchive,
    quarantine: QuarantineStore,
    members: Sequence[UniverseMember],
    model: int,
    range_: str,
    *,
    preview_symbol: str | None = None,
    batch_size: int = 25,
    clock: Callable[[], datetime] = utc_now,
    logger: logging.Logger = log,
) -> IngestReport:
    """Fetch, normalize and store one model x range for `members`; see the module docstring."""
    started = time.perf_counter()
    requests = [HeatmapRequest(m.scope, m.symbol, model, range_, m.exchange) for m in members]
    report = IngestReport(
        model=model, range=range_, source_kind=source.kind, requested=len(requests)
    )
    preview_symbol = preview_symbol or (requests[0].symbol if requests else None)
    pending: list[_Fetched] = []
    done = 0

    async def fetch(request: HeatmapRequest) -> _Fetched | tuple[HeatmapRequest, CoinGlassError]:
        try:
            raw = await source.fetch_heatmap(request)
        except CoinGlassAuthError:
            raise
        except CoinGlassError as exc:
            return request, exc
        return _Fetched(request, raw, clock())

    tasks = [asyncio.create_task(fetch(r)) for r in requests]
    try:
        for finished in asyncio.as_completed(tasks):
            outcome = await finished
            done += 1
            if isinstance(outcome, _Fetched):
                pending.append(outcome)
            else:
                request, error = outcome
                report.failed.append((request.label, str(error)))
                logger.warning("%s: fetch failed: %s", request.label, error)
            if len(pending) >= batch_size or done == len(tasks):
                _store_batch(
                    pending, report, warehouse, archive, quarantine, preview_symbol, logger
                )
                pending = []
                logger.info(
                    "m%d %s: %d/%d symbols done (%d new, %d unchanged, %d quarantined, %d failed)",
                    model, range_, done, len(tasks), report.stored.snapshots_added,
                    report.unchanged, len(report.quarantined), len(report.failed),
                )  # fmt: skip
    finally:
        for task in tasks:
            task.cancel()
    report.duration_seconds = time.perf_counter() - started
    return report


def _store_batch(
    batch: list[_Fetched],
    report: IngestReport,
    warehouse: Warehouse,
    archive: ParquetArchive,
    quarantine: QuarantineStore,
    preview_symbol: str | None,
    logger: logging.Logger,
) -> None:
    """Ledger first: only payloads it does not know are normalized, then stored in one go."""
    if not batch:
        return
    hashes = [payload_sha256(f.raw) for f in batch]
    ids = [snapshot_id_for(f.request, sha) for f, sha in zip(batch, hashes, strict=True)]
    known = warehouse.known_snapshots(ids)
    fresh: list[NormalizedSnapshot] = []
    for fetched, sha, snapshot_id in zip(batch, hashes, ids, strict=True):
        status = known.get(snapshot_id)
        is_preview = fetched.request.symbol == preview_symbol
        if status is not None:
            report.unchanged += 1
        if status == "loaded" and not is_preview:
            report.loaded_snapshot_ids.append(snapshot_id)
            continue
        snapshot = normalize_payload(fetched.raw, fetched.request, fetched.fetched_at, sha256=sha)
        if snapshot.quarantined:
            reason = snapshot.ledger.reason or "unknown"
            path = quarantine.keep(snapshot.ledger, fetched.raw)
            report.quarantined.append(Quarantined(fetched.request.label, reason, path))
            logger.warning(
                "%s: quarantined (%s); payload kept at %s", fetched.request.label, reason, path
            )
        else:
            report.loaded_snapshot_ids.append(snapshot_id)
            if is_preview:
                report.preview = snapshot
        if status is None:
            fresh.append(snapshot)
            if not snapshot.quarantined:
                report.schema_variants[snapshot.ledger.schema_variant or "?"] += 1
    report.stored = report.stored + warehouse.store_snapshots(fresh)
    for snapshot in fresh:
        if archive.archive(snapshot) is not None:
            report.archived_files += 1
