"""The paper broker: market orders fill at the latest price plus slippage, taker fees are
charged, and the book (positions and fills) is kept in a `PaperBook` (the warehouse's). Stops
and targets are honoured by `housekeeping`. Prices come from a `PriceSource` (the latest stored
candle close); a coin without a recent price cannot be traded on paper.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from helix_pipelines.clock import utc_now
from helix_pipelines.contracts.records import PaperFill, PaperPosition
from helix_pipelines.contracts.vocabulary import Side
from helix_pipelines.execution.brokers import OrderOutcomeUnknown, OrderRejected
from helix_pipelines.execution.orders import Instrument, OrderRequest, OrderResult, Position
from helix_pipelines.execution.ports import PaperBook, PriceSource


class PaperBroker:
    mode = "paper"

    def __init__(
        self,
        book: PaperBook,
        prices: PriceSource,
        *,
        account_equity_usd: float = 10_000.0,
        fee_rate: float = 0.00055,
        slippage_bps: float = 2.0,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.book = book
        self._prices = prices
        self._account_equity = account_equity_usd
        self._fee_rate = fee_rate
        self._slippage = slippage_bps / 10_000
        self._clock = clock

    def prepare(self, coins: Sequence[str], leverage: int) -> None:
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
        step = Decimal(1).scaleb(math.floor(math.log10(100 / price)))  # ~ Bybit: BTC 0.001
        tick = Decimal(1).scaleb(math.floor(math.log10(price)) - 4)
        return Instrument(coin, step, step, Decimal(10**9), tick, Decimal(5), coin=coin)

    def acceptance_deadline(self, sent_at: datetime) -> datetime:
        return sent_at  # the paper book fills synchronously: what is not there was never sent

    def find_order(self, order_link_id: str, symbol: str) -> OrderResult | None:
        fills = self.book.fills_for(order_link_id)
        if not fills:
            return None
        qty = sum(f.qty for f in fills)
        price = sum(f.qty * f.price for f in fills) / qty
        filled = Decimal(str(qty))
        return OrderResult(order_link_id, order_link_id, "filled", price, filled, filled, "Filled")

    def submit(self, order: OrderRequest) -> OrderResult:
        if self.book.fills_for(order.order_link_id):
            raise OrderOutcomeUnknown(f"orderLinkId {order.order_link_id} already exists")
        last = float(self.last_price(order.symbol))
        price = last * (1 + self._slippage) if order.side == "long" else last * (1 - self._slippage)
        for leg, (side, qty, realized, reduces) in enumerate(
            self._apply_fill(order, float(order.qty), price)
        ):
            self._record_fill(
                order.order_link_id, leg, order.symbol, side, qty, price, realized, reduces
            )
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
        self,
        olid: str,
        leg: int,
        symbol: str,
        side: Side,
        qty: float,
        price: float,
        pnl: float,
        reduces: bool,
    ) -> None:
        now = self._clock()
        fill_id = hashlib.sha256(f"{olid}|{now.isoformat()}|{leg}".encode()).hexdigest()[:24]
        fee = qty * price * self._fee_rate
        self.book.add_fill(
            PaperFill(fill_id, olid, symbol, side, qty, price, fee, pnl, now, reduces)
        )

    def _opened(self, order: OrderRequest, qty: float, price: float) -> PaperPosition:
        return PaperPosition(
            order.symbol,
            order.side,
            qty,
            price,
            float(order.take_profit),
            float(order.stop_loss),
            order.leverage,
            self._clock(),
        )

    def _apply_fill(
        self, order: OrderRequest, qty: float, price: float
    ) -> list[tuple[Side, float, float, bool]]:
        """Update the book; the fill's legs as (position side, qty, realized PnL, reduces).

        A fill's side is the side of the position it belongs to: an order against an open
        position first reduces that position (a leg with the position's side), and whatever is
        left opens the other way (a second leg with the order's side).
        """
        held = self.book.position(order.symbol)
        if held is None or held.side == order.side:
            if held is not None:
                price_held = (held.qty * held.avg_price + qty * price) / (held.qty + qty)
                self.book.save_position(self._opened(order, held.qty + qty, price_held))
            else:
                self.book.save_position(self._opened(order, qty, price))
            return [(order.side, qty, 0.0, False)]
        closed = min(held.qty, qty)
        direction = 1 if held.side == "long" else -1
        legs = [(held.side, closed, direction * (price - held.avg_price) * closed, True)]
        if held.qty > closed:
            self.book.save_position(replace(held, qty=_minus(held.qty, closed)))
        else:
            self.book.delete_position(order.symbol)
        if qty > closed:  # the rest opens the other way
            rest = _minus(qty, closed)
            self.book.save_position(self._opened(order, rest, price))
            legs.append((order.side, rest, 0.0, False))
        return legs

    def positions(self) -> dict[str, Position]:
        return {
            p.symbol: Position(p.symbol, p.side, Decimal(str(p.qty)), Decimal(str(p.avg_price)))
            for p in self.book.positions()
        }

    def equity(self) -> Decimal:
        pnl, fees = self.book.realized()
        unrealized = 0.0
        for position in self.positions().values():
            price = self._prices(position.symbol)
            if price is None:
                continue  # no recent price: valued at its entry (no unrealized PnL) until one comes
            direction = 1 if position.side == "long" else -1
            unrealized += direction * (price - float(position.avg_price)) * float(position.qty)
        return Decimal(str(self._account_equity + pnl - fees + unrealized))

    def housekeeping(self) -> list[str]:
        """Close positions whose stop-loss or take-profit the latest price crossed."""
        closed = []
        for p in self.book.positions():
            price = self._prices(p.symbol)
            if price is None:
                continue  # no recent price for this one: the others are still checked
            long = p.side == "long"
            hit_stop = price <= p.stop_loss if long else price >= p.stop_loss
            hit_target = price >= p.take_profit if long else price <= p.take_profit
            if not (hit_stop or hit_target):
                continue
            exit_price = p.stop_loss if hit_stop else p.take_profit
            realized = (exit_price - p.avg_price) * p.qty * (1 if long else -1)
            olid = f"exit-{p.symbol}-{self._clock().isoformat()}"
            self._record_fill(olid, 0, p.symbol, p.side, p.qty, exit_price, realized, True)
            self.book.delete_position(p.symbol)
            closed.append(
                f"{p.symbol} {'stop-loss' if hit_stop else 'take-profit'} at {exit_price:.6g}"
            )
        return closed


def _minus(a: float, b: float) -> float:
    """a - b for quantities, in decimal (0.03 - 0.01 is 0.02, not 0.019999999999999997)."""
    return float(Decimal(str(a)) - Decimal(str(b)))
