"""`heatmap_ingest_runs`: one row per finished `run_ingest`, the same on DuckDB and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import astuple, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from helix_pipelines.coinglass.settings import SourceSettings
from helix_pipelines.contracts.heatmaps import UniverseMember
from helix_pipelines.heatmaps.archive import ParquetArchive
from helix_pipelines.heatmaps.quarantine import QuarantineStore
from helix_pipelines.services.ingest import run_ingest
from helix_pipelines.testing.warehouses import duckdb_warehouse, postgres_warehouse, rows
from helix_pipelines.warehouse import Warehouse
from helix_pipelines.warehouse.database import quoted
from helix_pipelines.warehouse.ingest_runs import INGEST_RUNS_SCHEMA, IngestRun, IngestRunStore

T = datetime(2026, 3, 2, 5, 12, tzinfo=UTC)
SELECT_RUNS = f"SELECT {quoted(list(INGEST_RUNS_SCHEMA))} FROM heatmap_ingest_runs"
COLUMNS = """
SELECT column_name, lower(data_type) FROM information_schema.columns
WHERE table_name = 'heatmap_ingest_runs' ORDER BY ordinal_position
"""
SQL_TYPES = {
    "Datetime": {"timestamp with time zone"},
    "Int16": {"smallint"},
    "Int32": {"integer"},
    "String": {"text", "character varying", "varchar"},
    "Float64": {"double precision", "double"},
}


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    if request.param == "duckdb":
        opened = duckdb_warehouse(tmp_path / "helix.duckdb")
    else:
        opened = postgres_warehouse(request.getfixturevalue("pg_dsn"))
    try:
        yield opened
    finally:
        opened.close()


def a_run(**changes: object) -> IngestRun:
    values: dict[str, object] = {
        "started_at": T, "finished_at": T + timedelta(seconds=3), "model": 3, "range": "24h",
        "source": "coinglass", "universe_size": 435, "requests_sent": 436, "retries": 2,
        "http_429_received": 1, "snapshots_new": 400, "snapshots_unchanged": 30,
        "quarantined": 1, "unavailable": 2, "skipped_unavailable": 3, "failed_requests": 0,
        "duration_seconds": 2.5,
    }  # fmt: skip
    return IngestRun(**{**values, **changes})  # type: ignore[arg-type]


def test_the_table_is_the_contract_on_both_backends(warehouse: Warehouse) -> None:
    assert [f.name for f in fields(IngestRun)] == list(INGEST_RUNS_SCHEMA)
    found = rows(warehouse, COLUMNS)
    assert [name for name, _ in found] == list(INGEST_RUNS_SCHEMA)
    for (name, sql_type), dtype in zip(found, INGEST_RUNS_SCHEMA.values(), strict=True):
        assert sql_type in SQL_TYPES[type(dtype).__name__], name


def test_a_run_is_stored_once_however_often_it_is_recorded(warehouse: Warehouse) -> None:
    store = IngestRunStore(warehouse.database)
    run = a_run()
    store.record(run)
    store.record(run)
    store.record(a_run(range="12h"))  # another series at the same moment is another run
    stored = sorted(rows(warehouse, SELECT_RUNS), key=lambda r: r[3])
    assert [tuple(r) for r in stored] == [astuple(a_run(range="12h")), astuple(run)]


def test_the_sources_vocabulary_is_enforced(warehouse: Warehouse) -> None:
    with pytest.raises(Exception, match=r"(?i)check constraint"):
        IngestRunStore(warehouse.database).record(a_run(source="bybit"))


def test_every_run_ingest_call_records_what_it_did(tmp_path: Path) -> None:
    """Two sandbox runs of one series a second apart: the first stores the payloads (and
    CoinGlass has no 90d data for the young WLD), the second finds them unchanged."""
    warehouse = duckdb_warehouse(tmp_path / "helix.duckdb")
    members = [UniverseMember("coin", "", s, i + 1) for i, s in enumerate(("BTC", "WLD"))]
    archive, quarantine = ParquetArchive(tmp_path / "archive"), QuarantineStore(tmp_path / "q")
    try:
        reports = [
            run_ingest(SourceSettings(), warehouse.heatmaps, archive, quarantine, members, 1,
                       "90d", clock=lambda moment=moment: moment)
            for moment in (T, T + timedelta(seconds=1))
        ]  # fmt: skip
        stored = [dict(zip(INGEST_RUNS_SCHEMA, r, strict=True)) for r in rows(
            warehouse, f"{SELECT_RUNS} ORDER BY started_at"
        )]  # fmt: skip
    finally:
        warehouse.close()
    first, second = stored
    assert (first["started_at"], second["started_at"]) == (T, T + timedelta(seconds=1))
    assert first["finished_at"] == first["started_at"]  # the run's clock, fixed here
    assert (first["model"], first["range"], first["source"]) == (1, "90d", "sandbox")
    assert (first["requests_sent"], first["snapshots_new"], first["unavailable"]) == (2, 1, 1)
    # WLD is not asked again within 24 h of its "no data": one request saved.
    assert (second["requests_sent"], second["snapshots_new"]) == (1, 0)
    assert (second["snapshots_unchanged"], second["skipped_unavailable"]) == (1, 1)
    for row, report in zip(stored, reports, strict=True):
        assert row["universe_size"] == report.requested == len(members)
        assert row["http_429_received"] == row["retries"] == row["failed_requests"] == 0
        assert row["duration_seconds"] == pytest.approx(report.duration_seconds)
