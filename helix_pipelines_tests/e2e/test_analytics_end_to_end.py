"""From sandbox heatmaps (recorded with a fixed clock, replayed) to signals on Redis and outcomes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import dagster as dg
import orjson
import polars as pl
import pytest
import redis

from helix_pipelines.analytics.risk import RiskLimits
from helix_pipelines.bus.consumer import SignalConsumer
from helix_pipelines.contracts.vocabulary import MODELS, RANGES
from helix_pipelines.defs.analytics import analyze_liquidations, cluster_outcomes
from helix_pipelines.defs.heatmaps import ingest_heatmaps_step
from helix_pipelines.defs.partitions import heatmap_partition_key
from helix_pipelines.defs.resources import (
    ArchiveResource,
    CoinGlassResource,
    RiskResource,
    SignalBusResource,
    UniverseResource,
    WarehouseResource,
)
from helix_pipelines.defs.universe import symbol_universe
from helix_pipelines.testing.local_services import REDIS_URL
from helix_pipelines.testing.recordings import record_sandbox
from helix_pipelines.testing.warehouses import read_table

pytestmark = pytest.mark.e2e

AT = datetime(2026, 11, 25, 12, 7, tzinfo=UTC)
SYMBOLS = ["BTC", "ETH", "SOL", "XRP", "DOGE"]
CELL_FRACTION = 0.1  # real grids, a tenth of the cells: the suite stays quick


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def pipeline(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("analytics")
    replay = record_sandbox(root / "replay", AT, SYMBOLS, cell_fraction=CELL_FRACTION)
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    dsn = request.getfixturevalue("module_pg_dsn") if request.param == "postgres" else None
    resources = {
        "coinglass": CoinGlassResource(replay_dir=str(replay)),
        "warehouse": WarehouseResource(duckdb_path=str(root / "helix.duckdb"), pg_dsn=dsn),
        "archive": ArchiveResource(archive_root=str(root / "a"), quarantine_root=str(root / "q")),
        "universe": UniverseResource(symbols=SYMBOLS),
        "risk": RiskResource(),
        "signal_bus": SignalBusResource(redis_url=REDIS_URL, key_prefix=prefix),
    }
    instance = dg.DagsterInstance.ephemeral()
    consumer = SignalConsumer(REDIS_URL, "executor", "e2e", key_prefix=prefix, block_ms=0)
    assert dg.materialize([symbol_universe], resources=resources, instance=instance).success
    for model in MODELS:
        for range_ in RANGES:
            key = heatmap_partition_key(model, range_)
            assert dg.materialize(
                [ingest_heatmaps_step], partition_key=key, resources=resources, instance=instance
            ).success
    first = dg.materialize(
        [analyze_liquidations, cluster_outcomes], resources=resources, instance=instance
    )
    second = dg.materialize([analyze_liquidations], resources=resources, instance=instance)
    warehouse = resources["warehouse"].get()
    yield {
        "first": first, "second": second, "warehouse": warehouse, "consumer": consumer,
        "resources": resources, "instance": instance,
    }  # fmt: skip
    warehouse.close()
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    consumer.close()


def meta(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, object]:
    (event,) = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == asset
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_clusters_zones_and_signals_are_stored_and_checked(pipeline) -> None:
    first = pipeline["first"]
    assert first.success
    checks = {c.check_name: c.passed for c in first.get_asset_check_evaluations()}
    assert checks == {
        "clusters_inside_levels_shares_valid": True,
        "radar_lists_every_universe_coin": True,
        "signals_within_risk_caps": True,
    }
    warehouse = pipeline["warehouse"]
    clusters = read_table(warehouse, "liquidation_clusters")
    signals = read_table(warehouse, "trade_signals")
    assert clusters.height == meta(first, "liquidation_clusters")["clusters"]
    assert set(clusters["symbol"]) == set(SYMBOLS)
    assert set(clusters["profile"]) == {"cumulative", "live"}
    assert clusters["share"].is_between(0, 1).all()
    assert read_table(warehouse, "consensus_zones")["consensus_score"].max() == 1.0
    assert signals.height >= 1
    assert signals.height == meta(first, "trade_signals")["signals"]
    limits = RiskLimits()
    assert (
        signals["risk_usd"] <= limits.account_equity_usd * limits.risk_fraction * (1 + 1e-9)
    ).all()
    assert (
        signals["notional_usd"]
        <= limits.account_equity_usd * limits.max_symbol_exposure_fraction * (1 + 1e-9)
    ).all()
    assert (
        signals["notional_usd"].sum()
        <= limits.account_equity_usd * limits.max_total_exposure_fraction
    )
    assert (signals["reward_to_risk"] >= limits.min_reward_to_risk).all()
    long = signals.filter(pl.col("side") == "long")
    assert (long["stop_loss"] < long["entry"]).all()
    assert (long["take_profit"] > long["entry"]).all()
    assert (long["liquidation_price"] < long["stop_loss"]).all()
    preview = str(meta(first, "liquidation_clusters")["preview"])
    assert "data:image/png;base64," in preview
    assert "not in the archive" not in preview  # every grid shown was read back from Parquet


def test_the_radar_ranks_every_universe_coin_with_its_components(pipeline) -> None:
    warehouse = pipeline["warehouse"]
    radar = read_table(warehouse, "liquidation_radar")
    first_refresh = radar.filter(pl.col("refreshed_at") == radar["refreshed_at"].min())
    assert sorted(first_refresh["symbol"]) == sorted(SYMBOLS)  # one row per coin per refresh
    assert radar["refreshed_at"].n_unique() == 2  # the first and the second run
    ranked = first_refresh.filter(pl.col("rank").is_not_null()).sort("rank")
    assert ranked["rank"].to_list() == list(range(1, ranked.height + 1))
    assert ranked.height == len(SYMBOLS)  # the sandbox gives every coin major zones
    assert ranked["score"].is_between(0, 1).all()
    assert ranked["score"].is_sorted(descending=True)
    assert set(ranked["tier"]) <= {"HOT", "WATCH", "WARM", "SAFE"}
    for column in ("imbalance", "proximity_component", "consensus_component", "target_price"):
        assert ranked[column].is_not_null().all(), column
    # Imbalance rows: one per newest snapshot, shares in [0, 1], the same on a re-run.
    imbalance = read_table(warehouse, "liquidation_imbalance")
    assert imbalance.height == meta(pipeline["first"], "liquidation_imbalance")["snapshots"]
    assert imbalance["cumulative_imbalance"].drop_nulls().is_between(0, 1).all()
    baselines = read_table(warehouse, "cluster_baselines")
    assert baselines["samples"].max() >= 1
    assert meta(pipeline["second"], "liquidation_imbalance")["baselines_advanced"] == 0
    radar_meta = meta(pipeline["first"], "liquidation_radar")
    assert radar_meta["ranked"] == len(SYMBOLS)
    assert "data:image/png;base64," in str(radar_meta["chart"])
    assert str(radar_meta["top"]).count("\n") == len(SYMBOLS) + 1  # header, rule, one per coin
    # Signals carry the radar entry of their coin at the time.
    signals = read_table(warehouse, "trade_signals")
    rank_of = dict(zip(ranked["symbol"], ranked["rank"], strict=True))
    assert {s: rank_of[s] for s in signals["symbol"]} == dict(
        zip(signals["symbol"], signals["radar_rank"], strict=True)
    )
    # ... and the radar is on Redis.
    client = redis.Redis.from_url(REDIS_URL)
    prefix = pipeline["consumer"].stream.removesuffix("helix:signals")
    assert client.xlen(f"{prefix}helix:radar") == 2
    latest = orjson.loads(client.get(f"{prefix}helix:radar:latest"))
    assert sorted(e["symbol"] for e in latest) == sorted(SYMBOLS)


def test_signals_are_published_once_and_reruns_add_nothing(pipeline) -> None:
    first, second = pipeline["first"], pipeline["second"]
    signals = read_table(pipeline["warehouse"], "trade_signals")
    assert meta(first, "trade_signals")["published"] == signals.height
    assert meta(second, "trade_signals")["new_signals"] == 0
    assert meta(second, "trade_signals")["published"] == 0
    consumer = pipeline["consumer"]
    received = consumer.read(count=100)
    assert sorted(s.signal.signal_id for s in received) == sorted(signals["signal_id"])
    assert consumer.ack([s.stream_id for s in received]) == len(received)
    assert consumer.read(count=100) == []


def test_outcomes_asset_scores_what_it_can(pipeline) -> None:
    meta_outcomes = meta(pipeline["first"], "cluster_outcomes")
    clusters = read_table(pipeline["warehouse"], "liquidation_clusters").height
    signals = read_table(pipeline["warehouse"], "trade_signals").height
    radar = read_table(pipeline["warehouse"], "liquidation_radar")
    # The outcomes ran after the first refresh only: its ranked entries were the open ones.
    first = radar.filter(pl.col("refreshed_at") == radar["refreshed_at"].min())
    ranked = first.filter(pl.col("rank").is_not_null()).height
    # No candle after the (fixed, past) snapshot time exists yet: everything is still open.
    assert meta_outcomes["scored"] == 0
    assert meta_outcomes["still_open"] == clusters + signals + ranked


def test_signals_breaking_a_risk_cap_are_withheld_before_storage_or_publication(
    pipeline, monkeypatch
) -> None:
    import helix_pipelines.services.signals as signals_service

    monkeypatch.setattr(
        signals_service, "signal_violations", lambda result, limits: ["BTC: leverage 99 above 10"]
    )
    stored_before = read_table(pipeline["warehouse"], "trade_signals").height
    run = dg.materialize(
        [analyze_liquidations], resources=pipeline["resources"], instance=pipeline["instance"],
        raise_on_error=False,
    )  # fmt: skip
    checks = {c.check_name: c.passed for c in run.get_asset_check_evaluations()}
    assert checks["signals_within_risk_caps"] is False
    signals_meta = meta(run, "trade_signals")
    assert signals_meta["signals"] == 0
    assert signals_meta["withheld_signals"] == stored_before
    assert signals_meta["published"] == 0
    assert read_table(pipeline["warehouse"], "trade_signals").height == stored_before
