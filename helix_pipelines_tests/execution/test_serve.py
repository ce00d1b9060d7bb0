"""`helix executor serve` semantics on the real Redis: react fast, never twice, restart cleanly."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from helix_pipelines.bus.signals import SignalConsumer, SignalPublisher
from helix_pipelines.clock import utc_now
from helix_pipelines.execution.brokers import PaperBroker
from helix_pipelines.execution.executor import Executor
from helix_pipelines.execution.guard import GuardLimits
from helix_pipelines.execution.orders import order_link_id_for
from helix_pipelines.execution.serve import serve
from helix_pipelines.execution.store import ExecutorStore
from helix_pipelines.warehouse.duckdb_warehouse import DuckDBWarehouse

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def prefix() -> Iterator[str]:
    key_prefix = f"test:{uuid.uuid4().hex[:8]}:"
    yield key_prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{key_prefix}*"))
    if keys:
        client.delete(*keys)


def signal_row(signal_id: str, symbol: str = "BTC") -> dict[str, object]:
    entry = {"BTC": 100_000.0, "ETH": 3_000.0}[symbol]
    return {
        "signal_id": signal_id, "schema_version": 1, "symbol": symbol, "side": "long",
        "entry": entry, "stop_loss": entry * 0.98, "take_profit": entry * 1.05, "qty": 0.01,
        "leverage": 2, "created_at": utc_now().isoformat(),
    }  # fmt: skip


def paper_executor(tmp_path: Path) -> Executor:
    warehouse = DuckDBWarehouse(tmp_path / "helix.duckdb")
    warehouse.ensure_schema()
    prices = {"BTC": 100_000.0, "ETH": 3_000.0}
    broker = PaperBroker(warehouse, prices.get, slippage_bps=0, fee_rate=0)
    return Executor(broker, ExecutorStore(warehouse, "paper"), GuardLimits())


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
    tmp_path: Path, prefix: str
) -> None:
    executor = paper_executor(tmp_path)
    publisher = SignalPublisher(REDIS_URL, key_prefix=prefix)
    consumer = SignalConsumer(REDIS_URL, "executor", "a", key_prefix=prefix, block_ms=200)
    thread, stop = run_in_thread(executor, consumer)
    publisher.publish([signal_row("s1")])
    fills = lambda: executor.broker.warehouse.read_table("paper_fills").height  # noqa: E731
    assert wait_for(lambda: fills() == 1) < 1.0
    # The same signal again (a replayed stream entry under a new id) is a duplicate, not an order.
    redis.Redis.from_url(REDIS_URL).xadd(
        f"{prefix}helix:signals", {"signal_id": "s1", "schema_version": "1",
                                    "payload": __import__("orjson").dumps(signal_row("s1"))},
    )  # fmt: skip
    wait_for(lambda: executor.store.warehouse.read_table("executor_decisions").height == 2)
    stop.set()
    thread.join(timeout=5)
    assert fills() == 1
    actions = sorted(executor.store.warehouse.read_table("executor_decisions")["action"])
    assert actions == ["duplicate", "placed"]
    assert consumer.pending() == 0
    publisher.close()
    consumer.close()


def test_a_restarted_consumer_reclaims_what_a_dead_one_left_pending(
    tmp_path: Path, prefix: str
) -> None:
    executor = paper_executor(tmp_path)
    publisher = SignalPublisher(REDIS_URL, key_prefix=prefix)
    publisher.publish([signal_row("s1"), signal_row("s2", "ETH")])
    dead = SignalConsumer(REDIS_URL, "executor", "dead", key_prefix=prefix, block_ms=0)
    assert len(dead.read(count=10)) == 2  # read, then "killed" before processing or acking
    survivor = SignalConsumer(
        REDIS_URL, "executor", "b", key_prefix=prefix, block_ms=100, claim_idle_ms=200
    )
    time.sleep(0.25)
    thread, stop = run_in_thread(executor, survivor)
    wait_for(lambda: executor.broker.warehouse.read_table("paper_fills").height == 2)
    stop.set()
    thread.join(timeout=5)
    assert sorted(executor.broker.positions()) == ["BTC", "ETH"]
    assert survivor.pending() == 0
    for consumer in (dead, survivor):
        consumer.close()
    publisher.close()


def test_invalid_signals_are_dropped_with_a_log_line(tmp_path: Path, prefix: str, caplog) -> None:
    executor = paper_executor(tmp_path)
    publisher = SignalPublisher(REDIS_URL, key_prefix=prefix)
    bad = {**signal_row("bad"), "stop_loss": 200_000.0}
    publisher.publish([bad])
    consumer = SignalConsumer(REDIS_URL, "executor", "a", key_prefix=prefix, block_ms=100)
    thread, stop = run_in_thread(executor, consumer)
    wait_for(lambda: consumer.pending() == 0 and "dropping invalid signal" in caplog.text)
    stop.set()
    thread.join(timeout=5)
    assert executor.broker.warehouse.read_table("paper_fills").height == 0
    publisher.close()
    consumer.close()


def test_an_unconfirmed_order_stays_on_the_stream_and_is_looked_up_on_redelivery(
    tmp_path: Path, prefix: str
) -> None:
    """The venue may hold the order: the entry is not acknowledged, comes back once idle, and
    the redelivery looks the order up (here: found), after which it is acknowledged."""
    from helix_pipelines.execution.brokers import OrderOutcomeUnknown

    executor = paper_executor(tmp_path)
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
    publisher.publish([signal_row("s1")])
    thread, stop = run_in_thread(executor, consumer)
    try:
        wait_for(lambda: executor.store.order(order_link_id_for("s1")) is not None)
        wait_for(lambda: executor.store.order(order_link_id_for("s1"))["status"] == "filled")
        wait_for(lambda: consumer.pending() == 0)
    finally:
        stop.set()
        thread.join(timeout=5)
    decisions = executor.store.warehouse.read_table("executor_decisions").sort("decided_at")
    assert decisions["action"].to_list() == ["unconfirmed", "duplicate"]
    assert decisions["reason"][1] == "already handled: filled"
