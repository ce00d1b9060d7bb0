"""Feed -> writer -> warehouse over a real socket: what CoinGlass sends again after a reconnect
is stored once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from helix_pipelines.live.coinglass_ws import LiquidationFeed
from helix_pipelines.live.event_writer import EventWriter
from helix_pipelines.testing.coinglass_ws_server import FIRST_TIME_MS, FakeCoinGlassWS
from helix_pipelines.testing.warehouses import duckdb_warehouse


def test_events_replayed_after_a_reconnect_are_stored_once(tmp_path: Path) -> None:
    warehouse = duckdb_warehouse(tmp_path / "helix.duckdb")
    live = warehouse.live
    with FakeCoinGlassWS() as server:
        feed = LiquidationFeed(server.api_key, url=server.url, ping_interval=0.1, pong_timeout=0.2,
                               backoff_base=0.02)  # fmt: skip
        writer = EventWriter(live.add_liquidation_events, batch_size=100, flush_seconds=0.02)

        async def scenario() -> None:
            stop_feed, stop_writer = asyncio.Event(), asyncio.Event()
            writing = asyncio.create_task(writer.run(stop_writer))
            reading = asyncio.create_task(feed.run(writer.put_many, stop_feed))
            await asyncio.to_thread(server.wait_for_subscribers, 1)
            await asyncio.to_thread(server.push_burst, 300, per_message=10)
            while writer.stats.written < 300:
                await asyncio.sleep(0.005)
            await asyncio.to_thread(server.drop_connections)
            while server.subscribes < 2 or server.subscribers < 1:
                await asyncio.sleep(0.005)
            # The last 100 again, and 50 new ones after them.
            await asyncio.to_thread(server.push_burst, 150, per_message=10, first=200)
            while writer.stats.written < 450:
                await asyncio.sleep(0.005)
            stop_feed.set()
            await reading
            stop_writer.set()
            await writing

        asyncio.run(asyncio.wait_for(scenario(), timeout=30))
    first = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=FIRST_TIME_MS)
    assert (writer.stats.written, writer.stats.inserted) == (450, 350)
    assert (feed.stats.connects, feed.stats.disconnects) == (2, 1)
    stored = live.events(["BTC"], first, first + timedelta(seconds=1))
    assert stored["event_time"].max() == first + timedelta(milliseconds=349)
    assert stored.height == 350
    assert stored["usd"].sum() == sum(100.0 + k for k in range(350))
    warehouse.close()
