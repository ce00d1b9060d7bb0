from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from helix_pipelines.coinglass.endpoints import HeatmapRequest
from helix_pipelines.heatmaps.contracts import CANDLES_SCHEMA, CELLS_SCHEMA, LEDGER_SCHEMA
from helix_pipelines.heatmaps.normalize import normalize_payload
from helix_pipelines.warehouse.base import UniverseMember
from helix_pipelines.warehouse.duckdb_warehouse import DuckDBWarehouse
from helix_pipelines_tests.payloads import encode, v4_document

FETCHED_AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBWarehouse:
    store = DuckDBWarehouse(tmp_path / "nested" / "helix.duckdb")
    store.ensure_schema()
    store.ensure_schema()  # idempotent
    return store


def snapshot(symbol: str = "BTC", model: int = 1, document: dict | None = None):
    request = HeatmapRequest("coin", symbol, model, "3d")
    return normalize_payload(encode(document or v4_document()), request, FETCHED_AT)


def test_tables_have_the_contract_columns(warehouse: DuckDBWarehouse) -> None:
    with warehouse.connect() as con:
        for table, schema in (
            ("heatmap_snapshots", LEDGER_SCHEMA),
            ("liquidation_data_raw", CELLS_SCHEMA),
            ("heatmap_candles", CANDLES_SCHEMA),
        ):
            columns = [row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()]
            assert columns == list(schema), table


def test_store_round_trips_the_normalized_frames(warehouse: DuckDBWarehouse) -> None:
    snap = snapshot()
    result = warehouse.store_snapshots([snap])

    assert (result.snapshots_added, result.cells_added, result.candles_upserted) == (1, 5, 4)
    with warehouse.connect() as con:
        cells = con.sql("SELECT * FROM liquidation_data_raw ORDER BY candle_ts, price").pl()
        candles = con.sql("SELECT * FROM heatmap_candles ORDER BY ts").pl()
        ledger = con.sql("SELECT * FROM heatmap_snapshots").pl()
    assert cells.cast(CELLS_SCHEMA).equals(snap.cells.sort("candle_ts", "price"))  # type: ignore[arg-type]
    assert candles.cast(CANDLES_SCHEMA).equals(snap.candles)  # type: ignore[arg-type]
    assert ledger.cast(LEDGER_SCHEMA).equals(snap.ledger.to_frame())  # type: ignore[arg-type]


def test_storing_again_adds_no_rows(warehouse: DuckDBWarehouse) -> None:
    batch = [snapshot("BTC"), snapshot("ETH"), snapshot("BTC")]  # a repeat inside the batch too
    first = warehouse.store_snapshots(batch)
    again = warehouse.store_snapshots(batch)

    assert first.snapshots_added == 2
    assert first.already_known == 1
    assert (again.snapshots_added, again.cells_added, again.already_known) == (0, 0, 3)
    with warehouse.connect() as con:
        assert con.execute("SELECT count(*) FROM liquidation_data_raw").fetchone() == (10,)
        assert con.execute("SELECT count(*) FROM heatmap_snapshots").fetchone() == (2,)
    assert warehouse.known_snapshots([batch[0].ledger.snapshot_id, "missing"]) == {
        batch[0].ledger.snapshot_id: "loaded"
    }


def test_candles_are_upserted_not_duplicated(warehouse: DuckDBWarehouse) -> None:
    warehouse.store_snapshots([snapshot(model=1)])
    changed = v4_document()
    changed["data"]["price_candlesticks"][0][4] = "999"  # a corrected close for the same ts
    warehouse.store_snapshots([snapshot(model=2, document=changed)])
    with warehouse.connect() as con:
        rows = con.execute("SELECT count(*), max(close) FROM heatmap_candles").fetchone()
    assert rows == (4, 999.0)


def test_quarantined_snapshot_is_ledgered_without_cells(warehouse: DuckDBWarehouse) -> None:
    bad = normalize_payload(
        b'{"code":"0","data":{}}', HeatmapRequest("coin", "BTC", 1, "3d"), FETCHED_AT
    )
    result = warehouse.store_snapshots([bad])
    assert (result.snapshots_added, result.quarantined_added, result.cells_added) == (0, 1, 0)
    assert warehouse.known_snapshots([bad.ledger.snapshot_id]) == {
        bad.ledger.snapshot_id: "quarantined"
    }
    summary = warehouse.ledger_summary()
    assert summary[0]["quarantined"] == 1
    assert summary[0]["loaded"] == 0


def test_failed_batch_rolls_back_entirely(warehouse: DuckDBWarehouse) -> None:
    good = snapshot("BTC")
    broken = snapshot("ETH")
    object.__setattr__(
        broken, "cells", broken.cells.with_columns(pl.lit(None, pl.Float64).alias("price"))
    )
    with pytest.raises(duckdb.ConstraintException):
        warehouse.store_snapshots([good, broken])
    with warehouse.connect() as con:
        assert con.execute("SELECT count(*) FROM heatmap_snapshots").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM liquidation_data_raw").fetchone() == (0,)


def test_quality_counts_violations(warehouse: DuckDBWarehouse) -> None:
    snap = snapshot()
    warehouse.store_snapshots([snap])
    clean = warehouse.quality([snap.ledger.snapshot_id])
    assert (clean.snapshots, clean.cells, clean.violations) == (1, 5, 0)
    with warehouse.connect() as con:
        con.execute("UPDATE liquidation_data_raw SET liq_usd = -1 WHERE price = 110.0")
        con.execute("DELETE FROM liquidation_data_raw WHERE price = 100.0")
        con.execute("DELETE FROM heatmap_candles WHERE ts = (SELECT min(ts) FROM heatmap_candles)")
    dirty = warehouse.quality([snap.ledger.snapshot_id])
    assert dirty.negative_or_nan_usd == 1
    assert dirty.cell_count_mismatch == 1
    assert dirty.candle_ts_without_candle == 1  # the cell at 110.0 lost its candle


def test_universe_is_replaced(warehouse: DuckDBWarehouse) -> None:
    warehouse.replace_universe(
        [UniverseMember("coin", "", "BTC", 1), UniverseMember("coin", "", "ETH", 2)]
    )
    warehouse.replace_universe([UniverseMember("coin", "", "SOL", 1)])
    assert warehouse.load_universe() == [UniverseMember("coin", "", "SOL", 1)]
