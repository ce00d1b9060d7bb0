"""Bench (#12): how fast the live parts react, at the real universe's size.

price -> radar   435 coins' radar inputs (the analytics' own, from sandbox heatmaps at real
                 sizes, five coins' inputs repeated under 435 names), 435 tickers streamed by the
                 fake Bybit websocket through pybit into the price book, `LiveService`'s radar
                 loop re-ranking and publishing to the real Redis. Prices change at `--moves`
                 per second on random coins. Measured: book arrival -> ranking published (the
                 radar's part), and, as the baseline in the same run, venue change -> book
                 arrival (what the stream and pybit cost before the radar sees anything).
event -> stored  sparse CoinGlass liquidations (one every 50 ms, the realistic case; the burst
                 case is bench/liquidation_events.py) through the websocket feed and the writer
                 into a scratch PostgreSQL; received -> stored.

    uv run python -m bench.live_latency [--seconds 60] [--moves 100]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from bench.analytics_throughput import NOW, inputs
from bench.pg import scratch_database
from helix_pipelines.analytics.pipeline import radar_inputs
from helix_pipelines.analytics.radar import SymbolInputs
from helix_pipelines.bus.radar import RadarPublisher
from helix_pipelines.coinglass.synthetic import SYNTHETIC_COINS
from helix_pipelines.contracts.live import PriceTick
from helix_pipelines.heatmaps.archive import ParquetArchive
from helix_pipelines.heatmaps.quarantine import QuarantineStore
from helix_pipelines.live.bybit_tickers import TickerFeed
from helix_pipelines.live.coinglass_ws import LiquidationFeed
from helix_pipelines.live.event_writer import EventWriter, LatencyReservoir
from helix_pipelines.services.live import LiveOptions, LiveService
from helix_pipelines.services.settings import Settings
from helix_pipelines.testing.bybit_ws_server import FakeBybitWsServer
from helix_pipelines.testing.coinglass_ws_server import FakeCoinGlassWS, burst_items
from helix_pipelines.testing.local_services import REDIS_URL, redis_key_prefix
from helix_pipelines.testing.warehouses import duckdb_warehouse, postgres_warehouse

UNIVERSE = 435


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    if not ordered:
        return "none"
    p50 = ordered[len(ordered) // 2]
    p95 = ordered[int(len(ordered) * 0.95)]
    return f"p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms"


def universe_inputs() -> dict[str, SymbolInputs]:
    """Five sandbox coins' radar inputs at real sizes, repeated under 435 names."""
    latest, levels, candles, _ = inputs(list(SYNTHETIC_COINS[:5]))

    def levels_of(ids: list[str]) -> pl.DataFrame:
        return levels.filter(pl.col("snapshot_id").is_in(list(ids)))

    base = radar_inputs(latest, levels_of, candles)  # type: ignore[arg-type]
    names = [f"C{i:03d}" for i in range(UNIVERSE)]
    return {n: replace(base[i % len(base)], symbol=n) for i, n in enumerate(names)}


def price_to_radar(seconds: float, moves: int, tmp: Path, prefix: str) -> None:
    cloned = universe_inputs()
    names = list(cloned)
    venue = {n: f"{n}USDT" for n in names}
    prices = {venue[n]: f"{cloned[n].last_price:.8f}" for n in names}
    warehouse = duckdb_warehouse(tmp / "radar.duckdb")
    publisher = RadarPublisher(REDIS_URL, key_prefix=prefix)
    started = time.monotonic()
    changed_at: dict[str, float] = {}
    delivery: list[float] = []

    def arrived(tick: PriceTick) -> None:
        sent = changed_at.pop(tick.venue_symbol, None)
        if sent is not None:
            delivery.append(time.monotonic() - sent)

    with FakeBybitWsServer(prices=prices, push_interval=0.1) as stream:
        service = LiveService(
            Settings(),
            warehouse,
            ParquetArchive(str(tmp / "archive")),
            QuarantineStore(tmp / "quarantine"),
            LiveOptions(radar_store_seconds=1e9, tickers=True),
            radar_publisher=publisher,
            ticker_feed_factory=lambda book, symbols: TickerFeed(book, symbols, ws_url=stream.url),
            # The heatmaps are from NOW: the radar ranks as if it were then.
            clock=lambda: NOW + timedelta(seconds=time.monotonic() - started),
        )
        service.radar.inputs = cloned
        service.radar.universe = names
        service.radar.venue = {n: (venue[n], 1) for n in names}

        def mover(stop: threading.Event) -> None:
            rng = random.Random(7)
            while not stop.wait(1 / moves):
                name = rng.choice(names)
                price = cloned[name].last_price * rng.uniform(0.98, 1.02)
                changed_at[venue[name]] = time.monotonic()
                stream.set_price(venue[name], f"{price:.8f}")

        async def main() -> None:
            stop = asyncio.Event()
            service._start_tickers()
            service.book.add_listener(arrived)
            ranking = asyncio.create_task(service._rank_loop(stop))
            halt = threading.Event()
            moving = threading.Thread(target=mover, args=(halt,), daemon=True)
            await asyncio.sleep(3)  # subscriptions and snapshots settle
            service.stats.radar_latency = LatencyReservoir()  # from the moves on
            delivery.clear()
            moving.start()
            await asyncio.sleep(seconds)
            halt.set()
            stop.set()
            ranking.cancel()
            await asyncio.gather(ranking, return_exceptions=True)
            assert service.ticker_feed is not None
            await asyncio.to_thread(service.ticker_feed.stop)

        asyncio.run(main())
    report(service, delivery, moves, seconds)
    publisher.close()
    warehouse.close()


def report(service: LiveService, delivery: list[float], moves: int, seconds: float) -> None:
    latency = service.stats.radar_latency
    radar = [latency.percentile(q) or 0.0 for q in (0.5, 0.95)]
    print(
        f"price -> radar, {UNIVERSE} coins, {moves} price moves/s for {seconds:.0f} s: "
        f"{service.stats.rankings} rankings published"
    )
    print(f"  baseline, venue change -> price book (stream + pybit): {percentiles(delivery)}")
    print(
        f"  book -> radar published: p50 {radar[0] * 1000:.1f} ms, p95 {radar[1] * 1000:.1f} ms, "
        f"max {(latency.summary().max or 0) * 1000:.1f} ms"
    )
    p95_total = sorted(delivery)[int(len(delivery) * 0.95)] + radar[1]
    print(
        f"  venue change -> radar, p95 at most {p95_total * 1000:.0f} ms = {p95_total:.3f} of the "
        f"1 s goal; radar p95 / delivery p95 = "
        f"{radar[1] / sorted(delivery)[int(len(delivery) * 0.95)]:.2f}"
    )


def event_to_stored(count: int) -> None:
    with scratch_database() as dsn, FakeCoinGlassWS() as server:
        warehouse = postgres_warehouse(dsn)
        feed = LiquidationFeed(server.api_key, url=server.url)
        writer = EventWriter(warehouse.live.add_liquidation_events)

        async def main() -> None:
            stop_feed, stop_writer = asyncio.Event(), asyncio.Event()
            tasks = [
                asyncio.create_task(feed.run(writer.put_many, stop_feed)),
                asyncio.create_task(writer.run(stop_writer)),
            ]
            await asyncio.to_thread(server.wait_for_subscribers, 1)
            now_ms = int(datetime.now().timestamp() * 1000)
            for i, item in enumerate(burst_items(count)):
                server.push({**item, "time": now_ms + i})
                await asyncio.sleep(0.05)
            await asyncio.sleep(1)
            stop_feed.set()
            await tasks[0]
            stop_writer.set()
            await tasks[1]

        asyncio.run(main())
        summary = writer.latency.summary()
        warehouse.close()
    print(
        f"liquidation event -> stored, {count} sparse events (one per 50 ms), PostgreSQL: "
        f"p50 {(summary.p50 or 0) * 1000:.0f} ms, p95 {(summary.p95 or 0) * 1000:.0f} ms, "
        f"max {(summary.max or 0) * 1000:.0f} ms (the writer's flush interval is 250 ms); "
        f"stored {writer.stats.inserted}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--moves", type=int, default=100, help="price changes per second")
    parser.add_argument("--events", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, redis_key_prefix("helix-bench") as prefix:
        price_to_radar(args.seconds, args.moves, Path(tmp), prefix)
    event_to_stored(args.events)


if __name__ == "__main__":
    main()
