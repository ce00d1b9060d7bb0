"""Behaviour both warehouses share, run against DuckDB and against the real PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from helix_pipelines.contracts.heatmaps import (
    CANDLES_SCHEMA,
    CELLS_SCHEMA,
    LEDGER_SCHEMA,
    PRICE_LEVELS_SCHEMA,
    HeatmapRequest,
    UniverseMember,
)
from helix_pipelines.heatmaps.normalize import normalize_payload
from helix_pipelines.testing.payloads import encode, v4_document
from helix_pipelines.testing.warehouses import (
    KEEP_ALL_CELLS,
    duckdb_warehouse,
    execute,
    postgres_warehouse,
)
from helix_pipelines.testing.warehouses import rows as _rows
from helix_pipelines.warehouse import Warehouse
from helix_pipelines.warehouse.cells_policy import CellsPolicy
from helix_pipelines.warehouse.duckdb_db import DuckDBDatabase
from helix_pipelines.warehouse.migrations import sql_dir
from helix_pipelines.warehouse.postgres_db import PostgresDatabase

FETCHED_AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _open(request: pytest.FixtureRequest, tmp_path: Path, cells: CellsPolicy) -> Warehouse:
    if request.param == "duckdb":
        opened = duckdb_warehouse(tmp_path / "nested" / "helix.duckdb", cells)
    else:
        opened = postgres_warehouse(request.getfixturevalue("pg_dsn"), cells=cells)
    assert opened.database.migrate().applied == []  # idempotent: everything applied already
    return opened


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    """The default policy: profiles in the warehouse, no cells."""
    opened = _open(request, tmp_path, CellsPolicy())
    yield opened
    opened.close()


@pytest.fixture(params=["duckdb", "postgres"])
def keeping(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    """A warehouse that keeps every series' cells as well."""
    opened = _open(request, tmp_path, KEEP_ALL_CELLS)
    yield opened
    opened.close()


def rows(warehouse: Warehouse, query: str) -> list[tuple]:
    """Raw SQL on either backend (test inspection only)."""
    return _rows(warehouse, query)


def frame(warehouse: Warehouse, query: str, schema: dict) -> pl.DataFrame:
    return pl.DataFrame(rows(warehouse, query), schema=list(schema), orient="row").cast(schema)


def snapshot(symbol: str = "BTC", model: int = 1, document: dict | None = None):
    request = HeatmapRequest("coin", symbol, model, "3d")
    return normalize_payload(encode(document or v4_document()), request, FETCHED_AT)


def test_tables_have_the_contract_columns(warehouse: Warehouse) -> None:
    for table, schema in (
        ("heatmap_snapshots", LEDGER_SCHEMA),
        ("liquidation_data_raw", CELLS_SCHEMA),
        ("liquidation_price_levels", PRICE_LEVELS_SCHEMA),
        ("heatmap_candles", CANDLES_SCHEMA),
    ):
        columns = rows(
            warehouse,
            "SELECT column_name FROM information_schema.columns "
            f"WHERE table_name = '{table}' ORDER BY ordinal_position",
        )
        assert [c[0] for c in columns] == list(schema), table


def test_store_round_trips_the_profile_candles_and_ledger_without_cells(
    warehouse: Warehouse,
) -> None:
    snap = snapshot()
    result = warehouse.heatmaps.store_snapshots([snap])

    assert (result.snapshots_added, result.cells_ingested, result.cells_added) == (1, 5, 0)
    assert (result.levels_added, result.candles_upserted) == (5, 4)
    levels = frame(
        warehouse, "SELECT * FROM liquidation_price_levels ORDER BY price", PRICE_LEVELS_SCHEMA
    )
    candles = frame(warehouse, "SELECT * FROM heatmap_candles ORDER BY ts", CANDLES_SCHEMA)
    ledger = frame(warehouse, "SELECT * FROM heatmap_snapshots", LEDGER_SCHEMA)
    assert levels.equals(snap.keyed(snap.levels))
    assert candles.equals(snap.candles)
    assert ledger.equals(replace(snap.ledger, cells_in_warehouse=False).to_frame())
    assert rows(warehouse, "SELECT count(*) FROM liquidation_data_raw") == [(0,)]
    read = warehouse.heatmaps.snapshot_levels([snap.ledger.snapshot_id])
    assert read.drop("snapshot_id").equals(snap.levels)


def test_a_series_the_policy_keeps_stores_its_cells_too(keeping: Warehouse) -> None:
    snap = snapshot()
    result = keeping.heatmaps.store_snapshots([snap])
    assert (result.cells_added, result.levels_added) == (5, 5)
    cells = frame(
        keeping, "SELECT * FROM liquidation_data_raw ORDER BY candle_ts, price", CELLS_SCHEMA
    )
    assert cells.equals(snap.keyed(snap.cells).sort("candle_ts", "price"))
    assert rows(keeping, "SELECT cells_in_warehouse FROM heatmap_snapshots") == [(True,)]


def test_kept_cells_past_their_retention_are_pruned(tmp_path: Path) -> None:
    from datetime import timedelta

    policy = CellsPolicy.parse("1/3d", retention_days=7)
    warehouse = duckdb_warehouse(tmp_path / "helix.duckdb", policy)
    warehouse.heatmaps.store_snapshots([snapshot("BTC"), snapshot("ETH", model=2)])
    assert rows(warehouse, "SELECT DISTINCT symbol FROM liquidation_data_raw") == [("BTC",)]
    assert warehouse.heatmaps.prune_cells(FETCHED_AT + timedelta(days=6)) == 0
    assert warehouse.heatmaps.prune_cells(FETCHED_AT + timedelta(days=8)) == 5
    assert rows(warehouse, "SELECT count(*) FROM liquidation_price_levels") == [(10,)]


def test_storing_again_adds_no_rows(warehouse: Warehouse) -> None:
    batch = [snapshot("BTC"), snapshot("ETH"), snapshot("BTC")]  # a repeat inside the batch too
    first = warehouse.heatmaps.store_snapshots(batch)
    again = warehouse.heatmaps.store_snapshots(batch)

    assert first.snapshots_added == 2
    assert first.already_known == 1
    assert (again.snapshots_added, again.levels_added, again.already_known) == (0, 0, 3)
    assert rows(warehouse, "SELECT count(*) FROM liquidation_price_levels") == [(10,)]
    assert rows(warehouse, "SELECT count(*) FROM heatmap_snapshots") == [(2,)]
    assert warehouse.heatmaps.known_snapshots([batch[0].ledger.snapshot_id, "missing"]) == {
        batch[0].ledger.snapshot_id: "loaded"
    }


def test_candles_are_upserted_not_duplicated(warehouse: Warehouse) -> None:
    warehouse.heatmaps.store_snapshots([snapshot(model=1)])
    changed = v4_document()
    changed["data"]["price_candlesticks"][0][4] = "999"  # a corrected close for the same ts
    warehouse.heatmaps.store_snapshots([snapshot(model=2, document=changed)])
    assert rows(warehouse, "SELECT count(*), max(close) FROM heatmap_candles") == [(4, 999.0)]


def test_quarantined_snapshot_is_ledgered_without_cells(warehouse: Warehouse) -> None:
    bad = normalize_payload(
        b'{"code":"0","data":{}}', HeatmapRequest("coin", "BTC", 1, "3d"), FETCHED_AT
    )
    result = warehouse.heatmaps.store_snapshots([bad])
    assert (result.snapshots_added, result.quarantined_added, result.levels_added) == (0, 1, 0)
    assert warehouse.heatmaps.known_snapshots([bad.ledger.snapshot_id]) == {
        bad.ledger.snapshot_id: "quarantined"
    }
    summary = warehouse.heatmaps.ledger_summary()
    assert summary[0]["quarantined"] == 1
    assert summary[0]["loaded"] == 0


def test_quality_counts_violations_in_the_profiles(warehouse: Warehouse) -> None:
    snap = snapshot()
    warehouse.heatmaps.store_snapshots([snap])
    clean = warehouse.heatmaps.quality([snap.ledger.snapshot_id])
    assert (clean.snapshots, clean.cells, clean.violations) == (1, 5, 0)
    execute(warehouse, "UPDATE liquidation_price_levels SET live_usd = -1 WHERE price = 110.0")
    execute(warehouse, "DELETE FROM liquidation_price_levels WHERE price = 100.0")
    execute(
        warehouse, "DELETE FROM heatmap_candles WHERE ts = (SELECT min(ts) FROM heatmap_candles)"
    )
    dirty = warehouse.heatmaps.quality([snap.ledger.snapshot_id])
    assert dirty.negative_or_nan_usd == 1
    assert dirty.cell_count_mismatch == 1  # the profile accounts for 4 of the ledger's 5 cells
    assert dirty.candle_ts_without_candle == 1  # the snapshot's first candle is gone


def test_quality_checks_kept_cells_as_well(keeping: Warehouse) -> None:
    snap = snapshot()
    keeping.heatmaps.store_snapshots([snap])
    assert keeping.heatmaps.quality([snap.ledger.snapshot_id]).violations == 0
    execute(keeping, "UPDATE liquidation_data_raw SET liq_usd = -1 WHERE price = 110.0")
    execute(keeping, "DELETE FROM liquidation_data_raw WHERE price = 102.5")
    dirty = keeping.heatmaps.quality([snap.ledger.snapshot_id])
    assert (dirty.negative_or_nan_usd, dirty.cell_count_mismatch) == (1, 1)


def test_universe_is_replaced(warehouse: Warehouse) -> None:
    warehouse.heatmaps.replace_universe(
        [UniverseMember("coin", "", "BTC", 1), UniverseMember("coin", "", "ETH", 2)]
    )
    warehouse.heatmaps.replace_universe([UniverseMember("coin", "", "SOL", 1)])
    assert warehouse.heatmaps.load_universe() == [UniverseMember("coin", "", "SOL", 1)]


def test_a_snapshot_whose_x_runs_past_its_candles_round_trips_without_candle_times(
    keeping: Warehouse,
) -> None:
    warehouse = keeping
    document = v4_document(cells=[[x, x % 5, 1.5 * x] for x in range(9)])  # 9 columns, 4 candles
    document["data"].update(precision=2, rangeLow=99.5, rangeHigh=110.5)
    snap = snapshot(model=3, document=document)
    assert snap.ledger.x_axis == "beyond_candles"
    result = warehouse.heatmaps.store_snapshots([snap])
    assert (result.snapshots_added, result.cells_added) == (1, 9)
    cells = frame(warehouse, "SELECT * FROM liquidation_data_raw ORDER BY x_index", CELLS_SCHEMA)
    assert cells.equals(snap.keyed(snap.cells).sort("x_index"))
    assert cells["candle_ts"].null_count() == 9
    no_json = {k: v for k, v in LEDGER_SCHEMA.items() if k != "source_extra"}
    ledger = frame(warehouse, f"SELECT {', '.join(no_json)} FROM heatmap_snapshots", no_json)
    stored = replace(snap.ledger, cells_in_warehouse=True)
    assert ledger.equals(stored.to_frame().drop("source_extra"))
    assert rows(warehouse, "SELECT x_columns, x_axis, candle_ts_unit FROM heatmap_snapshots") == [
        (9, "beyond_candles", "s")
    ]
    (stored_json,) = rows(warehouse, "SELECT CAST(source_extra AS TEXT) FROM heatmap_snapshots")[0]
    assert json.loads(stored_json) == {"precision": 2, "rangeHigh": 110.5, "rangeLow": 99.5}
    quality = warehouse.heatmaps.quality([snap.ledger.snapshot_id])
    assert (quality.cells, quality.violations) == (9, 0)


def test_unavailable_keys_are_ledgered_and_found_for_the_skip_window(
    warehouse: Warehouse,
) -> None:
    from datetime import timedelta

    from helix_pipelines.heatmaps.normalize import unavailable_snapshot

    body = b'{"code":"500","msg":"Server Error"}'
    young = HeatmapRequest("coin", "YOUNG", 1, "1y")
    earlier = unavailable_snapshot(young, body, FETCHED_AT - timedelta(hours=30), "no data")
    latest = unavailable_snapshot(young, body, FETCHED_AT, "no data")
    recovered = unavailable_snapshot(
        HeatmapRequest("coin", "GROWN", 1, "1y"), body, FETCHED_AT - timedelta(hours=2), "no data"
    )
    grown_now = normalize_payload(
        encode(v4_document()), HeatmapRequest("coin", "GROWN", 2, "1y"), FETCHED_AT
    )
    result = warehouse.heatmaps.store_snapshots([earlier, latest, recovered, grown_now])
    assert (result.unavailable_added, result.snapshots_added, result.levels_added) == (3, 1, 5)
    assert earlier.ledger.snapshot_id != latest.ledger.snapshot_id  # each answer is recorded
    since = FETCHED_AT - timedelta(hours=24)
    # GROWN has data again (any model), YOUNG's newest answer in the window is still "no data".
    assert warehouse.heatmaps.recently_unavailable("1y", since) == {("coin", "", "YOUNG")}
    assert warehouse.heatmaps.recently_unavailable("3d", since) == set()
    assert warehouse.heatmaps.recently_unavailable("1y", FETCHED_AT + timedelta(seconds=1)) == set()
    summary = {(r["model"], r["range"]): r for r in warehouse.heatmaps.ledger_summary()}
    assert summary[1, "1y"]["unavailable"] == 3
    assert summary[2, "1y"]["loaded"] == 1


def test_a_frame_reads_a_column_that_is_null_for_its_first_thousands_of_rows(
    warehouse: Warehouse,
) -> None:
    """Snapshots whose x runs past their candles come first in a read and have null candle
    times; the column's type comes from the schema, not from the first rows."""
    schema = {"n": pl.Int32(), "ts": CELLS_SCHEMA["candle_ts"]}
    query = (
        "SELECT n, CASE WHEN n > 5000 THEN TIMESTAMPTZ '2026-11-25 00:05:00+00' END AS ts "
        "FROM range(1, 5003) AS t(n) ORDER BY n"
    )
    if warehouse.database.dialect == "postgres":
        query = query.replace("range(1, 5003) AS t(n)", "generate_series(1, 5002) AS n")
    with warehouse.database.connect() as conn:
        read = conn.frame(query, (), schema)
    assert read.schema == pl.Schema(schema)
    assert read["ts"].null_count() == 5000
    assert read["ts"].drop_nulls().to_list() == [datetime(2026, 11, 25, 0, 5, tzinfo=UTC)] * 2


def migrated_before(
    version: str, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> DuckDBDatabase | PostgresDatabase:
    """An existing database: every migration numbered below `version` applied, none after."""
    before = tmp_path / "sql"
    before.mkdir()
    for migration in sorted(sql_dir().glob("*.sql")):
        if migration.name < version:
            (before / migration.name).write_text(migration.read_text())
    database = (
        DuckDBDatabase(tmp_path / "old.duckdb")
        if backend == "duckdb"
        else PostgresDatabase(request.getfixturevalue("pg_dsn"))
    )
    database.migrate(before)
    return database


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_orders_stored_before_011_survive_the_move_to_one_key_per_mode(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """An existing database: orders written when orderLinkId alone was the key are all there
    after 011, and from then on two modes can hold the same orderLinkId."""
    database = migrated_before("011", backend, tmp_path, request)
    try:
        with database.connect() as conn:
            conn.execute(
                "INSERT INTO executor_orders (order_link_id, signal_id, mode, symbol, side, "
                "status, created_at, updated_at, filled_qty) VALUES "
                "('hx-1', 's1', 'paper', 'BTC', 'long', 'filled', ?, ?, '0.01')",
                [FETCHED_AT, FETCHED_AT],
            )
        applied = database.migrate().applied  # type: ignore[attr-defined]
        assert applied[0] == "011_orders_per_mode"
        warehouse = Warehouse.on(database)
        kept = warehouse.executor_store("paper").order("hx-1")
        assert kept is not None
        assert (kept.signal_id, kept.status, kept.filled_qty) == ("s1", "filled", "0.01")
        testnet = warehouse.executor_store("testnet")
        testnet.save_order(replace(kept, status="pending"))
        assert (again := warehouse.executor_store("paper").order("hx-1")) is not None
        assert again.status == "filled"
    finally:
        database.close()


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_snapshots_stored_with_cells_before_012_get_their_profiles_and_spans(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """An existing database whose snapshots kept every cell and (older still) no candle span:
    012 builds their profiles from the cells, so the analytics read them like new ones."""
    database = migrated_before("012", backend, tmp_path, request)
    try:
        snap = snapshot()  # cells at x 0, 0, 1, 3, 2: the live column is x = 3 (price 101)
        old_ledger = snap.ledger.to_frame().drop("cells_in_warehouse")
        old_ledger = old_ledger.with_columns(
            pl.lit(None, LEDGER_SCHEMA["first_candle_ts"]).alias("first_candle_ts"),
            pl.lit(None, LEDGER_SCHEMA["last_candle_ts"]).alias("last_candle_ts"),
        )
        with database.transaction() as tx:
            tx.append("heatmap_snapshots", old_ledger)
            tx.append("liquidation_data_raw", snap.keyed(snap.cells))
        assert "012_price_levels" in database.migrate().applied  # type: ignore[attr-defined]
        warehouse = Warehouse.on(database)
        levels = warehouse.heatmaps.snapshot_levels([snap.ledger.snapshot_id])
        assert levels.drop("snapshot_id").equals(snap.levels)
        # The cells name every candle (x 0..3), so their span is the payload's.
        spans = "SELECT first_candle_ts, last_candle_ts, cells_in_warehouse FROM heatmap_snapshots"
        assert _rows(warehouse, spans) == [
            (snap.ledger.first_candle_ts, snap.ledger.last_candle_ts, True)
        ]
    finally:
        database.close()
