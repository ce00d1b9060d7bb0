"""Ingest one model x range for the whole universe: fetch concurrently, normalize, store, archive.

Plain Python (no Dagster): the heatmap asset, the CLI and the benchmarks all call this.

Grain and idempotency: one call covers one (model, range) for every universe member. Payloads are
handled in batches; for each batch the ledger is asked first which snapshot ids it already holds,
and only new payloads are normalized and stored, in one transaction per batch. Re-running with
unchanged payloads therefore adds no rows. A payload that fails validation is stored as a
quarantined ledger row and its bytes are kept in the quarantine folder; a symbol whose request
fails is reported and the others go on. Only an authentication/plan error stops the whole run,
because every other symbol would fail the same way.

A key CoinGlass has no data for (a young coin on a range longer than its history) is stored as
an `unavailable` ledger row, is not part of the coverage, and that (symbol, range) is skipped
by every model for `skip_unavailable_for` (24 h by default), so the budget goes to data that
exists. The report counts the requests saved.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from helix_pipelines.clock import utc_now
from helix_pipelines.coinglass.errors import (
    CoinGlassAuthError,
    CoinGlassError,
    CoinGlassUnavailableError,
)
from helix_pipelines.coinglass.settings import SourceSettings, open_source
from helix_pipelines.coinglass.source import HeatmapSource
from helix_pipelines.contracts.heatmaps import HeatmapRequest, NormalizedSnapshot, UniverseMember
from helix_pipelines.heatmaps.archive import ParquetArchive
from helix_pipelines.heatmaps.normalize import (
    normalize_payload,
    payload_sha256,
    snapshot_id_for,
    unavailable_snapshot,
)
from helix_pipelines.heatmaps.quarantine import QuarantineStore
from helix_pipelines.warehouse.heatmap_store import HeatmapStore, StoreResult

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
    unavailable: list[str] = field(default_factory=list)
    skipped_unavailable: list[str] = field(default_factory=list)
    x_beyond_candles: list[str] = field(default_factory=list)
    schema_variants: Counter[str] = field(default_factory=Counter)
    archived_files: int = 0
    loaded_snapshot_ids: list[str] = field(default_factory=list)
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


@dataclass
class _Fetched:
    request: HeatmapRequest
    raw: bytes
    fetched_at: datetime


async def ingest_heatmaps(
    source: HeatmapSource,
    store: HeatmapStore,
    archive: ParquetArchive,
    quarantine: QuarantineStore,
    members: Sequence[UniverseMember],
    model: int,
    range_: str,
    *,
    preview_symbol: str | None = None,
    batch_size: int = 4,
    batches_in_flight: int = 2,
    skip_unavailable_for: timedelta | None = timedelta(hours=24),
    clock: Callable[[], datetime] = utc_now,
    logger: logging.Logger = log,
) -> IngestReport:
    """Fetch, normalize and store one model x range for `members`; see the module docstring.

    `batch_size` snapshots share a transaction; up to `batches_in_flight` batches load on worker
    threads while fetching and normalizing go on, so the warehouse and Python work in parallel.
    Small batches keep both busy (bench/end_to_end.py: 4 x 2 was fastest on two cores).
    """
    started = time.perf_counter()
    report = IngestReport(
        model=model, range=range_, source_kind=source.kind, requested=len(members)
    )
    requests = _requests_to_send(members, report, store, skip_unavailable_for, clock(), logger)
    preview_symbol = preview_symbol or (requests[0].symbol if requests else None)
    pending: list[_Fetched | NormalizedSnapshot] = []
    done = 0

    async def fetch(
        request: HeatmapRequest,
    ) -> _Fetched | NormalizedSnapshot | tuple[HeatmapRequest, CoinGlassError]:
        try:
            raw = await source.fetch_heatmap(request)
        except CoinGlassAuthError:
            raise
        except CoinGlassUnavailableError as exc:
            return unavailable_snapshot(request, exc.body, clock(), str(exc))
        except CoinGlassError as exc:
            return request, exc
        return _Fetched(request, raw, clock())

    storing: deque[tuple[asyncio.Task[tuple[StoreResult, int]], int]] = deque()

    async def finish_oldest() -> None:
        """Wait for the oldest batch in the warehouse, account for it, and log progress."""
        task, stored_through = storing.popleft()
        result, archived = await task
        report.stored = report.stored + result
        report.archived_files += archived
        logger.info(
            "m%d %s: %d/%d symbols done (%d new, %d unchanged, %d quarantined, %d failed)",
            model,
            range_,
            stored_through,
            len(requests),
            report.stored.snapshots_added,
            report.unchanged,
            len(report.quarantined),
            len(report.failed),
        )

    tasks = [asyncio.create_task(fetch(r)) for r in requests]
    try:
        for finished in asyncio.as_completed(tasks):
            done += 1
            _account(await finished, report, pending, logger)
            if len(pending) >= batch_size or done == len(tasks):
                fresh = _prepare_batch(pending, report, store, quarantine, preview_symbol, logger)
                pending = []
                # Batches load on worker threads (each its own transaction and connection) while
                # this loop goes on fetching and normalizing; at most `batches_in_flight` at once.
                while len(storing) >= batches_in_flight:
                    await finish_oldest()
                worker = asyncio.to_thread(_store_and_archive, fresh, store, archive)
                storing.append((asyncio.create_task(worker), done))
        while storing:
            await finish_oldest()
    finally:
        for task in tasks:
            task.cancel()
        if storing:
            await asyncio.wait([task for task, _ in storing])
    report.duration_seconds = time.perf_counter() - started
    return report


@dataclass(frozen=True)
class IngestOptions:
    preview_symbol: str | None = None
    batch_size: int = 4
    batches_in_flight: int = 2
    skip_unavailable_for: timedelta | None = timedelta(hours=24)


def run_ingest(
    source_settings: SourceSettings,
    store: HeatmapStore,
    archive: ParquetArchive,
    quarantine: QuarantineStore,
    members: Sequence[UniverseMember],
    model: int,
    range_: str,
    options: IngestOptions = IngestOptions(),
    *,
    logger: logging.Logger = log,
) -> IngestReport:
    """One model x range from a source the settings open (and close): the entry point of the
    heatmap asset and the CLI alike."""

    async def run() -> IngestReport:
        source = open_source(source_settings)
        try:
            report = await ingest_heatmaps(
                source,
                store,
                archive,
                quarantine,
                members,
                model,
                range_,
                preview_symbol=options.preview_symbol,
                batch_size=options.batch_size,
                batches_in_flight=options.batches_in_flight,
                skip_unavailable_for=options.skip_unavailable_for,
                logger=logger,
            )
            report.request_stats = source.stats.as_metadata()
            return report
        finally:
            await source.aclose()

    return asyncio.run(run())


def _requests_to_send(
    members: Sequence[UniverseMember],
    report: IngestReport,
    store: HeatmapStore,
    skip_for: timedelta | None,
    now: datetime,
    logger: logging.Logger,
) -> list[HeatmapRequest]:
    """One request per member, less the keys CoinGlass said it has no data for within
    `skip_for` (one ledger lookup; recorded in the report as skipped)."""
    skip = store.recently_unavailable(report.range, now - skip_for) if skip_for else set()
    requests = []
    for m in members:
        request = HeatmapRequest(m.scope, m.symbol, report.model, report.range, m.exchange)
        if (m.scope, m.exchange, m.symbol) in skip:
            report.skipped_unavailable.append(request.label)
        else:
            requests.append(request)
    if report.skipped_unavailable:
        logger.info(
            "m%d %s: skipped %d symbols CoinGlass had no data for within %s: %s",
            report.model,
            report.range,
            len(report.skipped_unavailable),
            skip_for,
            ", ".join(report.skipped_unavailable[:20]),
        )
    return requests


def _account(
    outcome: _Fetched | NormalizedSnapshot | tuple[HeatmapRequest, CoinGlassError],
    report: IngestReport,
    pending: list[_Fetched | NormalizedSnapshot],
    logger: logging.Logger,
) -> None:
    """File one fetch outcome: a payload or an unavailable key to store, or a failure."""
    if isinstance(outcome, NormalizedSnapshot):
        report.unavailable.append(outcome.ledger.symbol)
        logger.info(
            "%s m%d %s: no data at CoinGlass (recorded as unavailable)",
            outcome.ledger.symbol,
            report.model,
            report.range,
        )
        pending.append(outcome)
    elif isinstance(outcome, _Fetched):
        pending.append(outcome)
    else:
        request, error = outcome
        report.failed.append((request.label, str(error)))
        logger.warning("%s: fetch failed: %s", request.label, error)


def _prepare_batch(
    items: list[_Fetched | NormalizedSnapshot],
    report: IngestReport,
    store: HeatmapStore,
    quarantine: QuarantineStore,
    preview_symbol: str | None,
    logger: logging.Logger,
) -> list[NormalizedSnapshot]:
    """Ledger first: only payloads it does not know are normalized; returns those to store
    (ledger rows of unavailable keys pass straight through)."""
    fresh: list[NormalizedSnapshot] = [i for i in items if isinstance(i, NormalizedSnapshot)]
    batch = [i for i in items if isinstance(i, _Fetched)]
    if not batch:
        return fresh
    hashes = [payload_sha256(f.raw) for f in batch]
    ids = [snapshot_id_for(f.request, sha) for f, sha in zip(batch, hashes, strict=True)]
    known = store.known_snapshots(ids)
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
            if snapshot.ledger.x_axis == "beyond_candles":
                report.x_beyond_candles.append(fetched.request.label)
            if is_preview:
                report.preview = snapshot
        if status is None:
            fresh.append(snapshot)
            if not snapshot.quarantined:
                report.schema_variants[snapshot.ledger.schema_variant or "?"] += 1
    return fresh


def _store_and_archive(
    fresh: list[NormalizedSnapshot], store: HeatmapStore, archive: ParquetArchive
) -> tuple[StoreResult, int]:
    """Store one batch (one transaction), then archive its new Model 3 snapshots."""
    result = store.store_snapshots(fresh)
    archived = sum(archive.archive(snapshot) is not None for snapshot in fresh)
    return result, archived
