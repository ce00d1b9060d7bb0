"""Bench (#5): signal-to-submit latency of `helix executor serve`, p50 and p95.

A signal is published to the Redis stream; the serve loop (real executor, Bybit broker, real
pybit session) consumes it and places the order at the fake Bybit v5 server. Latency = the
server's arrival time of the order/create request minus the publish time (both `time.time()` on
this machine). Signals are published one at a time, each after the previous order arrived, so
every sample is an idle-to-submit reaction. Each signal trades a coin of its own (one trade
idea, one position: a second signal on an open position is skipped before any order), all
prepared at start-up as `helix executor serve` prepares the universe.

    uv run python -m bench.executor_latency [--signals 100]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import redis
from pybit.unified_trading import HTTP

from helix_pipelines.bus.consumer import SignalConsumer
from helix_pipelines.bus.publisher import SignalPublisher
from helix_pipelines.execution.bybit import BybitBroker
from helix_pipelines.execution.executor import Executor
from helix_pipelines.execution.guard import GuardLimits
from helix_pipelines.execution.orders import order_link_id_for
from helix_pipelines.services.serve import serve
from helix_pipelines.testing.bybit_instruments import make_instrument
from helix_pipelines.testing.bybit_server import FakeBybitServer
from helix_pipelines.testing.local_services import REDIS_URL
from helix_pipelines.testing.signals import make_signal
from helix_pipelines.testing.warehouses import duckdb_warehouse

CREATE = "/v5/order/create"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--signals", type=int, default=100)
    args = parser.parse_args()
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    latencies = []
    coins = [f"B{i:03d}" for i in range(args.signals)]
    with FakeBybitServer(equity="100000000") as server, tempfile.TemporaryDirectory() as tmp:
        for coin in coins:
            server.venue.instruments[f"{coin}USDT"] = make_instrument(
                f"{coin}USDT", tick_size="0.10", qty_step="0.001", min_order_qty="0.001",
                max_order_qty="1000", max_mkt_order_qty="100",
            )  # fmt: skip
            server.venue.set_price(f"{coin}USDT", "65000.0")
        session = HTTP(testnet=True, api_key=server.api_key, api_secret=server.api_secret, timeout=5,
                       max_retries=2, retry_delay=0, force_retry=False, retry_codes={10002})  # fmt: skip
        session.endpoint = server.endpoint
        warehouse = duckdb_warehouse(Path(tmp) / "helix.duckdb")
        limits = GuardLimits(
            max_open_positions=100, max_order_notional_usd=1e9, max_symbol_notional_usd=1e12
        )
        executor = Executor(
            BybitBroker(session, "testnet"), warehouse.executor_store("testnet"), limits
        )
        executor.start(coins, 1)
        publisher = SignalPublisher(REDIS_URL, key_prefix=prefix)
        consumer = SignalConsumer(REDIS_URL, "executor", "bench", key_prefix=prefix, block_ms=1000)
        stop = threading.Event()
        thread = threading.Thread(target=serve, args=(executor, consumer, stop), daemon=True)
        thread.start()
        for i, coin in enumerate(coins):
            signal_id = f"bench-{i}"
            signal = make_signal(signal_id, coin, entry=65_000.0, qty=0.01, leverage=1)
            time.sleep(0.05)  # the loop is idle, blocked in XREADGROUP, when the signal lands
            published = time.time()
            publisher.publish([signal])
            olid = order_link_id_for(signal_id)
            deadline = time.monotonic() + 10
            while not (
                arrivals := [
                    r.time for r in server.recorded(CREATE) if r.params.get("orderLinkId") == olid
                ]
            ):
                if time.monotonic() > deadline:
                    raise SystemExit(f"signal {signal_id} was not submitted within 10 s")
                time.sleep(0.001)
            latencies.append((arrivals[0] - published) * 1000)
        stop.set()
        thread.join(timeout=5)
        publisher.close()
        consumer.close()
        warehouse.close()
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
    q = statistics.quantiles(latencies, n=100)
    print(
        f"executor_latency signals={len(latencies)} p50_ms={statistics.median(latencies):.1f} "
        f"p95_ms={q[94]:.1f} max_ms={max(latencies):.1f} min_ms={min(latencies):.1f}"
    )


if __name__ == "__main__":
    main()
