"""The executor's memory in the warehouse: orders, decisions and state of one mode, and the
paper book. Implements the ports `execution.ports.ExecutorStore` and `execution.ports.PaperBook`
(structurally: the executor never imports the warehouse).

Everything the executor must remember across restarts lives here: which signals it acted on
(`executor_orders`, keyed by the deterministic orderLinkId, written *before* a submit), every
decision, the persisted halt and the day's starting equity (`executor_state`, keys prefixed by
mode), and the paper broker's positions and fills. Every read is keyed (an order by its
orderLinkId, orders of a mode by status, a position by symbol, a fill by orderLinkId).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, fields
from datetime import datetime
from typing import Any

import polars as pl

from helix_pipelines.contracts.records import OrderRecord, PaperFill, PaperPosition
from helix_pipelines.contracts.tables import (
    DECISIONS_SCHEMA,
    ORDERS_SCHEMA,
    PAPER_FILLS_SCHEMA,
    PAPER_POSITIONS_SCHEMA,
    STATE_SCHEMA,
)
from helix_pipelines.warehouse.database import Database, quoted
from helix_pipelines.warehouse.rows import delete_keys, upsert

_ORDERS = quoted(list(ORDERS_SCHEMA))
ORDER = f"SELECT {_ORDERS} FROM executor_orders WHERE order_link_id = ? AND mode = ?"  # noqa: S608
ORDERS_IN = f"SELECT {_ORDERS} FROM executor_orders WHERE mode = ? AND status = ANY(?)"  # noqa: S608
SETTLED = "SELECT signal_id FROM executor_orders WHERE mode = ? AND signal_id = ANY(?) AND NOT (status = ANY(?))"
STATE = "SELECT key, value FROM executor_state WHERE key LIKE ?"
_POSITIONS = quoted(list(PAPER_POSITIONS_SCHEMA))
POSITIONS = f"SELECT {_POSITIONS} FROM paper_positions ORDER BY symbol"  # noqa: S608
POSITION = f"SELECT {_POSITIONS} FROM paper_positions WHERE symbol = ?"  # noqa: S608
FILLS_FOR = (
    f"SELECT {quoted(list(PAPER_FILLS_SCHEMA))} FROM paper_fills WHERE order_link_id = ? "  # noqa: S608
    "ORDER BY reduces_position DESC"
)
REALIZED = "SELECT coalesce(sum(realized_pnl_usd), 0), coalesce(sum(fee_usd), 0) FROM paper_fills"


def _row(schema: dict[str, pl.DataType], **values: object) -> pl.DataFrame:
    return pl.DataFrame([{name: values.get(name) for name in schema}], schema=schema)


def _records(record: type, frame: pl.DataFrame) -> list[Any]:
    names = [f.name for f in fields(record)]
    return [record(**{n: row[n] for n in names}) for row in frame.iter_rows(named=True)]


class WarehouseExecutorStore:
    """Orders, decisions and state of one executor mode (paper, testnet, demo, live)."""

    def __init__(self, database: Database, mode: str) -> None:
        self.db = database
        self.mode = mode

    @contextmanager
    def decision_lock(self) -> Iterator[None]:
        """Decisions of one mode one at a time, across threads and processes, on one held
        connection (a decision is a burst of small reads and writes)."""
        with self.db.exclusive(f"executor-{self.mode}"), self.db.session():
            yield

    def order(self, order_link_id: str) -> OrderRecord | None:
        with self.db.connect() as conn:
            frame = conn.frame(ORDER, [order_link_id, self.mode], ORDERS_SCHEMA)
        found = _records(OrderRecord, frame)
        return found[0] if found else None

    def orders_in(self, statuses: Sequence[str]) -> list[OrderRecord]:
        with self.db.connect() as conn:
            frame = conn.frame(ORDERS_IN, [self.mode, list(statuses)], ORDERS_SCHEMA)
        return _records(OrderRecord, frame)

    def settled_signal_ids(self, signal_ids: Sequence[str], unsettled: Sequence[str]) -> set[str]:
        """Those of `signal_ids` whose order has a status outside `unsettled`."""
        if not signal_ids:
            return set()
        with self.db.connect() as conn:
            rows = conn.rows(SETTLED, [self.mode, list(signal_ids), list(unsettled)])
        return {row[0] for row in rows}

    def save_order(self, order: OrderRecord) -> None:
        with self.db.transaction() as tx:
            upsert(tx, "executor_orders", _row(ORDERS_SCHEMA, **asdict(order), mode=self.mode))

    def record(
        self,
        signal_id: str,
        symbol: str,
        action: str,
        reason: str,
        order_link_id: str | None,
        at: datetime,
    ) -> None:
        """Append one decision (its id is the signal, action and time)."""
        key = f"{self.mode}|{signal_id}|{action}|{at.isoformat()}"
        frame = _row(
            DECISIONS_SCHEMA,
            decision_id=hashlib.sha256(key.encode()).hexdigest()[:32],
            signal_id=signal_id,
            mode=self.mode,
            symbol=symbol,
            action=action,
            reason=reason,
            order_link_id=order_link_id,
            decided_at=at,
        )
        with self.db.transaction() as tx:
            upsert(tx, "executor_decisions", frame)

    def state(self) -> dict[str, str]:
        """Every state value of this mode, in one keyed read."""
        prefix = f"{self.mode}:"
        with self.db.connect() as conn:
            rows = conn.rows(STATE, [f"{prefix}%"])
        return {key.removeprefix(prefix): value for key, value in rows}

    def put(self, at: datetime, **values: str) -> None:
        frame = pl.DataFrame(
            [{"key": f"{self.mode}:{k}", "value": v, "updated_at": at} for k, v in values.items()],
            schema=STATE_SCHEMA,
        )
        with self.db.transaction() as tx:
            upsert(tx, "executor_state", frame)


class WarehousePaperBook:
    """The paper broker's positions (one row per open symbol) and fills."""

    def __init__(self, database: Database) -> None:
        self.db = database

    def positions(self) -> list[PaperPosition]:
        with self.db.connect() as conn:
            return _records(PaperPosition, conn.frame(POSITIONS, (), PAPER_POSITIONS_SCHEMA))

    def position(self, symbol: str) -> PaperPosition | None:
        with self.db.connect() as conn:
            frame = conn.frame(POSITION, [symbol], PAPER_POSITIONS_SCHEMA)
        found = _records(PaperPosition, frame)
        return found[0] if found else None

    def save_position(self, position: PaperPosition) -> None:
        with self.db.transaction() as tx:
            upsert(tx, "paper_positions", _row(PAPER_POSITIONS_SCHEMA, **asdict(position)))

    def delete_position(self, symbol: str) -> None:
        """A flat symbol has no row."""
        with self.db.transaction() as tx:
            delete_keys(tx, "paper_positions", [symbol])

    def add_fill(self, fill: PaperFill) -> None:
        with self.db.transaction() as tx:
            upsert(tx, "paper_fills", _row(PAPER_FILLS_SCHEMA, **asdict(fill)))

    def fills_for(self, order_link_id: str) -> list[PaperFill]:
        """The fills of one order: one, or two for an order that reversed a position."""
        with self.db.connect() as conn:
            return _records(PaperFill, conn.frame(FILLS_FOR, [order_link_id], PAPER_FILLS_SCHEMA))

    def realized(self) -> tuple[float, float]:
        """(realized PnL, fees) over every fill, in USD."""
        with self.db.connect() as conn:
            pnl, fees = conn.rows(REALIZED)[0]
        return float(pnl), float(fees)
