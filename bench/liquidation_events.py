"""Bench: realized liquidations from the websocket into PostgreSQL, events per second and the
latency from read off the socket to stored, against the same events stored a row per round trip.

The fake CoinGlass websocket, in a process of its own (the real one is another machine), pushes
`--events` liquidations in bursts of `--burst`, `--per-message` to a message, back to back.
LiquidationFeed parses them and hands them to EventWriter at its defaults (a queue of 10,000,
batches of up to 1,000 events or 0.25 s), which stores them with
LiveStore.add_liquidation_events on a scratch PostgreSQL database (a transaction per batch:
binary COPY into a temporary table, INSERT .. ON CONFLICT DO NOTHING). Measured in one run:

  - end to end: events / (first event read -> last event stored), and every event's latency
    from `received_at` to the end of the store call that wrote it (the reservoir holds all);
  - store only: the batches the writer made, again, straight into the emptied table;
  - baseline: the same events into the emptied table one INSERT .. ON CONFLICT DO NOTHING per
    row in autocommit (a round trip and a commit per event), as a consumer that writes each
    event as it arrives would.

    uv run python -m bench.liquidation_events [--events 20000] [--burst 2000] [--per-message 10]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
from collections.abc import Sequence
from datetime import datetime
from multiprocessing.connection import Connection

import psycopg

from bench.pg import scratch_database
from helix_pipelines.clock import utc_now
from helix_pipelines.contracts.live import LiquidationEvent
from helix_pipelines.live.coinglass_ws import LiquidationFeed
from helix_pipelines.live.event_writer import EventWriter
from helix_pipelines.testing.coinglass_ws_server import FakeCoinGlassWS
from helix_pipelines.warehouse.live_store import EVENTS_SCHEMA, LiveStore
from helix_pipelines.warehouse.postgres_db import PostgresDatabase

COLUMNS = ", ".join(f'"{c}"' for c in EVENTS_SCHEMA)
ROW_INSERT = (
    f"INSERT INTO liquidation_events ({COLUMNS}) "
    f"VALUES ({', '.join(['%s'] * len(EVENTS_SCHEMA))}) ON CONFLICT DO NOTHING"
)


def serve(pipe: Connection, events: int, burst: int, per_message: int) -> None:
    """The fake server's process: push the bursts once the feed has subscribed, then wait to
    be told to stop."""
    with FakeCoinGlassWS() as server:
        pipe.send((server.url, server.api_key))
        server.wait_for_subscribers(1, timeout=30)
        for start in range(0, events, burst):
            server.push_burst(min(burst, events - start), per_message=per_message, first=start)
        pipe.send("pushed")
        pipe.recv()


class RecordingStore:
    """LiveStore.add_liquidation_events, keeping each batch and when the last one was stored."""

    def __init__(self, live: LiveStore) -> None:
        self.live = live
        self.batches: list[list[LiquidationEvent]] = []
        self.last_stored: datetime | None = None

    def __call__(self, batch: Sequence[LiquidationEvent]) -> int:
        inserted = self.live.add_liquidation_events(batch)
        self.batches.append(list(batch))
        self.last_stored = utc_now()
        return inserted


async def consume(
    url: str, key: str, events: int, store: RecordingStore
) -> tuple[LiquidationFeed, EventWriter]:
    feed = LiquidationFeed(key, url=url)
    writer = EventWriter(store, reservoir_size=events)
    stop_feed, stop_writer = asyncio.Event(), asyncio.Event()
    writing = asyncio.create_task(writer.run(stop_writer))
    reading = asyncio.create_task(feed.run(writer.put_many, stop_feed))
    deadline = time.monotonic() + 120
    while writer.stats.written < events:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {writer.stats.written:,} of {events:,} events stored in 120 s")
        await asyncio.sleep(0.005)
    stop_feed.set()
    await reading
    stop_writer.set()
    await writing
    return feed, writer


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def emptied(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE liquidation_events")


def stored_rows(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM liquidation_events").fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--burst", type=int, default=2_000)
    parser.add_argument("--per-message", type=int, default=10)
    args = parser.parse_args()
    # spawn: the server's process starts clean, without this one's threads or pool.
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    server = context.Process(
        target=serve, args=(theirs, args.events, args.burst, args.per_message), daemon=True
    )
    with scratch_database() as dsn:
        database = PostgresDatabase(dsn)
        database.migrate()
        live = LiveStore(database)
        store = RecordingStore(live)
        server.start()
        try:
            url, key = ours.recv()
            feed, writer = asyncio.run(consume(url, key, args.events, store))
            ours.recv()  # every burst was pushed
            ours.send("stop")
        finally:
            server.join(timeout=10)
        assert stored_rows(dsn) == args.events
        first_read = min(e.received_at for batch in store.batches for e in batch)
        assert store.last_stored is not None
        span = (store.last_stored - first_read).total_seconds()
        latency = writer.latency.summary()
        assert latency.count == args.events  # every event measured, none sampled away

        emptied(dsn)
        start = time.perf_counter()
        for batch in store.batches:
            live.add_liquidation_events(batch)
        store_only = time.perf_counter() - start
        assert stored_rows(dsn) == args.events

        emptied(dsn)
        events = [e for batch in store.batches for e in batch]
        with psycopg.connect(dsn, autocommit=True) as conn:
            start = time.perf_counter()
            for event in events:
                conn.execute(ROW_INSERT, tuple(event.as_row().values()))
            row_at_a_time = time.perf_counter() - start
        assert stored_rows(dsn) == args.events
        database.close()

    n = args.events
    print(
        f"liquidation_events events={n:,} bursts={-(-n // args.burst)}x{args.burst:,} "
        f"per_message={args.per_message} batch={writer.batch_size} "
        f"flush_s={writer.flush_seconds} queue={writer.maxsize:,}"
    )
    print(
        f"end_to_end events_per_s={n / span:,.0f} seconds={span:.2f} "
        f"p50_ms={ms(latency.p50)} p95_ms={ms(latency.p95)} "
        f"max_ms={ms(latency.max)} batches={writer.stats.batches} "
        f"mean_batch={n / writer.stats.batches:,.0f} put_waits={writer.stats.put_waits} "
        f"reconnects={feed.stats.disconnects} malformed={feed.stats.malformed}"
    )
    print(f"store_only rows_per_s={n / store_only:,.0f} seconds={store_only:.2f}")
    print(f"row_per_round_trip rows_per_s={n / row_at_a_time:,.0f} seconds={row_at_a_time:.2f}")
    print(
        f"ratios end_to_end/row_per_round_trip={row_at_a_time / span:.1f}x "
        f"store_only/row_per_round_trip={row_at_a_time / store_only:.1f}x"
    )


if __name__ == "__main__":
    main()
