from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from helix_pipelines.coinglass.errors import CoinGlassAuthError, CoinGlassServerError
from helix_pipelines.contracts.heatmaps import UniverseMember
from helix_pipelines.heatmaps.archive import ParquetArchive
from helix_pipelines.heatmaps.quarantine import QuarantineStore
from helix_pipelines.services.ingest import ingest_heatmaps
from helix_pipelines.services.ingest_report import IngestOptions, IngestReport
from helix_pipelines.testing.payloads import encode, v4_document
from helix_pipelines.testing.sources import ScriptedSource
from helix_pipelines.testing.warehouses import duckdb_warehouse, rows
from helix_pipelines_tests.heatmaps.test_normalize import QUARANTINE_CASES

# One symbol per kind of bad payload the issue names, plus healthy symbols around them.
BAD = {
    "TRUNC": QUARANTINE_CASES["truncated JSON"][0],
    "CODE": QUARANTINE_CASES["code other than 0"][0],
    "EMPTY": QUARANTINE_CASES["empty data object"][0],
    "XOOR": QUARANTINE_CASES["x index past any plausible column"][0],
    "YOOR": QUARANTINE_CASES["y index out of range"][0],
    "NEG": QUARANTINE_CASES["negative value"][0],
    "NAN": QUARANTINE_CASES["NaN value (literal)"][0],
    "LEVELS": QUARANTINE_CASES["non-increasing price levels"][0],
    "CANDLE": QUARANTINE_CASES["unparseable candle field"][0],
}
GOOD = {"BTC": encode(v4_document()), "ETH": encode(v4_document(n_candles=6))}


class Stores:
    def __init__(self, root: Path) -> None:
        self.warehouse = duckdb_warehouse(root / "helix.duckdb")
        self.archive = ParquetArchive(root / "archive")
        self.quarantine = QuarantineStore(root / "quarantine")

    def ingest(self, source: ScriptedSource, model: int = 3, clock=None, **kwargs) -> IngestReport:
        members = [UniverseMember("coin", "", s, i) for i, s in enumerate(source.by_symbol, 1)]
        return asyncio.run(
            ingest_heatmaps(
                source,
                self.warehouse.heatmaps,
                self.archive,
                self.quarantine,
                members,
                model,
                "3d",
                IngestOptions(**kwargs),
                **({"clock": clock} if clock else {}),
            )
        )

    def count(self, sql: str) -> int:
        return int(rows(self.warehouse, sql)[0][0])


@pytest.fixture
def stores(tmp_path: Path) -> Stores:
    return Stores(tmp_path)


def test_bad_payloads_are_quarantined_and_the_others_stored(stores: Stores) -> None:
    source = ScriptedSource({**GOOD, **BAD})
    report = stores.ingest(source, batch_size=4)

    assert report.requested == 11
    assert report.stored.snapshots_added == 2
    assert (report.stored.cells_ingested, report.stored.cells_added) == (10, 0)
    assert report.stored.levels_added == 10
    assert sorted(q.label.split()[0] for q in report.quarantined) == sorted(BAD)
    assert report.coverage == pytest.approx(2 / 11)
    assert report.schema_variants == {"v4": 2}
    # Every quarantined payload is ledgered with its reason and kept byte for byte.
    assert (
        stores.count(
            "SELECT count(*) FROM heatmap_snapshots WHERE status = 'quarantined' AND reason <> ''"
        )
        == 9
    )
    for item in report.quarantined:
        assert item.payload_path.read_bytes() == BAD[item.label.split()[0]]
        assert item.payload_path.with_suffix(".json").exists()
    assert stores.count("SELECT count(DISTINCT symbol) FROM liquidation_price_levels") == 2
    assert report.archived_files == 2  # both good snapshots' grids archived


def test_reingesting_unchanged_payloads_adds_no_rows(stores: Stores) -> None:
    source = ScriptedSource({**GOOD, "TRUNC": BAD["TRUNC"]})
    stores.ingest(source)
    before = [
        stores.count(f"SELECT count(*) FROM {t}")
        for t in ("heatmap_snapshots", "liquidation_price_levels", "heatmap_candles")
    ]

    again = stores.ingest(source)

    after = [
        stores.count(f"SELECT count(*) FROM {t}")
        for t in ("heatmap_snapshots", "liquidation_price_levels", "heatmap_candles")
    ]
    assert after == before
    assert again.stored.snapshots_added == 0
    assert again.stored.levels_added == 0
    assert again.unchanged == 3
    assert again.covered == 2  # unchanged snapshots still count as covered
    assert len(again.quarantined) == 1  # a known bad payload is still reported
    assert again.archived_files == 0


def test_failed_requests_are_reported_and_the_run_goes_on(stores: Stores) -> None:
    source = ScriptedSource(
        {**GOOD, "DOWN": CoinGlassServerError("GET ...: HTTP 503 (gave up after 5 attempts)")}
    )
    report = stores.ingest(source)
    assert report.stored.snapshots_added == 2
    assert report.failed == [("DOWN m3 3d", "GET ...: HTTP 503 (gave up after 5 attempts)")]


def test_auth_error_stops_the_whole_run(stores: Stores) -> None:
    source = ScriptedSource({"BTC": CoinGlassAuthError("plan lacks this endpoint", status=401)})
    with pytest.raises(CoinGlassAuthError, match="plan lacks"):
        stores.ingest(source)


def test_preview_snapshot_is_kept_even_when_unchanged(stores: Stores) -> None:
    source = ScriptedSource(GOOD)
    stores.ingest(source)
    report = stores.ingest(source, preview_symbol="ETH")
    assert report.preview is not None
    assert report.preview.ledger.symbol == "ETH"
    assert report.preview.cells.height == 5


def test_progress_is_logged_per_batch(stores: Stores, caplog: pytest.LogCaptureFixture) -> None:
    source = ScriptedSource({**GOOD, **BAD})
    with caplog.at_level(logging.INFO, logger="helix_pipelines.services.ingest"):
        stores.ingest(source, batch_size=5)
    progress = [r.getMessage() for r in caplog.records if "symbols done" in r.getMessage()]
    assert progress[-1] == "m3 3d: 11/11 symbols done (2 new, 0 unchanged, 9 quarantined, 0 failed)"
    assert len(progress) == 3  # 5 + 5 + 1


def test_unavailable_keys_are_ledgered_left_out_of_coverage_and_skipped_for_a_while(
    stores: Stores,
) -> None:
    from datetime import UTC, datetime, timedelta

    from helix_pipelines.coinglass.errors import CoinGlassUnavailableError

    now = [datetime(2026, 11, 25, 12, 0, tzinfo=UTC)]
    body = b'{"code":"500","msg":"Server Error"}'
    young = CoinGlassUnavailableError("GET ...: CoinGlass has no data for it", body=body)
    source = ScriptedSource({**GOOD, "YOUNG": young})

    first = stores.ingest(source, clock=lambda: now[0])
    assert first.unavailable == ["YOUNG"]
    assert (first.requested, first.expected, first.covered, first.coverage) == (3, 2, 2, 1.0)
    assert first.stored.unavailable_added == 1
    assert first.requests_saved == 0
    assert stores.count("SELECT count(*) FROM heatmap_snapshots WHERE status = 'unavailable'") == 1

    now[0] += timedelta(hours=23)
    source.stats.requests_sent = 0
    other_model = stores.ingest(source, model=1, clock=lambda: now[0])
    assert other_model.skipped_unavailable == ["YOUNG m1 3d"]  # per (coin, range), any model
    assert other_model.requests_saved == 1
    assert source.stats.requests_sent == 2  # BTC and ETH only
    assert other_model.coverage == 1.0

    now[0] += timedelta(hours=2)  # 25 h after the answer: asked again
    again = stores.ingest(source, model=2, clock=lambda: now[0])
    assert (again.unavailable, again.skipped_unavailable) == (["YOUNG"], [])

    never_skip = stores.ingest(source, model=2, clock=lambda: now[0], skip_unavailable_for=None)
    assert never_skip.skipped_unavailable == []


class SlowStore:
    """The real store, but every batch takes a while: storing is the bottleneck."""

    def __init__(self, store, seconds: float) -> None:
        self._store, self._seconds = store, seconds

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    def store_snapshots(self, snapshots, fetches=()):
        import time

        time.sleep(self._seconds)
        return self._store.store_snapshots(snapshots, fetches)


def test_fetching_waits_for_storage_so_payloads_in_flight_stay_bounded(stores: Stores) -> None:
    """60 symbols fetched instantly, stored slowly: without backpressure all 60 payloads would be
    in memory at once; with it, never more than the bound."""
    symbols = {f"C{i:02d}": encode(v4_document(n_candles=4 + i % 3)) for i in range(60)}
    source = ScriptedSource(symbols)
    slow = SlowStore(stores.warehouse.heatmaps, 0.02)
    members = [UniverseMember("coin", "", s, i) for i, s in enumerate(symbols, 1)]
    options = IngestOptions(batch_size=4, batches_in_flight=2, max_payloads_in_flight=8)
    report = asyncio.run(
        ingest_heatmaps(source, slow, stores.archive, stores.quarantine, members, 1, "3d", options)
    )
    assert report.stored.snapshots_added == 60
    assert report.in_flight.peak_payloads <= 8
    assert report.in_flight.waits > 0  # fetches did wait for storage
    assert stores.count("SELECT count(*) FROM heatmap_snapshots") == 60


def test_a_byte_bound_smaller_than_one_payload_still_makes_progress(stores: Stores) -> None:
    """Each batch is flushed once it holds its share of the byte budget, so a tiny budget means
    one payload at a time, never a run that waits for room that cannot come."""
    symbols = {f"C{i:02d}": encode(v4_document()) for i in range(12)}
    report = stores.ingest(
        ScriptedSource(symbols), model=1, max_payloads_in_flight=8, max_bytes_in_flight=10
    )
    assert report.stored.snapshots_added == 12
    assert report.in_flight.peak_payloads <= 2


def test_options_that_could_never_fill_a_batch_are_refused() -> None:
    with pytest.raises(ValueError, match="must be at least batch_size"):
        IngestOptions(batch_size=8, max_payloads_in_flight=4)
