"""`helix executor serve` semantics on the real Redis: react fast, never twice, restart cleanly."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import polars as pl
import pytest
import redis

from helix_pipelines.bus.consumer import SignalConsumer
from helix_pipelines.bus.publisher import SignalPublisher
from helix_pipelines.contracts.signals import TradeSignal
from helix_pipelines.execution.executor import Executor
from helix_pipelines.execution.guard import GuardLimits
from helix_pipelines.execution.orders import order_link_id_for
from helix_pipelines.execution.paper import PaperBroker
from helix_pipelines.services.serve import serve
from helix_pipelines.testing.local_services import REDIS_URL
from helix_pipelines.testing.signals import make_signal
from helix_pipelines.testing.warehouses import duckdb_warehouse, read_table
from helix_pipelines.warehouse import Warehouse


def signal(signal_id: str, symbol: str = "BTC") -> TradeSignal:
    entry = {"BTC": 100_000.0, "ETH": 3_000.0}[symbol]
    return make_signal(signal_id, symbol, entry=entry)


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[Warehouse]:
    opened = duckdb_warehouse(tmp_path / "helix.duckdb")
    yield opened
    opened.close()


def paper_executor(warehouse: Warehouse) -> Executor:
    prices = {"BTC": 100_000.0, "ETH": 3_000.0}
    broker = PaperBroker(warehouse.paper_book(), prices.get, slippage_bps=0, fee_rate=0)
    return Executor(broker, warehouse.executor_store("paper"), GuardLimits())


def table(warehouse: Warehouse, name: str) -> pl.DataFrame:
    return read_table(warehouse, name)


def run_in_thread(
    executor: Executor, consumer: SignalConsumer
) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(executor, consumer, stop), daemon=True)
    thread.start()
    return thread, stop


def wait_for(condition, timeout: float = 5.0) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)
    return time.monotonic() - start


def test_serve_reacts_within_a_second_and_never_processes_twice(
    warehouse: Warehouse, prefix: str
) -> None:
    executor = paper_executor(warehouse)
    publisher = SignalPublisher(REDIS_URL, key_prefix=prefix)
    consumer = SignalConsumer(REDIS_URL, "executor", "a", key_prefix=prefix, block_ms=200)
    thread, stop = run_in_thread(executor, consumer)
    publisher.publish([signal("s1")])
    fills = lambda: table(warehouse, "paper_fills").height  # noqa: E731
    assert wait_for(lambda: fills() == 1) < 1.0
    # The same signal again (a replayed stream entry under a new id) is a duplicate, not an order.
    redis.Redis.from_url(REDIS_URL).xadd(
        f"{prefix}helix:signals", {"signal_id": "s1", "payload": signal("s1").to_message()}
    )
    wait_for(lambda: table(warehouse, "executor_decisions").height == 2)
    stop.set()
    thread.join(timeout=5)
    assert fills() == 1
    actions = sorted(table(warehouse, "executor_decisions")["action"])
    assert actions == ["duplicate", "placed"]
    assert consumer.pending() == 0
    publisher.close()
    consumer.close()


def test_a_restarted_consumer_reclaims_what_a_dead_one_left_pending(
    warehouse: Warehouse, prefix: str
) -> None:
    executor = paper_executor(warehouse)
    publisher = SignalPublisher(REDIS_URL, key_prefix=prefix)
    publisher.publish([signal("s1"), signal("s2", "ETH")])
    dead = SignalConsumer(REDIS_URL, "executor", "dead", key_prefix=prefix, block_ms=0)
    assert len(dead.read(count=10)) == 2  # read, then "killed" before processing or acking
    survivor = SignalConsumer(
        REDIS_URL, "executor", "b", key_prefix=prefix, block_ms=100, claim_idle_ms=200
    )
    time.sleep(0.25)
    thread, stop = run_in_thread(executor, survivor)
    wait_for(lambda: table(warehouse, "paper_fills").height == 2)
    stop.set()
    thread.join(timeout=5)
    assert sorted(executor.broker.positions()) == ["BTC", "ETH"]
    assert survivor.pending() == 0
    for consumer in (dead, survivor):
        consumer.close()
    publisher.close()


def test_an_invalid_entry_never_reaches_the_executor(warehouse: Warehouse, prefix: str) -> None:
    executor = paper_executor(warehouse)
    bad = {**signal("bad").to_row(), "stop_loss": 200_000.0}  # a long stopped above its entry
    client = redis.Redis.from_url(REDIS_URL)
    client.xadd(f"{prefix}helix:signals", {"payload": orjson.dumps(bad, option=orjson.OPT_UTC_Z)})
    consumer = SignalConsumer(REDIS_URL, "executor", "a", key_prefix=prefix, block_ms=100)
    thread, stop = run_in_thread(executor, consumer)
    wait_for(lambda: consumer.dead_lettered == 1 and consumer.pending() == 0)
    stop.set()
    thread.join(timeout=5)
    assert table(warehouse, "paper_fills").height == 0
    assert table(warehouse, "executor_decisions").height == 0
    ((_id, fields),) = client.xrange(consumer.dead_letter_stream)
    assert fields[b"reason"] == b"signal bad: stop and target are not on both sides of entry"
    consumer.close()
    client.close()


def test_an_unconfirmed_order_stays_on_the_stream_and_is_looked_up_on_redelivery(
    warehouse: Warehouse, prefix: str
) -> None:
    """The venue may hold the order: the entry is not acknowledged, comes back once idle, and
    the redelivery looks the order up (here: found), after which it is acknowledged."""
    from helix_pipelines.execution.brokers import OrderOutcomeUnknown

    executor = paper_executor(warehouse)
    broker = executor.broker
    real_submit = broker.submit
    outcomes = iter([OrderOutcomeUnknown("not visible yet")])

    def submit_then_vanish(order):
        real_submit(order)  # the venue has it ...
        raise next(outcomes)  # ... but the answer was lost

    broker.submit = submit_then_vanish  # type: ignore[method-assign]
    publisher = SignalPublisher(REDIS_URL, key_prefix=prefix)
    consumer = SignalConsumer(
        REDIS_URL, "executor", "only", key_prefix=prefix, block_ms=100, claim_idle_ms=200
    )
    publisher.publish([signal("s1")])
    thread, stop = run_in_thread(executor, consumer)
    try:
        olid = order_link_id_for("s1")
        wait_for(lambda: getattr(executor.store.order(olid), "status", None) == "filled")
        wait_for(lambda: consumer.pending() == 0)
    finally:
        stop.set()
        thread.join(timeout=5)
    decisions = table(warehouse, "executor_decisions").sort("decided_at")
    assert decisions["action"].to_list() == ["unconfirmed", "duplicate"]
    assert decisions["reason"][1] == "already handled: filled"
