"""The radar and its outcomes use only what was known at ranking time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from helix_pipelines.analytics.risk import RiskLimits
from helix_pipelines.coinglass.sandbox import SandboxHeatmaps
from helix_pipelines.contracts.heatmaps import HeatmapRequest, UniverseMember
from helix_pipelines.heatmaps.normalize import normalize_payload
from helix_pipelines.services.outcomes import refresh_outcomes
from helix_pipelines.services.signals import read_history, refresh_signals
from helix_pipelines.testing.warehouses import duckdb_warehouse, read_table
from helix_pipelines.warehouse import Warehouse

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=3)
SYMBOLS = ["BTC", "ETH", "SOL"]
RANGES = ["12h", "24h", "3d"]


def load(warehouse: Warehouse, moment: datetime) -> None:
    sandbox = SandboxHeatmaps(clock=lambda: moment)
    snapshots = []
    for symbol in SYMBOLS:
        for model in (1, 2):
            for range_ in RANGES:
                request = HeatmapRequest("coin", symbol, model, range_)
                snapshots.append(normalize_payload(sandbox.payload(request), request, moment))
    warehouse.heatmaps.store_snapshots(snapshots)


def radar_at(warehouse: Warehouse, moment: datetime) -> pl.DataFrame:
    report = refresh_signals(warehouse, now=moment, limits=RiskLimits())
    assert report is not None
    return (
        read_table(warehouse, "liquidation_radar")
        .filter(pl.col("refreshed_at") == moment)
        .drop("data_age_seconds")
        .sort("symbol")
    )


def test_a_radar_at_t_reads_nothing_fetched_after_t(tmp_path: Path) -> None:
    only_past = duckdb_warehouse(tmp_path / "past.duckdb")
    with_future = duckdb_warehouse(tmp_path / "future.duckdb")
    members = [UniverseMember("coin", "", s, i + 1) for i, s in enumerate(SYMBOLS)]
    try:
        for warehouse in (only_past, with_future):
            warehouse.heatmaps.replace_universe(members)
            load(warehouse, T0)
        load(with_future, T1)  # heatmaps from after the ranking time
        past, future = radar_at(only_past, T0), radar_at(with_future, T0)
        assert past.height == len(SYMBOLS)
        assert (past["newest_snapshot_at"] <= T0).all()
        # The later snapshots changed nothing the ranking is made of. (ATR is read from the
        # candles, which every payload of a key upserts: a later payload rewrites the candles
        # it shares with an earlier one, so in a replay ATR may differ; it does not enter the
        # score. The stored radar row, not a recomputation, is what outcomes are judged on.)
        from_candles = ["atr", "above_distance_atr", "below_distance_atr"]
        assert past.drop(from_candles).equals(future.drop(from_candles))
        later = radar_at(with_future, T1)
        assert (later["newest_snapshot_at"] == T1).all()
    finally:
        only_past.close()
        with_future.close()


def test_outcomes_keep_the_rank_of_their_refresh_and_win_rates_only_past_outcomes(
    tmp_path: Path,
) -> None:
    warehouse = duckdb_warehouse(tmp_path / "helix.duckdb")
    try:
        warehouse.heatmaps.replace_universe(
            [UniverseMember("coin", "", s, i + 1) for i, s in enumerate(SYMBOLS)]
        )
        load(warehouse, T0)
        at_t0 = radar_at(warehouse, T0)
        load(warehouse, T1)  # new heatmaps, and the candles after T0 with them
        at_t1 = radar_at(warehouse, T1)
        report = refresh_outcomes(warehouse, horizon_hours=1.0, now=T1 + timedelta(hours=2))
        assert report is not None
        outcomes = read_table(warehouse, "cluster_outcomes").filter(
            pl.col("subject_kind") == "radar"
        )
        from_t0 = outcomes.filter(pl.col("observed_from") == T0).sort("symbol")
        assert from_t0.height == at_t0.height
        # Each keeps the rank and tier of the T0 refresh, whatever T1 said.
        assert from_t0["radar_rank"].to_list() == at_t0["rank"].to_list()
        assert from_t0["radar_tier"].to_list() == at_t0["tier"].to_list()
        assert at_t1["rank"].is_not_null().all()
        # A signal outcome decided after a refresh is invisible to that refresh's win rates.
        latest = warehouse.heatmaps.latest_snapshots(2, as_of=T1)
        assert read_history(warehouse, latest, T1).win_rates == {}
        decided_later = read_history(warehouse, latest, T1 + timedelta(hours=3)).win_rates
        signal_outcomes = read_table(warehouse, "cluster_outcomes").filter(
            pl.col("subject_kind") == "signal"
        )
        if signal_outcomes.height:
            assert decided_later[None][0] == signal_outcomes.height
    finally:
        warehouse.close()
