"""End to end: `dg.materialize` of the universe and every model x range against a local fake
CoinGlass server, then the warehouse (profiles, candles, the cells it keeps) and the archive
(every grid) are compared with what the server served, decoded independently with the stdlib
json module."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import psycopg
import pytest

from helix_pipelines.contracts.heatmaps import HeatmapRequest
from helix_pipelines.contracts.vocabulary import MODELS, RANGES
from helix_pipelines.defs.heatmaps import ingest_heatmaps_step, materialized_metadata
from helix_pipelines.defs.partitions import heatmap_partition_key
from helix_pipelines.defs.resources import (
    ArchiveResource,
    CoinGlassResource,
    UniverseResource,
    WarehouseResource,
)
from helix_pipelines.defs.universe import symbol_universe
from helix_pipelines.testing.coinglass_server import (
    FakeCoinGlassServer,
    default_heatmap_payload,
)

pytestmark = pytest.mark.e2e

API_KEY = "e2e-secret-key-do-not-log"
SYMBOLS = ["BTC", "ETH", "SOL", "XRP", "DOGE"]
BROKEN = "DOGE"  # a complete HTTP response whose JSON is cut short: quarantined, never stored
YOUNG = "SOL"  # 200 days of history: CoinGlass has no 1y heatmap for it (code 500, every time)
KEPT = {(3, "12h"), (3, "24h")}  # the series that keep their cells in the warehouse too


def payload(path: str, params: Mapping[str, str]) -> bytes:
    """The fake's default payload (shaped like the real ones); DOGE's cut in half."""
    body = default_heatmap_payload(path, params)
    if params.get("symbol") == BROKEN:
        return body[: len(body) // 2]
    return body


def expected_rows(body: bytes) -> tuple[list[tuple], list[tuple]]:
    """(cells, candles) decoded from the served bytes without any Helix code: cells as
    (x, candle time or None when x runs past the candles, price, usd)."""
    data = json.loads(body)["data"]
    levels = data.get("y_axis", data.get("y"))
    cells = data.get("liquidation_leverage_data", data.get("liq"))
    candles = data.get("price_candlesticks", data.get("prices"))
    divisor = 1000 if candles[0][0] > 10**11 else 1
    ts = [datetime.fromtimestamp(c[0] / divisor, UTC) for c in candles]
    aligned = max(x for x, _, _ in cells) < len(candles)
    cell_rows = sorted(
        (x, ts[x] if aligned else None, float(levels[y]), float(v)) for x, y, v in cells
    )
    candle_rows = [(ts[i], *(float(f) for f in c[1:])) for i, c in enumerate(candles)]
    return cell_rows, candle_rows


def expected_levels(body: bytes) -> list[tuple]:
    """(price, cells, cumulative USD, USD in the last column) per level that has cells, summed
    in the served order."""
    data = json.loads(body)["data"]
    levels = data.get("y_axis", data.get("y"))
    cells = data.get("liquidation_leverage_data", data.get("liq"))
    last = max(x for x, _, _ in cells)
    per_level: dict[int, list] = {}
    for x, y, v in cells:
        row = per_level.setdefault(y, [0, 0.0, 0.0])
        row[0] += 1
        row[1] += float(v)
        row[2] += float(v) if x == last else 0.0
    return [(float(levels[y]), *per_level[y]) for y in sorted(per_level)]


def archived(run: dict) -> pl.DataFrame:
    return (
        pl.scan_parquet(run["root"] / "archive" / "**" / "*.parquet", hive_partitioning=True)
        .select("symbol", "model", "range", "x_index", "candle_ts", "price", "liq_usd")
        .collect()
    )


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    root: Path = tmp_path_factory.mktemp("e2e")
    dsn = request.getfixturevalue("module_pg_dsn") if request.param == "postgres" else None
    with FakeCoinGlassServer(
        api_key=API_KEY, limit_per_minute=2000, payload_factory=payload, history_days={YOUNG: 200}
    ) as server:
        resources = {
            "coinglass": CoinGlassResource(
                api_key=API_KEY, base_url=server.base_url, rate_limit_per_minute=2000
            ),
            "warehouse": WarehouseResource(
                duckdb_path=str(root / "helix.duckdb"),
                pg_dsn=dsn,
                warehouse_cells=",".join(f"{m}/{r}" for m, r in sorted(KEPT)),
            ),
            "archive": ArchiveResource(
                archive_root=str(root / "archive"), quarantine_root=str(root / "quarantine")
            ),
            "universe": UniverseResource(symbols=SYMBOLS),
        }
        instance = dg.DagsterInstance.ephemeral()
        # DOGE never loads, so coverage is 4/5 (3/4 on 1y, where SOL has no data and is left out
        # of the coverage); the blocking coverage check is set just below.
        run_config = {"ops": {"ingest_heatmaps": {"config": {"min_coverage_pct": 75}}}}
        assert dg.materialize([symbol_universe], resources=resources, instance=instance).success
        # Two transient failures among the first heatmap requests: retried, never visible.
        server.inject("503", "500", path="/api/futures/liquidation/aggregated-heatmap/model1")
        results = {}
        for model in MODELS:
            for range_ in RANGES:
                results[model, range_] = dg.materialize(
                    [ingest_heatmaps_step],
                    partition_key=heatmap_partition_key(model, range_),
                    resources=resources,
                    instance=instance,
                    run_config=run_config,
                )
        again = dg.materialize(
            [ingest_heatmaps_step],
            partition_key=heatmap_partition_key(3, "1y"),
            resources=resources,
            instance=instance,
            run_config=run_config,
        )
        yield {"root": root, "dsn": dsn, "server": server, "results": results, "again": again}


def query(run: dict, sql: str, params: list | None = None) -> list[tuple]:
    """Rows from whichever warehouse the run used (`?` placeholders, as DuckDB spells them)."""
    if run["dsn"] is None:
        with duckdb.connect(str(run["root"] / "helix.duckdb"), read_only=True) as con:
            return con.execute(sql, params or []).fetchall()
    with psycopg.connect(run["dsn"]) as conn:
        return conn.execute(sql.replace("?", "%s"), params or []).fetchall()


def metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    return materialized_metadata(result)


def test_every_partition_materializes_with_checks(run) -> None:
    for (model, range_), result in run["results"].items():
        assert result.success, (model, range_)
        meta = metadata(result)
        young = range_ == "1y"  # SOL has 200 days of history
        loaded = 3 if young else 4
        assert meta["source"] == "coinglass"
        assert meta["sandbox"] is False
        assert meta["snapshots_new"] == loaded
        assert meta["snapshots_normalized"] == loaded
        assert meta["payloads_fetched"] == (4 if young else 5)
        assert meta["archived_files"] == loaded  # every model's grids
        assert meta["cells_added_to_warehouse"] == (
            meta["cells_ingested"] if (model, range_) in KEPT else 0
        )
        assert 0 < meta["price_levels_added"] <= meta["cells_ingested"]
        assert {
            e.asset_key.to_user_string() for e in result.get_asset_materialization_events()
        } == {
            "heatmap_payloads",
            "normalized_heatmaps",
            "heatmap_archive",
            "liquidation_heatmaps",
        }
        assert meta["quarantined"] == 1
        assert meta["coverage_pct"] == (75 if young else 80)
        assert {c.partition for c in result.get_asset_check_evaluations()} == {
            str(heatmap_partition_key(model, range_))
        }  # each check result belongs to its model x range
        assert meta["x_beyond_candles"] == (loaded if model == 3 else 0)
        variant = "v3" if model == 2 and range_ in ("180d", "1y") else "v4"
        assert meta["schema_variants"] == {variant: loaded}
        checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
        assert checks["heatmaps_non_empty"].passed
        assert checks["heatmaps_universe_coverage"].passed
        assert checks["heatmaps_schema_and_bounds"].passed
        assert not checks["heatmaps_quarantined_payloads"].passed  # DOGE, as a warning
        assert str(meta["preview"]).startswith("**BTC model")
        assert "data:image/png;base64," in str(meta["preview"])


def test_stored_rows_equal_what_the_server_served(run) -> None:
    server = run["server"]
    grids = archived(run).sort("x_index", "price", "liq_usd")
    by_series = grids.partition_by("symbol", "model", "range", as_dict=True)
    for model in MODELS:
        for range_ in RANGES:
            for symbol in SYMBOLS:
                if symbol == BROKEN:
                    continue
                request = HeatmapRequest("coin", symbol, model, range_)
                if symbol == YOUNG and range_ == "1y":
                    if model == 1:  # asked once; the other models skip it
                        body = server.served_body(request.path, request.params)
                        assert json.loads(body) == {"code": "500", "msg": "Server Error"}
                    continue
                body = server.served_body(request.path, request.params)
                cells, candles = expected_rows(body)
                grid = by_series[symbol, model, range_]
                assert grid.select("x_index", "candle_ts", "price", "liq_usd").rows() == cells
                stored_levels = query(
                    run,
                    "SELECT price, cells, cumulative_usd, live_usd FROM liquidation_price_levels "
                    'WHERE symbol = ? AND model = ? AND "range" = ? ORDER BY price',
                    [symbol, model, range_],
                )
                assert stored_levels == expected_levels(body), request.label
                stored_cells = query(
                    run,
                    "SELECT x_index, candle_ts, price, liq_usd FROM liquidation_data_raw "
                    'WHERE symbol = ? AND model = ? AND "range" = ? ORDER BY 1, 3, 4',
                    [symbol, model, range_],
                )
                assert stored_cells == (cells if (model, range_) in KEPT else []), request.label
                if model != MODELS[-1]:
                    # Candles are keyed without the model (they are the market's, shared by all
                    # models) and upserted; the fake invents different ones per model, so the
                    # last model materialized is the one stored.
                    continue
                stored_candles = query(
                    run,
                    "SELECT ts, open, high, low, close, volume_usd FROM heatmap_candles "
                    'WHERE symbol = ? AND "range" = ? ORDER BY ts',
                    [symbol, range_],
                )
                assert stored_candles == candles, request.label


def test_broken_payloads_are_quarantined_with_reason_and_bytes_kept(run) -> None:
    rows = query(run, "SELECT status, reason FROM heatmap_snapshots WHERE symbol = ?", [BROKEN])
    assert len(rows) == 24
    assert all(status == "quarantined" and "not valid JSON" in reason for status, reason in rows)
    assert len(list((run["root"] / "quarantine").rglob("*.payload"))) == 24
    for table in ("liquidation_price_levels", "liquidation_data_raw"):
        assert query(run, f"SELECT count(*) FROM {table} WHERE symbol = ?", [BROKEN]) == [(0,)]


def test_the_archive_holds_every_grid_and_equals_the_cells_the_warehouse_kept(run) -> None:
    grids = archived(run)
    assert set(zip(grids["model"], grids["range"], strict=True)) == {
        (m, r) for m in MODELS for r in RANGES
    }
    kept = (
        grids.filter(pl.col("model") == 3, pl.col("range").is_in(["12h", "24h"]))
        .select("symbol", "range", "x_index", "candle_ts", "price", "liq_usd")
        .sort("symbol", "range", "x_index", "price", "liq_usd")
    )
    stored = query(
        run,
        'SELECT symbol, "range", x_index, candle_ts, price, liq_usd FROM liquidation_data_raw '
        "ORDER BY 1, 2, 3, 5, 6",
    )
    assert kept.rows() == stored
    assert len(stored) > 0


def test_rematerializing_unchanged_payloads_adds_no_rows(run) -> None:
    meta = metadata(run["again"])
    assert meta["snapshots_new"] == 0
    assert meta["price_levels_added"] == 0
    # Nothing new to archive: the archive is not materialized again (its latest materialization
    # stays the run that wrote the grids), the other three are, with their numbers.
    assert "archived_files" not in meta
    assert {
        e.asset_key.to_user_string() for e in run["again"].get_asset_materialization_events()
    } == {"heatmap_payloads", "normalized_heatmaps", "liquidation_heatmaps"}
    assert meta["snapshots_unchanged"] == 4
    assert meta["skipped_unavailable"] == 1  # SOL 1y: not asked again within 24 h
    # 21 partitions x 5 ledger rows, plus 1y: 3 models x 4 payloads and SOL's one answer.
    assert query(run, "SELECT count(*) FROM heatmap_snapshots") == [(21 * 5 + 3 * 4 + 1,)]


def test_a_range_with_no_data_is_unavailable_asked_once_and_left_out_of_coverage(run) -> None:
    rows = query(
        run,
        'SELECT model, status, reason FROM heatmap_snapshots WHERE symbol = ? AND "range" = ?',
        [YOUNG, "1y"],
    )
    assert [(m, status) for m, status, _ in rows] == [(1, "unavailable")]
    assert "no data" in rows[0][2]
    first = metadata(run["results"][1, "1y"])
    assert (first["unavailable"], first["skipped_unavailable"], first["requests_saved"]) == (
        1,
        0,
        0,
    )
    for model in (2, 3):
        later = metadata(run["results"][model, "1y"])
        assert (later["unavailable"], later["skipped_unavailable"]) == (0, 1)
        assert later["requests_saved"] == 1
    young_1y = [
        r
        for r in run["server"].recorded()
        if r.params.get("symbol") == YOUNG and r.params.get("range") == "1y"
    ]
    assert len(young_1y) == 2  # one answer and one retry, for all three models together
    assert query(
        run,
        'SELECT count(*) FROM liquidation_price_levels WHERE symbol = ? AND "range" = ?',
        [YOUNG, "1y"],
    ) == [(0,)]


def test_the_legacy_model2_payload_keeps_its_extra_keys_and_units(run) -> None:
    rows = query(
        run,
        "SELECT schema_variant, candle_ts_unit, CAST(source_extra AS TEXT), source_update_time "
        'FROM heatmap_snapshots WHERE model = 2 AND "range" = ? AND symbol = ?',
        ["180d", "BTC"],
    )
    ((variant, unit, extra, update_time),) = rows
    assert (variant, unit, update_time) == ("v3", "ms", None)
    assert set(json.loads(extra)) == {"instrument", "precision", "rangeHigh", "rangeLow"}
    grids = archived(run).filter(pl.col("model") == 2, pl.col("range") == "180d")
    assert grids["x_index"].min() == 5


def test_requests_and_retries_are_reported_and_the_key_never_leaks(run) -> None:
    metas = [metadata(r) for r in run["results"].values()]
    # Every heatmap once, less SOL 1y for models 2 and 3 (skipped), plus the retry of SOL's
    # no-data answer and of the two injected faults.
    assert sum(int(m["requests_sent"]) for m in metas) >= 24 * 5 - 2 + 1 + 2
    assert sum(int(m["retries"]) for m in metas) >= 3
    assert sum(int(m["unavailable_answers"]) for m in metas) == 1
    for result in run["results"].values():
        for event in result.all_events:
            assert API_KEY not in str(event)
    assert not list(Path(run["root"]).rglob("*")) or all(
        API_KEY.encode() not in p.read_bytes()
        for p in Path(run["root"]).rglob("*")
        if p.is_file() and p.suffix != ".duckdb"
    )
