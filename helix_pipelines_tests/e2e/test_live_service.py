"""`helix live` end to end against local fakes of everything it talks to: the CoinGlass REST API
(heatmaps), the CoinGlass liquidation websocket, Bybit's public tickers websocket and its REST
fallback, with a real PostgreSQL warehouse and a real Redis.

One short run (two planning cycles of a few seconds) and then the values: what the planner
fetched and recorded, that live prices re-ranked the radar in coin units, that realized
liquidations were stored and shown, and what went to Redis.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import polars as pl
import pytest
import redis
from pybit.unified_trading import HTTP

from helix_pipelines.bus.names import LIVE_PRICES, RADAR_LATEST
from helix_pipelines.bus.prices import LivePrices
from helix_pipelines.bus.radar import RadarPublisher
from helix_pipelines.coinglass.planner import PlannerParams
from helix_pipelines.coinglass.settings import SourceSettings
from helix_pipelines.coinglass.synthetic import heatmap_payload, period_end_at
from helix_pipelines.contracts.heatmaps import HeatmapRequest, UniverseMember
from helix_pipelines.contracts.radar import RadarEntry
from helix_pipelines.heatmaps.archive import ParquetArchive
from helix_pipelines.heatmaps.quarantine import QuarantineStore
from helix_pipelines.live.bybit_tickers import TickerFeed
from helix_pipelines.live.prices import PriceBook
from helix_pipelines.services.live import LiveOptions, LiveService, LiveStats
from helix_pipelines.services.settings import Settings, StorageSettings
from helix_pipelines.testing.bybit_server import FakeBybitServer
from helix_pipelines.testing.bybit_ws_server import FakeBybitWsServer
from helix_pipelines.testing.coinglass_server import DEFAULT_API_KEY, FakeCoinGlassServer
from helix_pipelines.testing.coinglass_ws_server import FakeCoinGlassWS, liquidation_item
from helix_pipelines.testing.local_services import REDIS_URL
from helix_pipelines.testing.warehouses import postgres_warehouse, read_table
from helix_pipelines.warehouse import Warehouse

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

MEMBERS = [
    UniverseMember("coin", "", "BTC", 1, "BTCUSDT", 1),
    UniverseMember("coin", "", "ETH", 2, "ETHUSDT", 1),
    # As if SOL traded 1,000 coins a contract: the ticker is in venue units.
    UniverseMember("coin", "", "SOL", 3, "1000SOLUSDT", 1000),
]


@pytest.fixture
def warehouse(pg_dsn: str) -> Iterator[Warehouse]:
    warehouse = postgres_warehouse(pg_dsn)
    warehouse.heatmaps.replace_universe(MEMBERS)
    yield warehouse
    warehouse.close()


def current_payload(path: str, params: dict[str, str]) -> bytes:
    """A heatmap ending now (the default payloads end at a fixed moment long past, whose
    candles the analytics' lookback no longer reaches)."""
    request = HeatmapRequest("coin", params["symbol"], int(path[-1]), params["range"])
    return heatmap_payload(request, period_end_at(request, int(time.time())), cell_fraction=0.02)


def run_live(
    tmp_path: Path,
    warehouse: Warehouse,
    prefix: str,
    coinglass: FakeCoinGlassServer,
    liquidations: FakeCoinGlassWS,
    stream: FakeBybitWsServer,
    venue: FakeBybitServer,
    during: object,
) -> tuple[LiveService, LiveStats]:
    settings = Settings(
        source=SourceSettings(api_key=DEFAULT_API_KEY, base_url=coinglass.base_url),
        storage=StorageSettings(data_dir=tmp_path),
        redis_url=REDIS_URL,
        bus_prefix=prefix,
    )
    options = LiveOptions(
        planner=PlannerParams(hot_coins=2, cycle_seconds=4.0),
        limit_per_minute=1200,
        liquidation_ws_url=liquidations.url,
        status_path=tmp_path / "live-status.json",
        status_seconds=0.2,
        realized_refresh_seconds=0.0,
        radar_store_seconds=0.0,
    )

    def tickers(book: PriceBook, symbols: list[str]) -> TickerFeed:
        rest = HTTP(testnet=False, timeout=2, max_retries=1, retry_delay=0)
        rest.endpoint = venue.endpoint
        return TickerFeed(book, symbols, ws_url=stream.url, rest_session=rest, silence_seconds=3)

    publisher = RadarPublisher(REDIS_URL, key_prefix=prefix)
    prices = LivePrices(REDIS_URL, key_prefix=prefix)
    service = LiveService(
        settings,
        warehouse,
        ParquetArchive(str(tmp_path / "archive")),
        QuarantineStore(tmp_path / "quarantine"),
        options,
        radar_publisher=publisher,
        live_prices=prices,
        ticker_feed_factory=tickers,
    )

    async def main() -> LiveStats:
        stop = asyncio.Event()
        running = asyncio.create_task(service.run(stop))
        try:
            await asyncio.to_thread(during, service)  # type: ignore[arg-type]
            await asyncio.to_thread(wait_for, lambda: service.stats.cycles >= 2)
        finally:
            stop.set()  # as SIGTERM does
        return await running

    try:
        stats = asyncio.run(main())
    finally:
        publisher.close()
        prices.close()
    return service, stats


def wait_for(check: object, timeout: float = 20.0, state: object = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            seen = state() if state else ""  # type: ignore[operator]
            raise AssertionError(f"not within {timeout} s {seen}")
        time.sleep(0.05)


def test_live_service_end_to_end(tmp_path: Path, warehouse: Warehouse, prefix: str) -> None:
    with (
        FakeCoinGlassServer(
            limit_per_minute=1200,
            supported_coins=["BTC", "ETH", "SOL"],
            payload_factory=current_payload,
        ) as cg,
        FakeCoinGlassWS(DEFAULT_API_KEY) as liquidations,
        FakeBybitWsServer(
            prices={"BTCUSDT": "100000", "ETHUSDT": "3000", "1000SOLUSDT": "150000"},
            push_interval=0.05,
        ) as stream,
        FakeBybitServer(prices={"BTCUSDT": "99000"}) as venue,
    ):
        moved = {}

        def during(service: LiveService) -> None:
            # Heatmaps are in, the radar ranks them: move BTC onto its nearest zone above.
            def ranked_btc() -> RadarEntry | None:
                entry = next((e for e in service.stats.last_radar if e.symbol == "BTC"), None)
                return entry if entry is not None and entry.above_price is not None else None

            wait_for(lambda: ranked_btc() is not None)
            wait_for(lambda: service.book.tick("BTCUSDT") is not None)
            btc = ranked_btc()
            assert btc is not None
            assert btc.above_price is not None
            moved["BTC"] = btc.above_price
            stream.set_price("BTCUSDT", f"{btc.above_price:.8f}")
            liquidations.wait_for_subscribers(1)
            now_ms = int(time.time() * 1000)
            liquidations.push(
                liquidation_item(
                    base_asset="BTC", price=btc.above_price, usd=250_000.0, time_ms=now_ms
                ),
                liquidation_item(
                    base_asset="BTC", price=btc.above_price, usd=50_000.0, time_ms=now_ms + 1
                ),
                liquidation_item(base_asset="ETH", usd=1_000.0, time_ms=now_ms + 2),
            )
            wait_for(
                lambda: any(
                    e.symbol == "BTC"
                    and e.price_origin == "ws"
                    and e.realized_liq_events == 2
                    and abs((e.last_price or 0) - moved["BTC"]) < 1e-6 * moved["BTC"]
                    for e in service.stats.last_radar
                ),
                state=lambda: [e for e in service.stats.last_radar if e.symbol == "BTC"],
            )

        _, stats = run_live(tmp_path, warehouse, prefix, cg, liquidations, stream, venue, during)

    assert stats.cycles >= 2
    assert stats.fetch_failures == 0
    # The planner: hot list first (2 coins x 12h/24h x 3 models), everything fetched once in
    # the first cycle, every fetch in the log, both cycles recorded per tier.
    log = warehouse.heatmaps.fetch_log.states()
    assert log.height == 3 * 24
    assert set(log["last_status"]) == {"loaded"}
    plans = read_table(warehouse, "fetch_plan_tiers")
    assert plans["planned_at"].n_unique() >= 2
    assert set(plans["tier"]) == {"hot", "intraday", "short", "medium", "long"}
    first = plans.filter(pl.col("planned_at") == plans["planned_at"].min())
    assert first.filter(pl.col("tier") == "hot")["planned"].item() == 12
    assert first["planned"].sum() == 72
    heatmap_requests = [r for r in cg.recorded() if "heatmap" in r.path]
    assert {(r.params["symbol"], r.params["range"]) for r in heatmap_requests[:12]} <= {
        (s, r) for s in ("BTC", "ETH") for r in ("12h", "24h")
    }
    assert {r.status for r in cg.recorded()} == {200}

    # Liquidations: stored once each, and on the radar as the coin's realized liquidations.
    events = read_table(warehouse, "liquidation_events").sort("usd")
    assert events["usd"].to_list() == [1_000.0, 50_000.0, 250_000.0]
    assert events["base_asset"].to_list() == ["ETH", "BTC", "BTC"]
    final = {e.symbol: e for e in stats.last_radar}
    assert (final["BTC"].realized_liq_usd, final["BTC"].realized_liq_events) == (300_000.0, 2)
    assert (final["SOL"].realized_liq_usd, final["SOL"].realized_liq_events) == (0.0, 0)

    # Live prices: the radar in coin units (SOL's ticker is per 1,000 coins), from the stream.
    assert final["BTC"].price_origin == "ws"
    assert final["BTC"].last_price == pytest.approx(moved["BTC"])
    assert final["BTC"].above_distance_pct == 0.0
    assert final["SOL"].price_origin == "ws"
    assert final["SOL"].last_price == pytest.approx(150.0)
    assert stats.radar_latency.summary().count > 0

    # Redis: the latest radar and the coin prices the paper broker reads.
    client = redis.Redis.from_url(REDIS_URL)
    try:
        latest = orjson.loads(client.get(f"{prefix}{RADAR_LATEST}"))
        assert {e["symbol"] for e in latest} == {"BTC", "ETH", "SOL"}
        raw = client.hgetall(f"{prefix}{LIVE_PRICES}")
    finally:
        client.close()
    assert float(raw[b"SOL"].split(b"|")[0]) == pytest.approx(150.0)
    with LivePrices(REDIS_URL, key_prefix=prefix) as live:
        now = datetime.now(UTC)
        assert live.price("SOL", max_age=timedelta(minutes=5), now=now) == pytest.approx(150.0)
        assert live.price("SOL", max_age=timedelta(minutes=5), now=now + timedelta(hours=1)) is None

    # The stored radar and the status file an operator (and the container healthcheck) reads.
    radar_rows = read_table(warehouse, "liquidation_radar")
    assert {"ws"} <= set(radar_rows["price_origin"].drop_nulls())
    status = json.loads((tmp_path / "live-status.json").read_text())
    # Written once more at shutdown: how the run ended.
    assert status["cycles"] == stats.cycles
    assert status["prices"] == "stopped"
    assert status["liquidations_stored"] == 3
