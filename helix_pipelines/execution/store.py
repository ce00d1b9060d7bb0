"""The executor's persistent state in the warehouse (tables in execution/tables.py).

Everything the executor must remember across restarts lives here: which signals it acted on
(`executor_orders`, keyed by the deterministic orderLinkId, written *before* a submit), every
decision, the persisted halt, the day's starting equity, and the paper broker's book.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import polars as pl

from helix_pipelines.execution.orders import Decision
from helix_pipelines.execution.tables import DECISIONS_SCHEMA, ORDERS_SCHEMA, STATE_SCHEMA
from helix_pipelines.warehouse.base import Warehouse

HALTED = "halted"
HALT_REASON = "halt_reason"

# Order statuses (executor_orders.status) and what becomes of each.
LOOKED_UP = ("pending", "unconfirmed", "accepted")
"""Not settled at the venue: looked up by orderLinkId on redelivery and at start-up."""
DEFERRED = "deferred"
"""Known not to be at the venue: the signal is decided afresh on redelivery."""
IN_FLIGHT = (*LOOKED_UP, DEFERRED)
"""A trade idea still on its way: another signal for the same symbol waits (one idea, one
position)."""
FINAL = ("filled", "partially_filled", "cancelled", "rejected", "skipped", "not_placed")


class ExecutorStore:
    def __init__(self, warehouse: Warehouse, mode: str) -> None:
        self.warehouse = warehouse
        self.mode = mode

    # -- orders ------------------------------------------------------------------------------

    def orders(self) -> pl.DataFrame:
        return self.warehouse.read_table("executor_orders").filter(pl.col("mode") == self.mode)

    def order(self, order_link_id: str) -> dict[str, object] | None:
        rows = self.orders().filter(pl.col("order_link_id") == order_link_id)
        return rows.row(0, named=True) if rows.height else None

    def orders_in(self, statuses: tuple[str, ...]) -> list[dict[str, object]]:
        return list(self.orders().filter(pl.col("status").is_in(statuses)).iter_rows(named=True))

    def save_order(self, **row: object) -> None:
        full = {name: row.get(name) for name in ORDERS_SCHEMA}
        full["mode"] = self.mode
        self.warehouse.upsert_frame("executor_orders", pl.DataFrame([full], schema=ORDERS_SCHEMA))

    # -- decisions ---------------------------------------------------------------------------

    def record(self, decision: Decision, at: datetime) -> None:
        key = f"{decision.signal_id}|{decision.action}|{at.isoformat()}"
        row = {
            "decision_id": hashlib.sha256(key.encode()).hexdigest()[:32],
            "signal_id": decision.signal_id, "mode": self.mode, "symbol": decision.symbol,
            "action": decision.action, "reason": decision.reason,
            "order_link_id": decision.order_link_id, "decided_at": at,
        }  # fmt: skip
        self.warehouse.upsert_frame(
            "executor_decisions", pl.DataFrame([row], schema=DECISIONS_SCHEMA)
        )

    # -- state -------------------------------------------------------------------------------

    def state(self) -> dict[str, str]:
        """Every state value of this mode, in one read."""
        return self._state()

    def _state(self) -> dict[str, str]:
        frame = self.warehouse.read_table("executor_state")
        prefix = f"{self.mode}:"
        return {
            k.removeprefix(prefix): v
            for k, v in frame.select("key", "value").rows()
            if k.startswith(prefix)
        }

    def get(self, key: str) -> str | None:
        return self._state().get(key)

    def put(self, at: datetime, **values: str) -> None:
        rows = [
            {"key": f"{self.mode}:{k}", "value": v, "updated_at": at} for k, v in values.items()
        ]
        self.warehouse.upsert_frame("executor_state", pl.DataFrame(rows, schema=STATE_SCHEMA))

    def halt(self, reason: str, at: datetime) -> None:
        """Persist the halt: it survives restarts until `reset_halt` (the CLI) lifts it."""
        self.put(at, **{HALTED: "true", HALT_REASON: reason})

    def reset_halt(self, at: datetime) -> None:
        self.put(at, **{HALTED: "false", HALT_REASON: ""})

    def halted(self) -> tuple[bool, str]:
        state = self._state()
        return state.get(HALTED) == "true", state.get(HALT_REASON, "")
