"""The executor's rows as typed records: one order it decided on, one paper position, one paper
fill. The executor and the paper broker build and change them (`dataclasses.replace`), the
warehouse stores them; their table schemas are derived from the fields (`columns.schema_of`),
so a column has one definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from helix_pipelines.contracts.vocabulary import OrderStatus, Side


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRecord:
    """One `executor_orders` row: the executor's memory of one signal, keyed by its
    deterministic orderLinkId and written before anything is sent. Fields are in the table's
    column order (the executor mode, the store's, sits after `signal_id`).

    `qty` is what was asked and `filled_qty` what the venue filled (cumExecQty), as plain decimal
    text (exact, as the venue has them); `symbol` is the coin, `venue_symbol` the instrument.
    """

    order_link_id: str
    signal_id: str
    symbol: str
    side: Side
    qty: str | None = None
    status: OrderStatus
    venue_order_id: str | None = None
    avg_price: float | None = None
    take_profit: str | None = None
    stop_loss: str | None = None
    leverage: int | None = None
    reason: str | None = None
    created_at: datetime
    updated_at: datetime
    venue_symbol: str | None = None
    filled_qty: str | None = None
    venue_status: str | None = None
    submitted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PaperPosition:
    """One open position of the paper book (a flat symbol has no row)."""

    symbol: str
    side: Side
    qty: float
    avg_price: float
    take_profit: float
    stop_loss: float
    leverage: int
    opened_at: datetime


@dataclass(frozen=True, slots=True)
class PaperFill:
    """One fill of the paper book. `side` is the side of the position the fill belongs to, and
    `reduces_position` tells an exit from an entry: an order that reverses a position is two
    fills, the closing one (the old position's side, reducing) and the opening one."""

    fill_id: str
    order_link_id: str
    symbol: str
    side: Side
    qty: float
    price: float
    fee_usd: float
    realized_pnl_usd: float
    filled_at: datetime
    reduces_position: bool
