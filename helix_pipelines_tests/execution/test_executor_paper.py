"""The executor with the paper broker on a real warehouse (DuckDB and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from helix_pipelines.contracts.records import OrderRecord
from helix_pipelines.contracts.signals import TradeSignal
from helix_pipelines.execution.executor import Executor
from helix_pipelines.execution.guard import GuardLimits
from helix_pipelines.execution.orders import OrderRequest, order_link_id_for
from helix_pipelines.execution.paper import PaperBroker
from helix_pipelines.execution.ports import halt, halted, reset_halt
from helix_pipelines.testing.signals import make_signal
from helix_pipelines.testing.warehouses import duckdb_warehouse, postgres_warehouse, read_table
from helix_pipelines.warehouse import Warehouse

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    if request.param == "duckdb":
        opened = duckdb_warehouse(tmp_path / "helix.duckdb")
    else:
        opened = postgres_warehouse(request.getfixturevalue("pg_dsn"))
    yield opened
    opened.close()


class Rig:
    def __init__(self, warehouse: Warehouse, limits: GuardLimits | None = None) -> None:
        self.warehouse = warehouse
        self.prices = {"BTC": 100_000.0, "ETH": 3_000.0}
        self.clock = Clock()
        self.limits = limits or GuardLimits(max_daily_loss_usd=100.0)

    def executor(self) -> Executor:
        broker = PaperBroker(
            self.warehouse.paper_book(), self.prices.get, clock=self.clock, slippage_bps=0,
            fee_rate=0.0,
        )  # fmt: skip
        return Executor(
            broker, self.warehouse.executor_store("paper"), self.limits, clock=self.clock
        )

    def fills(self) -> pl.DataFrame:
        return read_table(self.warehouse, "paper_fills")


def signal(
    signal_id: str = "s1", symbol: str = "BTC", side: str = "long", qty: float = 0.02, **kw: object
) -> TradeSignal:
    entry = {"BTC": 100_000.0, "ETH": 3_000.0}[symbol]
    below, above = entry * 0.98, entry * 1.05
    return make_signal(
        signal_id, symbol, side, entry=entry, stop_loss=below if side == "long" else above,
        take_profit=above if side == "long" else below, qty=qty, leverage=2,
        created_at=kw.get("created_at", NOW),  # type: ignore[arg-type]
    )  # fmt: skip


def test_the_same_signal_twice_gives_one_order(warehouse: Warehouse) -> None:
    rig = Rig(warehouse)
    executor = rig.executor()
    first = executor.process(signal())
    second = executor.process(signal())
    assert first.action == "placed"
    assert second.action == "duplicate"
    assert rig.fills().height == 1
    assert rig.fills()["qty"][0] == pytest.approx(0.02)
    orders = read_table(warehouse, "executor_orders")
    assert orders.select("order_link_id", "status", "qty").rows() == [
        (order_link_id_for("s1"), "filled", "0.020")
    ]
    decisions = read_table(warehouse, "executor_decisions").sort("decided_at")
    assert decisions["action"].to_list() == ["placed", "duplicate"]


def test_a_restarted_executor_still_never_repeats_an_order(warehouse: Warehouse) -> None:
    rig = Rig(warehouse)
    rig.executor().process(signal())
    restarted = rig.executor()
    report = restarted.start(["BTC"])
    assert report.positions == {"BTC": "long 0.02 @ 100,000"}
    assert restarted.process(signal()).action == "duplicate"
    assert rig.fills().height == 1


def test_a_stale_signal_is_skipped_and_stays_skipped(warehouse: Warehouse) -> None:
    rig = Rig(warehouse)
    rig.clock.now = NOW + timedelta(hours=1)
    executor = rig.executor()
    decision = executor.process(signal())
    assert decision.action == "skipped"
    assert "stale" in decision.reason
    assert executor.process(signal()).action == "duplicate"  # a redelivery is not re-judged
    assert rig.fills().height == 0


def test_a_halted_executor_places_nothing_until_reset(warehouse: Warehouse) -> None:
    rig = Rig(warehouse)
    store = warehouse.executor_store("paper")
    halt(store, "manual kill switch", NOW)
    decision = rig.executor().process(signal("s1"))
    assert decision.action == "skipped"
    assert "trading halted: manual kill switch" in decision.reason
    assert rig.fills().height == 0
    reset_halt(store, NOW)
    assert rig.executor().process(signal("s2")).action == "placed"


def test_daily_loss_halts_and_the_halt_survives_a_restart(warehouse: Warehouse) -> None:
    rig = Rig(warehouse)
    executor = rig.executor()
    assert executor.process(signal("s1", qty=0.05)).action == "placed"  # 5,000 notional long
    rig.prices["BTC"] = 97_900.0  # the stop at 98,000 is crossed: exit there, -100 USD
    closed = executor.broker.housekeeping()
    assert closed == ["BTC stop-loss at 98000"]
    rig.prices["ETH"] = 3_000.0
    decision = executor.process(signal("s2", symbol="ETH"))
    assert decision.action == "skipped"
    assert "daily loss 100.00" in decision.reason
    restarted = rig.executor()
    is_halted, reason = halted(warehouse.executor_store("paper"))
    assert is_halted
    assert "daily loss" in reason
    assert restarted.process(signal("s3", symbol="ETH")).action == "skipped"


def test_paper_take_profit_realizes_pnl(warehouse: Warehouse) -> None:
    rig = Rig(warehouse)
    executor = rig.executor()
    executor.process(signal("s1", qty=0.01))
    rig.prices["BTC"] = 105_500.0
    assert executor.broker.housekeeping() == ["BTC take-profit at 105000"]
    fills = rig.fills().sort("filled_at")
    assert fills["realized_pnl_usd"].to_list() == [0.0, pytest.approx(50.0)]
    assert executor.broker.positions() == {}
    assert float(executor.broker.equity()) == pytest.approx(10_050.0)


def test_orders_below_the_minimum_size_are_rejected(warehouse: Warehouse) -> None:
    rig = Rig(warehouse)
    decision = rig.executor().process(signal(qty=0.00001))
    assert decision.action == "rejected"
    assert "below minOrderQty" in decision.reason


def test_concurrent_executors_never_double_an_order_or_break_a_cap(warehouse: Warehouse) -> None:
    """The Dagster job and `serve` may run at once: decisions of one mode are serialized."""
    import threading

    rig = Rig(warehouse, GuardLimits(max_open_positions=1, max_daily_loss_usd=100.0))
    decisions = []

    def run(sig: TradeSignal) -> None:
        decisions.append(rig.executor().process(sig))

    same = [threading.Thread(target=run, args=(signal("s1"),)) for _ in range(3)]
    for t in same:
        t.start()
    for t in same:
        t.join()
    assert sorted(d.action for d in decisions) == ["duplicate", "duplicate", "placed"]
    decisions.clear()
    other = [threading.Thread(target=run, args=(signal(f"e{i}", symbol="ETH"),)) for i in range(2)]
    for t in other:
        t.start()
    for t in other:
        t.join()
    assert [d.action for d in decisions] == ["skipped", "skipped"]  # BTC already holds the one slot
    assert rig.fills().height == 1


def test_a_position_without_a_recent_price_does_not_stop_trading(warehouse: Warehouse) -> None:
    rig = Rig(warehouse)
    executor = rig.executor()
    executor.process(signal("s1", symbol="ETH"))
    del rig.prices["ETH"]  # no candle for ETH any more
    assert executor.broker.housekeeping() == []
    assert float(executor.broker.equity()) == pytest.approx(10_000.0)  # valued at entry
    assert executor.process(signal("s2")).action == "placed"


def test_one_trade_idea_one_position_whichever_the_direction(warehouse: Warehouse) -> None:
    rig = Rig(warehouse)
    executor = rig.executor()
    assert executor.process(signal("s1")).action == "placed"
    again = executor.process(signal("s2"))  # the same idea under a new id (a later refresh)
    assert again.action == "skipped"
    assert again.reason == "already long 0.02 BTC @ 100,000: one trade idea, one position"
    flip = executor.process(signal("s3", side="short"))
    assert flip.action == "skipped"
    assert flip.reason.startswith("opposite to the open long 0.02 BTC @ 100,000")
    assert rig.fills().height == 1
    assert executor.book() == {"BTC": "long 0.02 @ 100,000"}
    rig.prices["BTC"] = 105_500.0  # the take-profit closes it: the symbol is free again
    assert executor.broker.housekeeping() == ["BTC take-profit at 105000"]
    rig.prices["BTC"] = 100_000.0
    assert executor.process(signal("s4")).action == "placed"


def test_a_fill_belongs_to_a_position_and_a_reversal_is_two_fills(warehouse: Warehouse) -> None:
    """The broker itself (the executor never reverses: one idea, one position) books an order
    against an open position as the closing leg, with the old position's side, then the rest."""
    rig = Rig(warehouse)
    broker = PaperBroker(warehouse.paper_book(), rig.prices.get, clock=rig.clock, slippage_bps=0,
                         fee_rate=0.0)  # fmt: skip

    def order(olid: str, side: str, qty: str) -> OrderRequest:
        tp, sl = ("110000", "90000") if side == "long" else ("90000", "110000")
        return OrderRequest(olid, "BTC", side, Decimal(qty), Decimal(tp), Decimal(sl), 1)  # type: ignore[arg-type]

    broker.submit(order("open", "long", "0.010"))
    rig.prices["BTC"] = 101_000.0
    result = broker.submit(order("flip", "short", "0.030"))
    fills = {(f.order_link_id, f.side, f.qty, f.reduces_position, f.realized_pnl_usd)
             for f in warehouse.paper_book().fills_for("flip")}  # fmt: skip
    assert fills == {("flip", "long", 0.01, True, 10.0), ("flip", "short", 0.02, False, 0.0)}
    assert broker.positions()["BTC"].side == "short"
    assert broker.positions()["BTC"].qty == Decimal("0.02")
    # Looked up again, the order is what was sent: its whole quantity, at its price.
    found = broker.find_order("flip", "BTC")
    assert found is not None
    assert (found.filled_qty, found.avg_price) == (result.filled_qty, 101_000.0)

    rig.prices["BTC"] = 89_000.0  # through the short's take-profit at 90,000
    assert broker.housekeeping() == ["BTC take-profit at 90000"]
    (exit_fill,) = [f for f in read_table(warehouse, "paper_fills").iter_rows(named=True)
                    if f["order_link_id"].startswith("exit-")]  # fmt: skip
    assert (exit_fill["side"], exit_fill["reduces_position"]) == ("short", True)
    assert exit_fill["realized_pnl_usd"] == pytest.approx(0.02 * 11_000)


def test_every_mode_keeps_its_own_orders(warehouse: Warehouse) -> None:
    """The same signal decided in two modes is two rows: testnet never overwrites paper."""
    now = NOW
    olid = order_link_id_for("s1")
    paper, testnet = warehouse.executor_store("paper"), warehouse.executor_store("testnet")
    for store, status in ((paper, "filled"), (testnet, "pending")):
        store.save_order(
            OrderRecord(order_link_id=olid, signal_id="s1", symbol="BTC", side="long",
                        status=status, created_at=now, updated_at=now)  # type: ignore[arg-type]
        )  # fmt: skip
    assert (paper_row := paper.order(olid)) is not None
    assert (testnet_row := testnet.order(olid)) is not None
    assert (paper_row.status, testnet_row.status) == ("filled", "pending")
    assert paper.settled_signal_ids(["s1"], ["pending"]) == {"s1"}
    assert testnet.settled_signal_ids(["s1"], ["pending"]) == set()
