"""Brokers behind one interface: the paper broker (the default) and Bybit through pybit.

Three kinds of trouble, kept apart because each calls for something else:
- `OrderRejected`: the venue refused, for good (bad size, unknown instrument, margin).
- `VenueUnavailable`: the venue could not be asked (network error, rate limit waited out too
  long, server error on a read); `OrderNotSent` is the kind that proves no order left, so the
  signal is decided afresh on redelivery.
- `OrderOutcomeUnknown`: the venue may or may not hold the order (a timeout after sending,
  10000 / 10016, a duplicate orderLinkId, an order not yet visible): the executor looks it up by
  orderLinkId, now, on redelivery and at start-up, and never sends it again blindly.

Instruments are named as the venue names them (`Instrument.symbol`); signals name coins, and
`instrument(coin)` is where one becomes the other.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

import polars as pl

from helix_pipelines.clock import utc_now
from helix_pipelines.coinglass.endpoints import RANGES
from helix_pipelines.execution.orders import Instrument, OrderRequest, OrderResult, Position
from helix_pipelines.execution.tables import PAPER_FILLS_SCHEMA, PAPER_POSITIONS_SCHEMA
from helix_pipelines.warehouse.base import Warehouse


class OrderOutcomeUnknown(Exception):  # noqa: N818 - an outcome, not a failure
    """The venue may hold the order: look it up by orderLinkId before doing anything else."""


class OrderRejected(Exception):  # noqa: N818
    """The venue refused the order; the message says why."""


class VenueUnavailable(Exception):  # noqa: N818 - a state of the venue
    """The venue could not be asked just now; nothing is known to have changed."""


class OrderNotSent(VenueUnavailable):
    """The order certainly did not reach the venue (rate limited, or a step before it failed)."""


class Broker(Protocol):
    mode: str

    def prepare(self, coins: Sequence[str], leverage: int) -> None:
        """Start-up: position mode and default leverage."""
        ...

    def instrument(self, coin: str) -> Instrument:
        """The venue instrument that trades `coin`, with its rules and multiplier."""
        ...

    def last_price(self, symbol: str) -> Decimal: ...

    def submit(self, order: OrderRequest) -> OrderResult: ...

    def find_order(self, order_link_id: str, symbol: str) -> OrderResult | None:
        """One lookup by orderLinkId; None when the venue does not (yet) show it."""
        ...

    def acceptance_deadline(self, sent_at: datetime) -> datetime:
        """After this, an order sent at `sent_at` and still not visible was never accepted."""
        ...

    def positions(self) -> dict[str, Position]:
        """Open positions by venue symbol."""
        ...

    def equity(self) -> Decimal: ...

    def housekeeping(self) -> list[str]:
        """Periodic upkeep (the paper broker closes positions whose stop or target was hit)."""
        ...


PriceSource = Callable[[str], float | None]


def warehouse_prices(warehouse: Warehouse, clock: Callable[[], datetime] = utc_now) -> PriceSource:
    """Latest close per symbol from the finest candles stored in the last two days."""

    def price(symbol: str) -> float | None:
        candles = warehouse.candles_since(clock() - timedelta(days=2)).filter(
            pl.col("symbol") == symbol
        )
        if candles.height == 0:
            return None
        finest = min(candles["range"].unique().to_list(), key=RANGES.index)
        return float(candles.filter(pl.col("range") == finest).sort("ts")["close"][-1])

    return price


class PaperBroker:
    """Fills market orders at the latest price plus slippage, charges taker fees, and keeps its
    positions and fills in the warehouse. Stops and targets are honoured by `housekeeping`."""

    mode = "paper"

    def __init__(
        self,
        warehouse: Warehouse,
        prices: PriceSource,
        *,
        starting_equity_usd: float = 10_000.0,
        fee_rate: float = 0.00055,
        slippage_bps: float = 2.0,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.warehouse = warehouse
        self._prices = prices
        self._starting_equity = starting_equity_usd
        self._fee_rate = fee_rate
        self._slippage = slippage_bps / 10_000
        self._clock = clock

    def prepare(self, symbols: Sequence[str], leverage: int) -> None:
        return None  # nothing to configure on paper

    def last_price(self, symbol: str) -> Decimal:
        price = self._prices(symbol)
        if price is None:
            raise OrderRejected(f"no recent price for {symbol}")
        return Decimal(str(price))

    def instrument(self, coin: str) -> Instrument:
        """Synthetic lot and tick sizes in the style of Bybit linear perpetuals; the paper book
        trades the coin itself (no multiplier)."""
        price = float(self.last_price(coin))
        step = Decimal(1).scaleb(
            math.floor(math.log10(100 / price))
        )  # ~ Bybit: BTC 0.001, ETH 0.01
        tick = Decimal(1).scaleb(math.floor(math.log10(price)) - 4)
        return Instrument(coin, step, step, Decimal(10**9), tick, Decimal(5), coin=coin)

    def acceptance_deadline(self, sent_at: datetime) -> datetime:
        return sent_at  # the paper book fills synchronously: what is not there was never sent

    def _fills(self) -> pl.DataFrame:
        return self.warehouse.read_table("paper_fills")

    def find_order(self, order_link_id: str, symbol: str) -> OrderResult | None:
        fills = self._fills().filter(pl.col("order_link_id") == order_link_id)
        if fills.height == 0:
            return None
        row = fills.row(0, named=True)
        qty = Decimal(str(row["qty"]))
        return OrderResult(
            order_link_id, row["fill_id"], "filled", row["price"], qty, qty, "Filled"
        )

    def submit(self, order: OrderRequest) -> OrderResult:
        if self.find_order(order.order_link_id, order.symbol) is not None:
            raise OrderOutcomeUnknown(f"orderLinkId {order.order_link_id} already exists")
        last = float(self.last_price(order.symbol))
        price = last * (1 + self._slippage) if order.side == "Buy" else last * (1 - self._slippage)
        qty = float(order.qty)
        fee = qty * price * self._fee_rate
        side = "long" if order.side == "Buy" else "short"
        realized = self._apply_fill(order.symbol, side, qty, price, float(order.take_profit),
                                    float(order.stop_loss), order.leverage)  # fmt: skip
        self._record_fill(order.order_link_id, order.symbol, order.side, qty, price, fee, realized)
        return OrderResult(
            order.order_link_id,
            order.order_link_id,
            "filled",
            price,
            order.qty,
            order.qty,
            "Filled",
        )

    def _record_fill(
        self, olid: str, symbol: str, side: str, qty: float, price: float, fee: float, pnl: float
    ) -> None:
        now = self._clock()
        fill_id = hashlib.sha256(f"{olid}|{now.isoformat()}".encode()).hexdigest()[:24]
        row = {"fill_id": fill_id, "order_link_id": olid, "symbol": symbol, "side": side, "qty": qty,
               "price": price, "fee_usd": fee, "realized_pnl_usd": pnl, "filled_at": now}  # fmt: skip
        self.warehouse.upsert_frame("paper_fills", pl.DataFrame([row], schema=PAPER_FILLS_SCHEMA))

    def _apply_fill(
        self, symbol: str, side: str, qty: float, price: float, tp: float, sl: float, leverage: int
    ) -> float:
        """Update the position; returns the PnL realized by any part that closed."""
        book = self.warehouse.read_table("paper_positions")
        current = book.filter(pl.col("symbol") == symbol)
        realized = 0.0
        if current.height and current["side"][0] != side:
            held, avg = current["qty"][0], current["avg_price"][0]
            closed = min(held, qty)
            direction = 1 if current["side"][0] == "long" else -1
            realized = direction * (price - avg) * closed
            qty_left = held - closed
            rest = qty - closed
            if qty_left > 0:
                self._write_position(symbol, current["side"][0], qty_left, avg, current["take_profit"][0],
                                     current["stop_loss"][0], current["leverage"][0])  # fmt: skip
                return realized
            self._delete_position(symbol)
            if rest <= 0:
                return realized
            qty = rest
            current = current.clear()
        if current.height:
            held, avg = current["qty"][0], current["avg_price"][0]
            avg = (held * avg + qty * price) / (held + qty)
            qty = held + qty
            price = avg
        self._write_position(symbol, side, qty, price, tp, sl, leverage)
        return realized

    def _write_position(
        self, symbol: str, side: str, qty: float, avg: float, tp: float, sl: float, leverage: int
    ) -> None:
        row = {"symbol": symbol, "side": side, "qty": qty, "avg_price": avg, "take_profit": tp,
               "stop_loss": sl, "leverage": leverage, "opened_at": self._clock()}  # fmt: skip
        self.warehouse.upsert_frame(
            "paper_positions", pl.DataFrame([row], schema=PAPER_POSITIONS_SCHEMA)
        )

    def _delete_position(self, symbol: str) -> None:
        # A zero-size row is how the paper book records "flat" (the frame API upserts rows).
        self._write_position(symbol, "flat", 0.0, 0.0, 0.0, 0.0, 1)

    def positions(self) -> dict[str, Position]:
        book = self.warehouse.read_table("paper_positions").filter(pl.col("qty") > 0)
        return {
            r["symbol"]: Position(
                r["symbol"], r["side"], Decimal(str(r["qty"])), Decimal(str(r["avg_price"]))
            )
            for r in book.iter_rows(named=True)
        }

    def equity(self) -> Decimal:
        fills = self._fills()
        realized = (
            float(fills["realized_pnl_usd"].sum()) - float(fills["fee_usd"].sum())
            if fills.height
            else 0.0
        )
        unrealized = 0.0
        for position in self.positions().values():
            price = self._prices(position.symbol)
            if price is None:
                continue  # no recent price: valued at its entry (no unrealized PnL) until one comes
            direction = 1 if position.side == "long" else -1
            unrealized += direction * (price - float(position.avg_price)) * float(position.qty)
        return Decimal(str(self._starting_equity + realized + unrealized))

    def housekeeping(self) -> list[str]:
        """Close positions whose stop-loss or take-profit the latest price crossed."""
        closed = []
        book = self.warehouse.read_table("paper_positions").filter(pl.col("qty") > 0)
        for p in book.iter_rows(named=True):
            price = self._prices(p["symbol"])
            if price is None:
                continue  # no recent price for this one: the others are still checked
            last = float(price)
            long = p["side"] == "long"
            hit_stop = last <= p["stop_loss"] if long else last >= p["stop_loss"]
            hit_target = last >= p["take_profit"] if long else last <= p["take_profit"]
            if not (hit_stop or hit_target):
                continue
            exit_price = p["stop_loss"] if hit_stop else p["take_profit"]
            realized = (exit_price - p["avg_price"]) * p["qty"] * (1 if long else -1)
            fee = p["qty"] * exit_price * self._fee_rate
            olid = f"exit-{p['symbol']}-{self._clock().isoformat()}"
            self._record_fill(
                olid, p["symbol"], "Sell" if long else "Buy", p["qty"], exit_price, fee, realized
            )
            self._delete_position(p["symbol"])
            closed.append(
                f"{p['symbol']} {'stop-loss' if hit_stop else 'take-profit'} at {exit_price:.6g}"
            )
        return closed
