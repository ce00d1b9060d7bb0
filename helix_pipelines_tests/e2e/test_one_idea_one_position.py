"""One trade idea, one position, end to end (issue: the second refresh doubled every position).

The demo's pipeline runs on sandbox heatmaps recorded at one moment: signals, then the paper
executor opens positions. Then the heatmaps are fetched again a candle period later (barely
changed, so new snapshot ids and new signal ids for the same trades), analytics refresh, and the
executor runs again: new signals, zero new orders, and the run's metadata shows the book after
the run in numbers people read.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from helix_pipelines.clock import utc_now
from helix_pipelines.contracts.vocabulary import MODELS, RANGES
from helix_pipelines.defs.analytics import analyze_liquidations
from helix_pipelines.defs.execution import executor_decisions
from helix_pipelines.defs.heatmaps import ingest_heatmaps_step
from helix_pipelines.defs.partitions import heatmap_partition_key
from helix_pipelines.defs.resources import (
    ArchiveResource,
    CoinGlassResource,
    ExecutorResource,
    RiskResource,
    SignalBusResource,
    UniverseResource,
    WarehouseResource,
)
from helix_pipelines.defs.universe import symbol_universe
from helix_pipelines.testing.recordings import record_sandbox
from helix_pipelines.testing.warehouses import read_table

pytestmark = pytest.mark.e2e

SYMBOLS = ["BTC", "ETH", "SOL", "XRP", "DOGE"]
CELL_FRACTION = 0.1  # real grids, a tenth of the cells: the suite stays quick


def refresh(resources: dict, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    for model in MODELS:
        for range_ in RANGES:
            assert dg.materialize(
                [ingest_heatmaps_step], partition_key=heatmap_partition_key(model, range_),
                resources=resources, instance=instance,
            ).success  # fmt: skip
    analysis = dg.materialize([analyze_liquidations], resources=resources, instance=instance)
    assert analysis.success
    return analysis


def executor_metadata(resources: dict, instance: dg.DagsterInstance) -> dict:
    run = dg.materialize(
        [executor_decisions],
        resources={k: resources[k] for k in ("warehouse", "executor", "risk")},
        instance=instance,
    )
    assert run.success
    (event,) = run.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_a_refresh_with_nudged_heatmaps_gives_new_signals_and_no_new_orders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HELIX_EXECUTOR_MODE", raising=False)
    now = utc_now()
    record_sandbox(tmp_path / "first", now, SYMBOLS, cell_fraction=CELL_FRACTION)
    later = now + timedelta(minutes=5)  # one more 5-minute candle
    record_sandbox(tmp_path / "later", later, SYMBOLS, cell_fraction=CELL_FRACTION)
    resources = {
        "coinglass": CoinGlassResource(replay_dir=str(tmp_path / "first")),
        "warehouse": WarehouseResource(duckdb_path=str(tmp_path / "helix.duckdb")),
        "archive": ArchiveResource(
            archive_root=str(tmp_path / "archive"), quarantine_root=str(tmp_path / "q")
        ),
        "universe": UniverseResource(symbols=SYMBOLS),
        "executor": ExecutorResource(),
        "risk": RiskResource(),
        "signal_bus": SignalBusResource(),
    }
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([symbol_universe], resources=resources, instance=instance).success
    refresh(resources, instance)
    store = resources["warehouse"].get()
    first_signals = set(read_table(store, "trade_signals")["signal_id"])
    assert first_signals, "the sandbox at this moment should give trade signals"
    first = executor_metadata(resources, instance)
    assert first["counts"] == {"placed": len(first_signals)}
    book = first["positions"]
    assert len(book) == len(first_signals)
    fills = read_table(store, "paper_fills").height

    # The same trade ideas again: the symbols now held, their heatmaps a candle later.
    resources["coinglass"] = CoinGlassResource(replay_dir=str(tmp_path / "later"))
    resources["universe"] = UniverseResource(symbols=sorted(book))
    assert dg.materialize([symbol_universe], resources=resources, instance=instance).success
    refresh(resources, instance)
    new_signals = set(read_table(store, "trade_signals")["signal_id"]) - first_signals
    assert new_signals, "nudged heatmaps give new signal ids"
    again = executor_metadata(resources, instance)

    assert "placed" not in again["counts"]
    assert again["counts"]["skipped"] == len(new_signals)
    assert again["positions"] == book  # the book after the run: unchanged, nothing doubled
    assert read_table(store, "paper_fills").height == fills
    assert (
        "one trade idea, one position" in again["decisions"]
        or "neither flips" in again["decisions"]
    )
    for line in book.values():
        # "long 0.011 @ 97,123.4": plain quantities, a few significant digits, no exponents.
        assert re.fullmatch(r"(long|short) [\d,.]+ @ [\d,.]+", line), line
        assert "E" not in line
        price_digits = re.sub(r"\D", "", line.split("@")[1]).lstrip("0")
        assert len(price_digits) <= 6, line  # six significant digits, not 16 decimals
