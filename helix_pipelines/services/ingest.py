"""Ingest one model x range for the whole universe: fetch concurrently, normalize, store, archive.

Plain Python (no Dagster): the heatmap asset, the CLI and the benchmarks all call this.

Grain and idempotency: one call covers one (model, range) for every universe member. Every loaded
snapshot's grid goes to the Parquet archive; the warehouse gets its ledger row, price-level
profile and candles (and its cells where configured). Payloads are handled in batches; for each
batch the ledger is asked first which snapshot ids it already holds, and only new payloads are
normalized and stored, in one transaction per batch. Re-running with unchanged payloads
therefore adds no rows. A payload that fails validation is stored as a
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
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

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
from helix_pipelines.heatmaps.normalize import unavailable_snapshot
from helix_pipelines.heatmaps.quarantine import QuarantineStore
from helix_pipelines.services.inflight import InFlight
from helix_pipelines.services.ingest_batch import (
    Fetched,
    Outcome,
    Stored,
    normalize_store_and_archive,
)
from helix_pipelines.services.ingest_report import IngestOptions, IngestReport
from helix_pipelines.warehouse.heatmap_store import HeatmapStore
from helix_pipelines.warehouse.ingest_runs import IngestRun, IngestRunStore

log = logging.getLogger(__name__)


async def ingest_heatmaps(
    source: HeatmapSource,
    store: HeatmapStore,
    archive: ParquetArchive,
    quarantine: QuarantineStore,
    members: Sequence[UniverseMember],
    model: int,
    range_: str,
    options: IngestOptions | None = None,
    *,
    clock: Callable[[], datetime] = utc_now,
    logger: logging.Logger = log,
) -> IngestReport:
    """Fetch, normalize and store one model x range for `members`; see the module docstring.

    `batch_size` snapshots share a transaction; up to `batches_in_flight` batches load on worker
    threads while fetching and normalizing go on, so the warehouse and Python work in parallel
    (bench/full_sweep.py: 8 x 2 kept closest to the API floor on two cores; 4 x 2 cost 8 % more
    time). A fetch starts only while fewer than
    `max_payloads_in_flight` payloads and `max_bytes_in_flight` of their bytes are between
    request and storage (`services.inflight`): memory stays flat however large the universe.
    """
    options = options or IngestOptions()
    started = time.perf_counter()
    report = IngestReport(
        model=model, range=range_, source_kind=source.kind, requested=len(members)
    )
    requests = _requests_to_send(
        members, report, store, options.skip_unavailable_for, clock(), logger
    )
    run = _Run(source, store, archive, quarantine, options, report, clock, logger)
    run.preview_symbol = options.preview_symbol or (requests[0].symbol if requests else None)
    await run.run(requests)
    report.cells_pruned = store.prune_cells(clock())
    report.in_flight = run.inflight.stats
    report.duration_seconds = time.perf_counter() - started
    return report


class _Run:
    """The moving parts of one ingest: fetches, the batch being filled, batches storing."""

    def __init__(
        self,
        source: HeatmapSource,
        store: HeatmapStore,
        archive: ParquetArchive,
        quarantine: QuarantineStore,
        options: IngestOptions,
        report: IngestReport,
        clock: Callable[[], datetime],
        logger: logging.Logger,
    ) -> None:
        self.source, self.store, self.archive, self.quarantine = source, store, archive, quarantine
        self.options, self.report, self.clock, self.logger = options, report, clock, logger
        self.preview_symbol: str | None = None
        self.inflight = InFlight(options.max_payloads_in_flight, options.max_bytes_in_flight)
        # Fetches hand their outcome over this queue, not as task results: a finished task
        # keeps its result while the task is referenced, which would keep every payload alive.
        self.outcomes: asyncio.Queue[Outcome | BaseException] = asyncio.Queue()
        self.storing: deque[tuple[asyncio.Task[Stored], int]] = deque()
        self.total = 0
        # Flushing a batch by bytes too keeps a batch of large payloads from holding the whole
        # byte budget while it waits to fill (no fetch could start, so it never would).
        self.flush_bytes = options.max_bytes_in_flight // (options.batches_in_flight + 1)

    async def run(self, requests: list[HeatmapRequest]) -> None:
        self.total = len(requests)
        tasks = [asyncio.create_task(self.fetch(r)) for r in requests]
        pending: list[Fetched | NormalizedSnapshot] = []
        try:
            for done in range(1, len(tasks) + 1):
                outcome = await self.outcomes.get()
                if isinstance(outcome, BaseException):
                    raise outcome
                _account(outcome, self.report, pending, self.logger)
                held = sum(len(i.raw) for i in pending if isinstance(i, Fetched))
                full = len(pending) >= self.options.batch_size or held >= self.flush_bytes
                if full or done == len(tasks):
                    await self.flush(pending, held, done)
                    pending = []
            while self.storing:
                await self.finish_oldest()
        finally:
            for task in tasks:
                task.cancel()
            if self.storing:
                await asyncio.wait([task for task, _ in self.storing])

    async def fetch(self, request: HeatmapRequest) -> None:
        await self.inflight.enter()
        try:
            outcome: Outcome | BaseException = await _fetch_one(self.source, request, self.clock)
        except Exception as exc:  # an auth error (or a bug): the run stops with it
            outcome = exc
        if isinstance(outcome, Fetched):
            self.inflight.hold(len(outcome.raw))
        elif not isinstance(outcome, NormalizedSnapshot):
            self.inflight.release(1, 0)  # nothing to store: its room is free at once
        self.outcomes.put_nowait(outcome)

    async def flush(
        self, pending: list[Fetched | NormalizedSnapshot], held: int, done: int
    ) -> None:
        """Hand the batch to a worker thread, which normalizes what the ledger does not know
        and stores it while this loop goes on fetching (both cores busy, the loop never held
        up by a parse); its room in flight is given back once it is stored."""
        while len(self.storing) >= self.options.batches_in_flight:
            await self.finish_oldest()
        task = asyncio.create_task(
            asyncio.to_thread(
                normalize_store_and_archive,
                pending,
                self.store,
                self.archive,
                self.quarantine,
                self.preview_symbol,
                self.logger,
            )
        )
        count = len(pending)
        task.add_done_callback(lambda _: self.inflight.release(count, held))
        self.storing.append((task, done))

    async def finish_oldest(self) -> None:
        """Wait for the oldest batch in the warehouse, account for it, and log progress."""
        task, stored_through = self.storing.popleft()
        account, result, archived = await task
        report = self.report
        account.merge_into(report)
        report.stored = report.stored + result
        report.archived_files += archived
        self.logger.info(
            "m%d %s: %d/%d symbols done (%d new, %d unchanged, %d quarantined, %d failed)",
            report.model,
            report.range,
            stored_through,
            self.total,
            report.stored.snapshots_added,
            report.unchanged,
            len(report.quarantined),
            len(report.failed),
        )


async def _fetch_one(
    source: HeatmapSource, request: HeatmapRequest, clock: Callable[[], datetime]
) -> Outcome:
    """One request's outcome: a payload, the ledger row of a key without data, or a failure.
    An auth/plan error propagates: every other symbol would fail the same way."""
    try:
        raw = await source.fetch_heatmap(request)
    except CoinGlassUnavailableError as exc:
        return unavailable_snapshot(request, exc.body, clock(), str(exc))
    except CoinGlassAuthError:
        raise
    except CoinGlassError as exc:
        return request, exc
    return Fetched(request, raw, clock())


def run_ingest(
    source_settings: SourceSettings,
    store: HeatmapStore,
    archive: ParquetArchive,
    quarantine: QuarantineStore,
    members: Sequence[UniverseMember],
    model: int,
    range_: str,
    options: IngestOptions | None = None,
    *,
    logger: logging.Logger = log,
    clock: Callable[[], datetime] = utc_now,
) -> IngestReport:
    """One model x range from a source the settings open (and close): the entry point of the
    heatmap asset and the CLI alike. A finished run is recorded in `heatmap_ingest_runs` (its
    request counts and outcome; a run that raised records nothing). `clock` times the fetches
    and the run (the sandbox serves the heatmaps of its time)."""

    async def run() -> IngestReport:
        source = open_source(source_settings, clock)
        try:
            report = await ingest_heatmaps(
                source,
                store,
                archive,
                quarantine,
                members,
                model,
                range_,
                options,
                clock=clock,
                logger=logger,
            )
            report.request_stats = source.stats.as_metadata()
            return report
        finally:
            await source.aclose()

    started_at = clock()
    report = asyncio.run(run())
    IngestRunStore(store.db).record(_ingest_run(report, started_at, clock()))
    return report


def _ingest_run(report: IngestReport, started_at: datetime, finished_at: datetime) -> IngestRun:
    """The run's `heatmap_ingest_runs` row, named as its Dagster metadata is."""
    return IngestRun(
        started_at=started_at,
        finished_at=finished_at,
        model=report.model,
        range=report.range,
        source=report.source_kind,
        universe_size=report.requested,
        requests_sent=report.request_stats["requests_sent"],
        retries=report.request_stats["retries"],
        http_429_received=report.request_stats["http_429_received"],
        snapshots_new=report.stored.snapshots_added,
        snapshots_unchanged=report.unchanged,
        quarantined=len(report.quarantined),
        unavailable=len(report.unavailable),
        skipped_unavailable=len(report.skipped_unavailable),
        failed_requests=len(report.failed),
        duration_seconds=report.duration_seconds,
    )


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
    outcome: Outcome,
    report: IngestReport,
    pending: list[Fetched | NormalizedSnapshot],
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
    elif isinstance(outcome, Fetched):
        pending.append(outcome)
    else:
        request, error = outcome
        report.failed.append((request.label, str(error)))
        report.failed_requests.append(request)
        logger.warning("%s: fetch failed: %s", request.label, error)
