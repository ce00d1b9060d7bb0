"""End to end: `dg.materialize` of the universe and every model x range against a local fake
CoinGlass server, then the warehouse and the archive are compared with what the server served,
decoded independently with the stdlib json module."""

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

from helix_pipelines.coinglass.endpoints import MODELS, RANGES, HeatmapRequest
from helix_pipelines.defs.heatmaps import ingest_heatmaps_step, materialized_metadata
from helix_pipelines.defs.partitions import heatmap_partition_key
from helix_pipelines.defs.resources import (
    ArchiveResource,
    CoinGlassResource,
    UniverseResource,
    WarehouseResource,
)
from helix_pipelines.defs.universe import symbol_universe
from helix_pipelines_tests.fakes.coinglass_server import (
    FakeCoinGlassServer,
    default_heatmap_payload,
)

pytestmark = pytest.mark.e2e

API_KEY = "e2e-secret-key-do-not-log"
SYMBOLS = ["BTC", "ETH", "SOL", "XRP", "DOGE"]
BROKEN = "DOGE"  # a complete HTTP response whose JSON is cut short: quarantined, never stored


def payload(path: str, params: Mapping[str, str]) -> bytes:
    """The fake's default payload; Model 2 on 180d and 1y in the v3 key set, as CoinGlass does."""
    body = default_heatmap_payload(path, params)
    if params.get("symbol") == BROKEN:
        return body[: len(body) // 2]
    if path.endswith("model2") and params.get("range") in ("180d", "1y"):
        for v4, v3 in (
            (b'"y_axis"', b'"y"'),
            (b'"liquidation_leverage_data"', b'"liq"'),
            (b'"price_candlesticks"', b'"prices"'),
        ):
            body = body.replace(v4, v3)
    return body


def expected_rows(body: bytes) -> tuple[list[tuple], list[tuple]]:
    """(cells, candles) decoded from the served bytes without any Helix code."""
    data = json.loads(body)["data"]
    levels = data.get("y_axis", data.get("y"))
    cells = data.get("liquidation_leverage_data", data.get("liq"))
    candles = data.get("price_candlesticks", data.get("prices"))
    ts = [datetime.fromtimestamp(c[0], UTC) for c in candles]
    cell_rows = sorted((ts[x], float(levels[y]), float(v)) for x, y, v in cells)
    candle_rows = [(ts[i], *(float(f) for f in c[1:])) for i, c in enumerate(candles)]
    return cell_rows, candle_rows


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    root: Path = tmp_path_factory.mktemp("e2e")
    dsn = request.getfixturevalue("module_pg_dsn") if request.param == "postgres" else None
    with FakeCoinGlassServer(
        api_key=API_KEY, limit_per_minute=2000, payload_factory=payload
    ) as server:
        resources = {
            "coinglass": CoinGlassResource(
                api_key=API_KEY, base_url=server.base_url, rate_limit_per_minute=2000
            ),
            "warehouse": WarehouseResource(duckdb_path=str(root / "helix.duckdb"), pg_dsn=dsn),
            "archive": ArchiveResource(
                archive_root=str(root / "archive"), quarantine_root=str(root / "quarantine")
            ),
            "universe": UniverseResource(symbols=SYMBOLS),
        }
        instance = dg.DagsterInstance.ephemeral()
        # DOGE never loads, so coverage is 4/5; the blocking coverage check is set just below.
        run_config = {"ops": {"ingest_heatmaps": {"config": {"min_coverage": 0.75}}}}
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
        assert meta["source"] == "coinglass"
        assert meta["sandbox"] is False
        assert meta["snapshots_new"] == 4
        assert meta["snapshots_normalized"] == 4
        assert meta["payloads_fetched"] == 5
        assert meta["archived_files"] == (4 if model == 3 else 0)
        assert {
            e.asset_key.to_user_string() for e in result.get_asset_materialization_events()
        } == {
            "heatmap_payloads",
            "normalized_heatmaps",
            "model3_heatmap_archive",
            "liquidation_heatmaps",
        }
        assert meta["quarantined"] == 1
        assert meta["coverage"] == 0.8
        variants = {"v3": 4} if model == 2 and range_ in ("180d", "1y") else {"v4": 4}
        assert meta["schema_variants"] == variants
        checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
        assert checks["heatmaps_non_empty"].passed
        assert checks["heatmaps_universe_coverage"].passed
        assert checks["heatmaps_schema_and_bounds"].passed
        assert not checks["heatmaps_quarantined_payloads"].passed  # DOGE, as a warning
        assert str(meta["preview"]).startswith("**BTC model")
        assert "data:image/png;base64," in str(meta["preview"])


def test_stored_rows_equal_what_the_server_served(run) -> None:
    server = run["server"]
    for model in MODELS:
        for range_ in RANGES:
            for symbol in SYMBOLS:
                if symbol == BROKEN:
                    continue
                request = HeatmapRequest("coin", symbol, model, range_)
                body = server.served_body(request.path, request.params)
                cells, candles = expected_rows(body)
                stored_cells = query(
                    run,
                    "SELECT candle_ts, price, liq_usd FROM liquidation_data_raw "
                    'WHERE symbol = ? AND model = ? AND "range" = ? ORDER BY 1, 2, 3',
                    [symbol, model, range_],
                )
                assert stored_cells == cells, request.label
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
    assert query(run, "SELECT count(*) FROM liquidation_data_raw WHERE symbol = ?", [BROKEN]) == [
        (0,)
    ]


def test_model3_archive_equals_the_warehouse(run) -> None:
    root = run["root"]
    archived = (
        pl.scan_parquet(root / "archive" / "**" / "*.parquet", hive_partitioning=True)
        .select("symbol", "range", "candle_ts", "price", "liq_usd")
        .collect()
        .sort(pl.all())
    )
    stored = query(
        run,
        'SELECT symbol, "range", candle_ts, price, liq_usd FROM liquidation_data_raw '
        "WHERE model = 3 ORDER BY 1, 2, 3, 4, 5",
    )
    assert archived.rows() == stored
    assert set(archived["range"]) == set(RANGES)


def test_rematerializing_unchanged_payloads_adds_no_rows(run) -> None:
    meta = metadata(run["again"])
    assert meta["snapshots_new"] == 0
    assert meta["cells_added"] == 0
    assert meta["snapshots_unchanged"] == 5
    assert query(run, "SELECT count(*) FROM heatmap_snapshots") == [(24 * 5,)]


def test_requests_and_retries_are_reported_and_the_key_never_leaks(run) -> None:
    metas = [metadata(r) for r in run["results"].values()]
    assert sum(int(m["requests_sent"]) for m in metas) >= 24 * 5 + 2  # the two injected faults
    assert sum(int(m["retries"]) for m in metas) >= 2
    for result in run["results"].values():
        for event in result.all_events:
            assert API_KEY not in str(event)
    assert not list(Path(run["root"]).rglob("*")) or all(
        API_KEY.encode() not in p.read_bytes()
        for p in Path(run["root"]).rglob("*")
        if p.is_file() and p.suffix != ".duckdb"
    )
