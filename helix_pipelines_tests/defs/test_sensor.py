from __future__ import annotations

from pathlib import Path

import dagster as dg

from helix_pipelines.contracts.heatmaps import UniverseMember
from helix_pipelines.defs.resources import CoinGlassResource, UniverseResource, WarehouseResource
from helix_pipelines.defs.universe import symbol_universe_sensor


def evaluate(tmp_path: Path, symbols: list[str], cursor: str | None = None):
    warehouse = WarehouseResource(duckdb_path=str(tmp_path / "helix.duckdb"))
    with dg.build_sensor_context(
        cursor=cursor,
        resources={
            "coinglass": CoinGlassResource(),
            "universe": UniverseResource(symbols=symbols),
            "warehouse": warehouse,
        },
    ) as context:
        return symbol_universe_sensor(context), warehouse


def test_sensor_requests_a_refresh_when_the_universe_changes(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("COINGLASS_API_KEY", raising=False)
    result, warehouse = evaluate(tmp_path, ["BTC", "ETH"])
    assert isinstance(result, dg.SensorResult)
    assert len(result.run_requests or []) == 1
    assert result.cursor

    # Same universe again, now known by its cursor: nothing to do.
    skipped, _ = evaluate(tmp_path, ["BTC", "ETH"], cursor=result.cursor)
    assert isinstance(skipped, dg.SkipReason)

    # Once stored, a fresh sensor (no cursor) also recognises it.
    warehouse.get().heatmaps.replace_universe(
        [UniverseMember("coin", "", "BTC", 1), UniverseMember("coin", "", "ETH", 2)]
    )
    assert isinstance(evaluate(tmp_path, ["BTC", "ETH"])[0], dg.SkipReason)

    changed, _ = evaluate(tmp_path, ["BTC", "ETH", "SOL"], cursor=result.cursor)
    assert isinstance(changed, dg.SensorResult)
    assert changed.cursor != result.cursor
