"""End to end: the Bybit universe resolved by the `symbol_universe` asset against a fake Bybit
(a real pybit session over HTTP) and a fake CoinGlass shaped like the real ones, its sensor
re-resolving it when Bybit delists an instrument, and one heatmap partition fetched for every
member of it."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from helix_pipelines.defs.heatmaps import ingest_heatmaps_step, materialized_metadata
from helix_pipelines.defs.partitions import heatmap_partition_key
from helix_pipelines.defs.resources import (
    ArchiveResource,
    CoinGlassResource,
    UniverseResource,
    WarehouseResource,
)
from helix_pipelines.defs.universe import symbol_universe, symbol_universe_sensor
from helix_pipelines.testing.bybit_server import FakeBybitServer
from helix_pipelines.testing.coinglass_server import FakeCoinGlassServer, default_heatmap_payload
from helix_pipelines.testing.universe import (
    bybit_instruments,
    coin_names,
    coinglass_coins,
    coinglass_exchange_pairs,
)

pytestmark = pytest.mark.e2e

API_KEY = "e2e-universe-key"
COINS = coin_names(430)


@pytest.fixture(scope="module")
def servers():
    with (
        FakeBybitServer(instruments=bybit_instruments(COINS)) as bybit,
        FakeCoinGlassServer(
            api_key=API_KEY,
            limit_per_minute=100_000,
            supported_coins=coinglass_coins(COINS),
            exchange_pairs=coinglass_exchange_pairs(COINS),
            # A tenth of a percent of the real cells: 435 coins stay quick to serve.
            payload_factory=partial(default_heatmap_payload, cell_fraction=0.001),
            record_bodies=False,
        ) as coinglass,
    ):
        yield bybit, coinglass


def resources(root: Path, bybit: FakeBybitServer, coinglass: FakeCoinGlassServer) -> dict:
    return {
        "coinglass": CoinGlassResource(
            api_key=API_KEY, base_url=coinglass.base_url, rate_limit_per_minute=100_000
        ),
        "universe": UniverseResource(mode="bybit", bybit_endpoint=bybit.endpoint),
        "warehouse": WarehouseResource(duckdb_path=str(root / "helix.duckdb")),
        "archive": ArchiveResource(
            archive_root=str(root / "archive"), quarantine_root=str(root / "quarantine")
        ),
    }


def test_the_whole_bybit_universe_is_resolved_stored_and_fetched(servers, tmp_path: Path) -> None:
    bybit, coinglass = servers
    bound = resources(tmp_path, bybit, coinglass)
    instance = dg.DagsterInstance.ephemeral()
    universe = dg.materialize([symbol_universe], resources=bound, instance=instance)
    assert universe.success
    (event,) = universe.get_asset_materialization_events()
    meta = {k: v.value for k, v in event.materialization.metadata.items()}
    assert (meta["mode"], meta["members"]) == ("bybit", 435)
    assert meta["multiplied_instruments"]["PEPE"] == "1000PEPEUSDT x1000"
    assert meta["single_exchange_kept_apart"] == ["SOLO1", "SOLO2"]
    assert meta["left_out_with_reason"]["BTCUSDT-26DEC25"] == "LinearFutures, not a perpetual"
    with duckdb.connect(str(tmp_path / "helix.duckdb"), read_only=True) as con:
        stored = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE multiplier > 1) FROM symbol_universe"
        ).fetchone()
        pepe = con.execute(
            "SELECT venue_symbol, multiplier FROM symbol_universe WHERE symbol = 'PEPE'"
        ).fetchone()
    assert stored == (435, 3)  # PEPE, SHIB and BONK trade a multiple; 10000SATS is 1:1
    assert pepe == ("1000PEPEUSDT", 1000)

    heatmaps = dg.materialize(
        [ingest_heatmaps_step],
        partition_key=heatmap_partition_key(1, "12h"),
        resources=bound,
        instance=instance,
    )
    assert heatmaps.success
    loaded = materialized_metadata(heatmaps)
    assert (loaded["universe_size"], loaded["snapshots_new"], loaded["coverage_pct"]) == (
        435,
        435,
        100,
    )
    assert loaded["peak_payloads_in_flight"] <= 48  # the default bound
    checks = {c.check_name: c.passed for c in heatmaps.get_asset_check_evaluations()}
    assert checks["heatmaps_schema_and_bounds"]
    assert checks["heatmaps_universe_coverage"]


def test_the_sensor_re_resolves_the_universe_when_bybit_delists(servers, tmp_path: Path) -> None:
    bybit, coinglass = servers
    bound = resources(tmp_path, bybit, coinglass)
    assert dg.materialize([symbol_universe], resources=bound).success

    def evaluate(cursor: str | None = None):
        with dg.build_sensor_context(cursor=cursor, resources=bound) as context:
            return symbol_universe_sensor(context)

    assert isinstance(evaluate(), dg.SkipReason)  # the stored universe is Bybit's
    with bybit.venue.lock:
        bybit.venue.instruments["XRPUSDT"]["status"] = "Closed"
    try:
        changed = evaluate()
    finally:
        with bybit.venue.lock:
            bybit.venue.instruments["XRPUSDT"]["status"] = "Trading"
    assert isinstance(changed, dg.SensorResult)
    assert len(changed.run_requests or []) == 1
