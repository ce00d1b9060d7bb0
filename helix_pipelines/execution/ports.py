"""What the executor needs of the world besides the venue: somewhere to remember. The
warehouse implements these (warehouse.execution_store) without the executor importing it, and
the tests' doubles can too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from helix_pipelines.contracts.records import OrderRecord, PaperFill, PaperPosition


class ExecutorStore(Protocol):
    """Orders, decisions and state of one executor mode."""

    mode: str

    def decision_lock(self) -> AbstractContextManager[None]:
        """Held around one decision: decisions of a mode are serialized across processes."""
        ...

    def order(self, order_link_id: str) -> OrderRecord | None: ...

    def orders_in(self, statuses: Sequence[str]) -> list[OrderRecord]: ...

    def settled_signal_ids(
        self, signal_ids: Sequence[str], unsettled: Sequence[str]
    ) -> set[str]: ...

    def save_order(self, order: OrderRecord) -> None: ...

    def record(
        self,
        signal_id: str,
        symbol: str,
        action: str,
        reason: str,
        order_link_id: str | None,
        at: datetime,
    ) -> None: ...

    def state(self) -> dict[str, str]: ...

    def put(self, at: datetime, **values: str) -> None: ...


class PaperBook(Protocol):
    """The paper broker's positions and fills."""

    def positions(self) -> list[PaperPosition]: ...

    def position(self, symbol: str) -> PaperPosition | None: ...

    def save_position(self, position: PaperPosition) -> None: ...

    def delete_position(self, symbol: str) -> None: ...

    def add_fill(self, fill: PaperFill) -> None: ...

    def fills_for(self, order_link_id: str) -> list[PaperFill]: ...

    def realized(self) -> tuple[float, float]: ...


PriceSource = Callable[[str], float | None]
"""The latest price of a coin, or None when there is no recent one."""

HALTED = "halted"
HALT_REASON = "halt_reason"


def halt(store: ExecutorStore, reason: str, at: datetime) -> None:
    """Persist the halt: it survives restarts until `reset_halt` (the CLI) lifts it."""
    store.put(at, **{HALTED: "true", HALT_REASON: reason})


def reset_halt(store: ExecutorStore, at: datetime) -> None:
    store.put(at, **{HALTED: "false", HALT_REASON: ""})


def halted(store: ExecutorStore) -> tuple[bool, str]:
    state = store.state()
    return state.get(HALTED) == "true", state.get(HALT_REASON, "")
