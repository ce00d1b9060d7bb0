"""The fake Bybit venue's records and wire formats: an order, a position, the numbers as Bybit
writes and reads them, its error, and the rows its list calls answer with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

OPEN_STATUSES = frozenset({"New", "PartiallyFilled", "Untriggered"})


class BybitError(Exception):
    def __init__(self, ret_code: int, ret_msg: str) -> None:
        super().__init__(ret_msg)
        self.ret_code, self.ret_msg = ret_code, ret_msg


@dataclass
class Order:
    order_id: str
    link_id: str
    symbol: str
    side: str
    order_type: str
    qty: Decimal
    price: Decimal | None
    position_idx: int
    take_profit: Decimal | None
    stop_loss: Decimal | None
    created_ms: int
    status: str = "New"
    cum_qty: Decimal = Decimal(0)
    cum_value: Decimal = Decimal(0)
    updated_ms: int = 0


@dataclass
class Position:
    side: str = ""
    size: Decimal = Decimal(0)
    avg_price: Decimal = Decimal(0)
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None


def plain(value: Decimal | None) -> str:
    """As Bybit writes numbers: plain digits, the precision they were given in."""
    return "" if value is None else format(value, "f")


def decimal_param(
    params: Mapping[str, Any], name: str, *, required: bool = False
) -> Decimal | None:
    raw = params.get(name)
    if raw in (None, ""):
        if required:
            raise BybitError(10001, f"params error: {name} is required")
        return None
    if not isinstance(raw, str) or "e" in raw.lower():
        raise BybitError(10001, f"params error: {name} {raw!r} must be a plain decimal string")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise BybitError(10001, f"params error: {name} {raw!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise BybitError(10001, f"params error: {name} {raw!r} is out of range")
    return value


def multiple(value: Decimal, step: Decimal) -> bool:
    return value % step == 0


def render_order(o: Order) -> dict[str, Any]:
    """An order as `/v5/order/realtime` and `/v5/order/history` list it."""
    avg = o.cum_value / o.cum_qty if o.cum_qty else None
    return {
        "orderId": o.order_id,
        "orderLinkId": o.link_id,
        "symbol": o.symbol,
        "side": o.side,
        "orderType": o.order_type,
        "price": plain(o.price) or "0",
        "qty": plain(o.qty),
        "orderStatus": o.status,
        "cumExecQty": plain(o.cum_qty) or "0",
        "cumExecValue": plain(o.cum_value) or "0",
        "avgPrice": plain(avg),
        "leavesQty": plain(o.qty - o.cum_qty) if o.status in OPEN_STATUSES else "0",
        "positionIdx": o.position_idx,
        "takeProfit": plain(o.take_profit),
        "stopLoss": plain(o.stop_loss),
        "createdTime": str(o.created_ms),
        "updatedTime": str(o.updated_ms),
    }


def render_position(
    symbol: str, idx: int, p: Position, leverage: tuple[Decimal, Decimal]
) -> dict[str, Any]:
    """A position row as `/v5/position/list` lists it (a flat one too)."""
    buy, sell = leverage
    return {
        "symbol": symbol,
        "positionIdx": idx,
        "side": p.side if p.size else "",
        "size": plain(p.size) or "0",
        "avgPrice": plain(p.avg_price) or "0",
        "leverage": plain(sell if idx == 2 else buy),
        "takeProfit": plain(p.take_profit),
        "stopLoss": plain(p.stop_loss),
    }
