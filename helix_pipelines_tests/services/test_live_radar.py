"""The live radar re-ranks the analytics' inputs against live ticker prices (in coin units) and
realized liquidations, and reloads only the symbols whose heatmaps changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from helix_pipelines.coinglass.sandbox import SandboxHeatmaps
from helix_pipelines.contracts.heatmaps import HeatmapRequest, UniverseMember
from helix_pipelines.contracts.live import PriceTick
from helix_pipelines.heatmaps.normalize import normalize_payload
from helix_pipelines.services.live_radar import LiveRadar
from helix_pipelines.testing.warehouses import duckdb_warehouse
from helix_pipelines.warehouse import Warehouse

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
MEMBERS = [
    UniverseMember("coin", "", "BTC", 1, "BTCUSDT", 1),
    UniverseMember("coin", "", "ETH", 2, "ETHUSDT", 1),
    # As if SOL traded 1,000 coins a contract: the ticker is 1,000 x the coin price.
    UniverseMember("coin", "", "SOL", 3, "1000SOLUSDT", 1000),
]


def load(warehouse: Warehouse, moment: datetime, symbols: list[str]) -> None:
    sandbox = SandboxHeatmaps(clock=lambda: moment)
    snapshots = []
    for symbol in symbols:
        for model in (1, 2, 3):
            for range_ in ("12h", "24h", "3d"):
                request = HeatmapRequest("coin", symbol, model, range_)
                snapshots.append(normalize_payload(sandbox.payload(request), request, moment))
    warehouse.heatmaps.store_snapshots(snapshots)


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    warehouse = duckdb_warehouse(tmp_path / "live.duckdb")
    warehouse.heatmaps.replace_universe(MEMBERS)
    load(warehouse, T0, ["BTC", "ETH", "SOL"])
    yield warehouse
    warehouse.close()


def by_symbol(entries: list) -> dict:
    return {e.symbol: e for e in entries}


def test_live_prices_move_the_ranking_in_coin_units(warehouse: Warehouse) -> None:
    radar = LiveRadar(warehouse, price_max_age=timedelta(seconds=30))
    assert radar.reload(T0) == 3
    now = T0 + timedelta(seconds=5)
    before = by_symbol(radar.rank(lambda symbol: None, None, now))
    assert {e.price_origin for e in before.values()} == {"heatmap"}
    btc, sol = before["BTC"], before["SOL"]
    assert btc.above_price is not None
    assert sol.above_price is not None
    ticks = {
        # BTC trades up to its nearest major zone above: distance 0, the hottest tier.
        "BTCUSDT": PriceTick("BTCUSDT", btc.above_price, now, "ws"),
        "1000SOLUSDT": PriceTick("1000SOLUSDT", sol.last_price * 1000 * 1.001, now, "rest"),
        # Older than price_max_age: ignored, ETH stays at its heatmap close.
        "ETHUSDT": PriceTick("ETHUSDT", 1.0, now - timedelta(minutes=5), "ws"),
    }
    realized = {"BTC": (2_500_000.0, 41)}
    after = by_symbol(radar.rank(ticks.get, realized, now))
    assert after["BTC"].price_origin == "ws"
    assert after["BTC"].last_price == btc.above_price
    assert after["BTC"].above_distance_pct == 0.0
    assert after["BTC"].tier == "HOT"
    assert after["SOL"].price_origin == "rest"
    assert after["SOL"].last_price == pytest.approx(sol.last_price * 1.001)
    assert after["ETH"].price_origin == "heatmap"
    assert after["ETH"].last_price == before["ETH"].last_price
    assert (after["BTC"].realized_liq_usd, after["BTC"].realized_liq_events) == (2_500_000.0, 41)
    assert (after["ETH"].realized_liq_usd, after["ETH"].realized_liq_events) == (0.0, 0)
    assert before["ETH"].realized_liq_usd is None  # no feed: unknown, not zero


def test_reload_of_some_symbols_keeps_the_others(warehouse: Warehouse) -> None:
    radar = LiveRadar(warehouse)
    radar.reload(T0)
    t1 = T0 + timedelta(minutes=10)
    load(warehouse, t1, ["BTC"])
    assert radar.reload(t1, {"BTC"}) == 3
    entries = by_symbol(radar.rank(lambda symbol: None, None, t1))
    assert entries["BTC"].newest_snapshot_at == t1
    assert entries["ETH"].newest_snapshot_at == T0
    assert len(entries) == 3
