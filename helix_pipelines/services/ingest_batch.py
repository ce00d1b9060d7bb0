"""One ingest batch: the payloads a worker thread normalizes, stores and archives together.

Runs off the event loop, so fetching goes on while a batch is parsed and written (two cores
busy). What a batch finds is gathered in a `BatchAccount` and merged into the run's report on
the loop, never written into the report from the worker thread.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from helix_pipelines.coinglass.errors import CoinGlassError
from helix_pipelines.contracts.heatmaps import HeatmapRequest, LedgerRow, NormalizedSnapshot
from helix_pipelines.heatmaps.archive import ParquetArchive
from helix_pipelines.heatmaps.normalize import normalize_payload, payload_sha256, snapshot_id_for
from helix_pipelines.heatmaps.quarantine import QuarantineStore
from helix_pipelines.services.ingest_report import IngestReport, Quarantined
from helix_pipelines.warehouse.fetch_log import FetchRecord
from helix_pipelines.warehouse.heatmap_store import HeatmapStore, StoreResult


@dataclass
class Fetched:
    """One payload as it arrived, until its batch is normalized."""

    request: HeatmapRequest
    raw: bytes
    fetched_at: datetime


Outcome = Fetched | NormalizedSnapshot | tuple[HeatmapRequest, CoinGlassError]
"""One fetch: a payload, the ledger row of a key without data, or a failure."""
Stored = tuple["BatchAccount", StoreResult, int]
"""What a stored batch found, what it added, and how many grids it archived."""


@dataclass
class BatchAccount:
    """What normalizing one batch found, kept apart from the report while a worker thread
    fills it and merged into the report on the event loop (`merge_into`)."""

    unchanged: int = 0
    loaded_ids: list[str] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    x_beyond_candles: list[str] = field(default_factory=list)
    variants: Counter[str] = field(default_factory=Counter)
    preview: NormalizedSnapshot | None = None
    fetches: list[FetchRecord] = field(default_factory=list)  # for the planner's fetch log

    def merge_into(self, report: IngestReport) -> None:
        report.unchanged += self.unchanged
        report.loaded_snapshot_ids += self.loaded_ids
        report.quarantined += self.quarantined
        report.x_beyond_candles += self.x_beyond_candles
        report.schema_variants.update(self.variants)
        report.preview = self.preview or report.preview
        report.changed_symbols |= {
            f.symbol for f in self.fetches if f.changed and f.status == "loaded"
        }


def _prepare_batch(
    items: list[Fetched | NormalizedSnapshot],
    store: HeatmapStore,
    quarantine: QuarantineStore,
    preview_symbol: str | None,
    logger: logging.Logger,
) -> tuple[list[NormalizedSnapshot], BatchAccount]:
    """Ledger first: only payloads it does not know are normalized; returns those to store
    (ledger rows of unavailable keys pass straight through) and what was found."""
    account = BatchAccount()
    fresh: list[NormalizedSnapshot] = [i for i in items if isinstance(i, NormalizedSnapshot)]
    account.fetches += [_unavailable_record(s.ledger) for s in fresh]
    batch = [i for i in items if isinstance(i, Fetched)]
    if not batch:
        return fresh, account
    hashes = [payload_sha256(f.raw) for f in batch]
    ids = [snapshot_id_for(f.request, sha) for f, sha in zip(batch, hashes, strict=True)]
    known = store.known_snapshots(ids)
    for fetched, sha, snapshot_id in zip(batch, hashes, ids, strict=True):
        status = known.get(snapshot_id)
        is_preview = fetched.request.symbol == preview_symbol
        if status is not None:
            account.unchanged += 1
        if status == "loaded" and not is_preview:
            account.loaded_ids.append(snapshot_id)
            account.fetches.append(_fetch_request_record(fetched, status, changed=False))
            continue
        snapshot = normalize_payload(fetched.raw, fetched.request, fetched.fetched_at, sha256=sha)
        if snapshot.quarantined:
            reason = snapshot.ledger.reason or "unknown"
            path = quarantine.keep(snapshot.ledger, fetched.raw)
            account.quarantined.append(Quarantined(fetched.request.label, reason, path))
            logger.warning(
                "%s: quarantined (%s); payload kept at %s", fetched.request.label, reason, path
            )
        else:
            account.loaded_ids.append(snapshot_id)
            if snapshot.ledger.x_axis == "beyond_candles":
                account.x_beyond_candles.append(fetched.request.label)
            if is_preview:
                account.preview = snapshot
        account.fetches.append(
            _fetch_request_record(fetched, snapshot.ledger.status, changed=status is None)
        )
        if status is None:
            fresh.append(snapshot)
            if not snapshot.quarantined:
                account.variants[snapshot.ledger.schema_variant or "?"] += 1
    return fresh, account


def normalize_store_and_archive(
    items: list[Fetched | NormalizedSnapshot],
    store: HeatmapStore,
    archive: ParquetArchive,
    quarantine: QuarantineStore,
    preview_symbol: str | None,
    logger: logging.Logger,
) -> Stored:
    """One batch, on a worker thread: normalize what the ledger does not know, store it (one
    transaction), then archive the grids of its new snapshots."""
    fresh, account = _prepare_batch(items, store, quarantine, preview_symbol, logger)
    result = store.store_snapshots(fresh, account.fetches)
    archived = sum(archive.archive(snapshot) is not None for snapshot in fresh)
    return account, result, archived


def _fetch_request_record(fetched: Fetched, status: str, *, changed: bool) -> FetchRecord:
    r = fetched.request
    return FetchRecord(
        r.scope, r.exchange, r.symbol, r.model, r.range, fetched.fetched_at, status, changed
    )


def _unavailable_record(ledger: LedgerRow) -> FetchRecord:
    return FetchRecord(
        ledger.scope,
        ledger.exchange,
        ledger.symbol,
        ledger.model,
        ledger.range,
        ledger.fetched_at,
        ledger.status,
        changed=False,
    )
