"""PostgreSQL-only behaviour, on the machine's real server (a fresh database per test)."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from helix_pipelines.coinglass.sandbox import SandboxHeatmaps
from helix_pipelines.contracts.heatmaps import HeatmapRequest, NormalizedSnapshot
from helix_pipelines.contracts.vocabulary import MODELS
from helix_pipelines.heatmaps.normalize import normalize_payload
from helix_pipelines.secrets import redacted_dsn
from helix_pipelines.testing.warehouses import KEEP_ALL_CELLS, postgres_warehouse
from helix_pipelines.warehouse import postgres_db
from helix_pipelines.warehouse.migrations import (
    TIMESCALE_FACTS,
    TimescaleSupport,
    apply_migrations,
    discover,
    sql_dir,
    timescale_support,
)
from helix_pipelines.warehouse.postgres_db import (
    PostgresConnection,
    PostgresDatabase,
    PostgresMigrationTarget,
    WarehouseConnectionError,
)

AT = datetime(2026, 11, 25, 12, 7, tzinfo=UTC)
SANDBOX = SandboxHeatmaps(clock=lambda: AT)


def sandbox_snapshot(symbol: str, model: int, range_: str = "7d") -> NormalizedSnapshot:
    request = HeatmapRequest("coin", symbol, model, range_)
    return normalize_payload(SANDBOX.payload(request), request, AT)


def count(dsn: str, query: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


APPLIED_ON_PLAIN_POSTGRES = [
    "001_heatmap_tables",
    "004_analytics_tables",
    "005_executor_tables",
    "006_real_payload_facts",
    "007_executor_fills",
    "008_snapshot_checks.postgres",
    "009_one_word_per_concept",
    "010_cells_brin.postgres",
    "011_orders_per_mode",
    "012_price_levels",
    "013_price_levels_brin.postgres",
    "015_universe_venue_symbols",
    "016_liquidation_radar",
    "018_liquidation_events",
    "020_heatmap_fetch_log",
    "021_live_state",
    "022_heatmap_ingest_runs",
]


def test_migrations_apply_twice_cleanly_and_skip_timescale_with_one_log_line(
    pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn, caplog.at_level(logging.INFO):
        first = apply_migrations(PostgresMigrationTarget(conn))
        second = apply_migrations(PostgresMigrationTarget(conn))
        recorded = [
            row[0] for row in conn.execute("SELECT version FROM helix_migrations ORDER BY 1")
        ]
        hypertable_functions = conn.execute(
            "SELECT count(*) FROM pg_proc WHERE proname = 'create_hypertable'"
        ).fetchone()
    assert first.applied == APPLIED_ON_PLAIN_POSTGRES
    assert first.timescale is False
    assert first.skipped_timescale == [
        "002_hypertables.timescale",
        "003_price_levels_daily.timescale",
        "014_price_levels_hypertable.timescale",
        "017_radar_hypertable.timescale",
        "019_liquidation_events_hypertable.timescale",
    ]
    assert second.applied == []
    assert recorded == first.applied
    assert hypertable_functions == (0,)
    skip_lines = [
        r for r in caplog.records if "TimescaleDB is not installed on this server" in r.getMessage()
    ]
    assert len(skip_lines) == 2  # one per apply, naming every skipped file
    assert (
        "002_hypertables.timescale, 003_price_levels_daily.timescale" in skip_lines[0].getMessage()
    )


@pytest.mark.parametrize(
    ("created", "installed", "preload", "usable", "says"),
    [
        (False, False, "", False, "not installed on this server"),
        (False, True, "", False, "not preloaded: add timescaledb to shared_preload_libraries"),
        (True, True, "pg_stat_statements", False, "not preloaded"),
        (False, True, "pg_stat_statements, timescaledb", True, "created on first use"),
        (True, True, '"timescaledb"', True, "available (created)"),
    ],
)
def test_timescale_is_used_only_when_the_server_says_it_works(
    created: bool, installed: bool, preload: str, usable: bool, says: str
) -> None:
    support = TimescaleSupport.from_answers(created, installed, preload)
    assert support.usable is usable
    assert says in support.explanation()


def test_the_server_is_asked_what_it_has(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        support = timescale_support(PostgresConnection(conn))
    assert support == TimescaleSupport(created=False, installed=False, preloaded=False)


class AnswersTimescaleFacts(PostgresConnection):
    """A real connection, except that the TimescaleDB question gets scripted answers."""

    def __init__(self, conn: psycopg.Connection, answers: tuple[bool, bool, str]) -> None:
        super().__init__(conn)
        self._answers = answers

    def rows(self, sql_text: str, params: object = ()) -> list[tuple]:
        if sql_text == TIMESCALE_FACTS:
            return [self._answers]
        return super().rows(sql_text, params)  # type: ignore[arg-type]


class ScriptedTarget(PostgresMigrationTarget):
    def __init__(self, conn: psycopg.Connection, answers: tuple[bool, bool, str]) -> None:
        super().__init__(conn)
        self._port = AnswersTimescaleFacts(conn, answers)


def test_installed_but_not_preloaded_goes_on_as_plain_postgres_with_the_fix_named(
    pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as real, caplog.at_level(logging.INFO):
        result = apply_migrations(ScriptedTarget(real, (False, True, "pg_stat_statements")))
        assert not real.closed
        assert real.execute("SELECT count(*) FROM heatmap_snapshots").fetchone() == (0,)
    assert result.timescale is False
    assert result.skipped_timescale == [
        "002_hypertables.timescale",
        "003_price_levels_daily.timescale",
        "014_price_levels_hypertable.timescale",
        "017_radar_hypertable.timescale",
        "019_liquidation_events_hypertable.timescale",
    ]
    (line,) = [r for r in caplog.records if "not preloaded" in r.getMessage()]
    assert line.levelno == logging.WARNING
    assert "shared_preload_libraries" in line.getMessage()


def test_a_missing_database_fails_at_once_with_the_reason(pg_dsn: str) -> None:
    missing = pg_dsn.replace("dbname=helix_test_", "dbname=helix_missing_")
    with pytest.raises(WarehouseConnectionError, match="does not exist") as caught:
        PostgresDatabase(missing)
    assert "helix_missing_" in str(caught.value)


def test_an_unknown_login_fails_at_once_and_never_shows_the_password(pg_dsn: str) -> None:
    dsn = f"{pg_dsn} user=helix_no_such_role password=s3cretpw"
    with pytest.raises(WarehouseConnectionError, match='role "helix_no_such_role"') as caught:
        PostgresDatabase(dsn)
    assert "s3cretpw" not in str(caught.value)


def test_concurrent_migrators_apply_each_migration_once(pg_dsn: str) -> None:
    results = []

    def migrate() -> None:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            results.append(apply_migrations(PostgresMigrationTarget(conn)).applied)

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [[], [], [], APPLIED_ON_PLAIN_POSTGRES]


def test_migration_files_are_well_formed() -> None:
    migrations = discover(sql_dir())
    assert [m.version[:3] for m in migrations] == [f"{n:03d}" for n in range(1, 23)]
    assert [m.only for m in migrations] == [
        None, "timescale", "timescale", None, None, None, None, "postgres", None, "postgres", None,
        None, "postgres", "timescale", None, None, "timescale", None, "timescale", None, None,
        None,
    ]  # fmt: skip
    no_transaction = {"003", "014"}  # continuous aggregates
    assert [m.transactional for m in migrations] == [
        m.version[:3] not in no_transaction for m in migrations
    ]
    assert all(m.statements for m in migrations)


def test_badly_named_migration_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "1_tables.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError, match=r"1_tables\.sql is not named NNN_name"):
        discover(tmp_path)


def test_dsn_password_is_never_shown(pg_dsn: str) -> None:
    assert "s3cret" not in redacted_dsn("postgresql://helix:s3cret@db.example:5432/quantprod")
    assert "password=***" in redacted_dsn("host=db user=helix password=s3cret dbname=quantprod")
    warehouse = postgres_warehouse(pg_dsn)
    assert "dbname=helix_test_" in warehouse.description
    warehouse.close()


def test_connection_killed_mid_copy_leaves_nothing_and_a_retry_loads_once(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = [sandbox_snapshot(s, 1, "1y") for s in ("BTC", "ETH", "SOL", "XRP")]
    expected_cells = sum(s.cells.height for s in batch)
    monkeypatch.setattr(postgres_db, "COPY_CHUNK_BYTES", 64 << 10)  # many chunks per snapshot
    first_chunk_sent, resume = threading.Event(), threading.Event()
    real_write = psycopg.Copy.write

    def write_then_pause(copy: psycopg.Copy, buffer: bytes) -> None:
        real_write(copy, buffer)
        if not first_chunk_sent.is_set():
            first_chunk_sent.set()
            resume.wait(timeout=30)

    warehouse = postgres_warehouse(pg_dsn, cells=KEEP_ALL_CELLS)  # the largest COPY there is
    monkeypatch.setattr(psycopg.Copy, "write", write_then_pause)
    errors: list[BaseException] = []

    def load() -> None:
        try:
            warehouse.heatmaps.store_snapshots(batch)
        except BaseException as exc:  # the killed connection's error, checked below
            errors.append(exc)

    loader = threading.Thread(target=load)
    loader.start()
    assert first_chunk_sent.wait(timeout=30)
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND query LIKE '%COPY%liquidation_data_raw%' "
            "AND pid <> pg_backend_pid()"
        ).fetchall()
    resume.set()
    loader.join(timeout=30)

    assert killed == [(True,)]
    assert len(errors) == 1
    assert isinstance(errors[0], psycopg.OperationalError)
    assert count(pg_dsn, "SELECT count(*) FROM heatmap_snapshots") == 0
    assert count(pg_dsn, "SELECT count(*) FROM liquidation_data_raw") == 0
    assert count(pg_dsn, "SELECT count(*) FROM liquidation_price_levels") == 0

    retry = warehouse.heatmaps.store_snapshots(batch)  # no pause: the first chunk is past
    again = warehouse.heatmaps.store_snapshots(batch)
    warehouse.close()
    assert retry.snapshots_added == 4
    assert retry.cells_added == expected_cells
    assert again.snapshots_added == 0
    assert count(pg_dsn, "SELECT count(*) FROM heatmap_snapshots") == 4
    assert count(pg_dsn, "SELECT count(*) FROM liquidation_data_raw") == expected_cells


def test_concurrent_loads_of_different_partitions_neither_deadlock_nor_duplicate(
    pg_dsn: str,
) -> None:
    """Three models of the same symbols share candle rows: the classic deadlock setup."""
    symbols = ["BTC", "ETH", "SOL", "XRP", "DOGE", "BNB"]
    batches = {model: [sandbox_snapshot(s, model) for s in symbols] for model in MODELS}
    warehouse = postgres_warehouse(pg_dsn, max_connections=6, cells=KEEP_ALL_CELLS)
    try:
        errors: list[BaseException] = []

        def load(model: int, reverse: bool) -> None:
            batch = batches[model][::-1] if reverse else batches[model]
            try:
                for _ in range(2):  # the second pass replays: must add nothing
                    warehouse.heatmaps.store_snapshots(batch)
            except BaseException as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=load, args=(m, r)) for m in MODELS for r in (False, True)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        warehouse.close()
    assert errors == []
    expected_cells = sum(s.cells.height for batch in batches.values() for s in batch)
    assert count(pg_dsn, "SELECT count(*) FROM heatmap_snapshots") == 18
    assert count(pg_dsn, "SELECT count(*) FROM liquidation_data_raw") == expected_cells
    expected_levels = sum(s.levels.height for batch in batches.values() for s in batch)
    assert count(pg_dsn, "SELECT count(*) FROM liquidation_price_levels") == expected_levels
    assert count(pg_dsn, "SELECT count(*) FROM heatmap_candles") == 6 * 336
