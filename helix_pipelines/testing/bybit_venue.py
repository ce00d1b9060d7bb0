"""The fake Bybit venue's state and what each v5 call does to it: instruments, last prices, the
account's equity, position modes and leverage, orders and positions, with the rules the real
venue applies (docs/real-apis.md). No HTTP here: `bybit_server` authenticates, injects faults and
routes requests to these methods, under the venue's lock."""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from helix_pipelines.testing.bybit_instruments import DEFAULT_INSTRUMENTS, DEFAULT_PRICES
from helix_pipelines.testing.bybit_records import (
    OPEN_STATUSES,
    BybitError,
    Order,
    Position,
    decimal_param,
    multiple,
    plain,
    render_order,
    render_position,
)

ONE_WAY, HEDGE = 0, 3


class FakeVenue:
    """Everything the venue knows. Tests may read and change it while requests are in flight:
    hold `lock` around anything that must be consistent (the server holds it per request)."""

    def __init__(
        self,
        clock_ms: Callable[[], int],
        *,
        instruments: Mapping[str, dict[str, Any]] | None = None,
        prices: Mapping[str, str] | None = None,
        equity: str = "100000",
        visibility_delay: float = 0.0,
    ) -> None:
        self._now_ms = clock_ms
        self.instruments: dict[str, dict[str, Any]] = copy.deepcopy(
            dict(instruments or DEFAULT_INSTRUMENTS)
        )
        self._last = {s: Decimal(p) for s, p in (prices or DEFAULT_PRICES).items()}
        self.equity = Decimal(equity)
        self.visibility_delay = visibility_delay
        """Seconds after acceptance before an order shows in the order lists."""
        self.liquidity: dict[str, Decimal] = {}
        """symbol -> the most a market order fills; the rest is cancelled."""
        self._modes = dict.fromkeys(self.instruments, ONE_WAY)
        self._leverage = {s: (Decimal(1), Decimal(1)) for s in self.instruments}
        self._orders: dict[str, Order] = {}
        self._by_link: dict[str, str] = {}
        self._positions: dict[tuple[str, int], Position] = {}
        self.lock = threading.RLock()

    # -- what tests script and read --------------------------------------------------------------

    def set_price(self, symbol: str, price: str | Decimal) -> None:
        with self.lock:
            self._last[symbol] = Decimal(price)

    def set_position_mode(self, mode: int, symbol: str | None = None) -> None:
        with self.lock:
            for s in [symbol] if symbol else list(self._modes):
                self._modes[s] = mode

    def position_mode(self, symbol: str) -> int:
        with self.lock:
            return self._mode(symbol)

    def leverage(self, symbol: str) -> tuple[Decimal, Decimal]:
        with self.lock:
            return self._leverage.get(symbol, (Decimal(1), Decimal(1)))

    def _mode(self, symbol: str) -> int:
        """A symbol listed after start-up has the account's default mode, one-way."""
        return self._modes.setdefault(symbol, ONE_WAY)

    def open_position(self, symbol: str, side: str, size: str, price: str, idx: int = 0) -> None:
        """A position opened elsewhere (by hand on the venue, or by an earlier run)."""
        with self.lock:
            self._positions[symbol, idx] = Position(side, Decimal(size), Decimal(price))

    def position(self, symbol: str, idx: int = 0) -> dict[str, Any]:
        with self.lock:
            return render_position(
                symbol, idx, self._positions.get((symbol, idx), Position()), self.leverage(symbol)
            )

    @property
    def orders(self) -> dict[str, dict[str, Any]]:
        """Every order by orderLinkId, visible or not yet."""
        with self.lock:
            return {o.link_id: render_order(o) for o in self._orders.values()}

    def order_count(self, symbol: str | None = None) -> int:
        with self.lock:
            return sum(symbol in (None, o.symbol) for o in self._orders.values())

    # -- the calls -------------------------------------------------------------------------------

    def server_time(self, params: dict[str, Any]) -> dict[str, Any]:
        now = self._now_ms()
        return {"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}

    def _page(self, rows: list[Any], params: Mapping[str, Any], default: int, maximum: int) -> dict:
        """One page of `rows` and the cursor of the next (Bybit's cursors are opaque strings)."""
        limit = min(int(params.get("limit") or default), maximum)
        start = int(params.get("cursor") or 0)
        end = start + limit
        return {"list": rows[start:end], "nextPageCursor": str(end) if end < len(rows) else ""}

    def instruments_info(self, params: dict[str, Any]) -> dict[str, Any]:
        rows = [i for s, i in sorted(self.instruments.items()) if params.get("symbol") in (None, s)]
        return {"category": "linear", **self._page(rows, params, 500, 1000)}

    def tickers(self, params: dict[str, Any]) -> dict[str, Any]:
        """One symbol's ticker, or without `symbol` every priced instrument's in one answer, as
        Bybit does (the live price feed's REST fallback asks for all at once)."""
        if params.get("symbol") is None:
            symbols = sorted(s for s in self.instruments if s in self._last)
        else:
            symbols = [self._known(params.get("symbol"))]
        rows = [
            {"symbol": s, "lastPrice": plain(self._last[s]), "markPrice": plain(self._last[s])}
            for s in symbols
        ]
        return {"category": "linear", "list": rows}

    def _known(self, symbol: Any) -> str:
        if not isinstance(symbol, str) or symbol not in self.instruments:
            raise BybitError(10001, f"params error: symbol invalid {symbol!r}")
        return symbol

    def create_order(self, params: dict[str, Any]) -> dict[str, Any]:
        symbol = self._known(params.get("symbol"))
        spec = self.instruments[symbol]
        lot, ticks = spec["lotSizeFilter"], Decimal(spec["priceFilter"]["tickSize"])
        link = str(params.get("orderLinkId") or "")
        if link in self._by_link:
            raise BybitError(110072, "OrderLinkedID is duplicate")
        side, order_type = params.get("side"), params.get("orderType")
        if side not in ("Buy", "Sell") or order_type not in ("Market", "Limit"):
            raise BybitError(10001, "params error: side or orderType invalid")
        qty = decimal_param(params, "qty", required=True)
        assert qty is not None
        ceiling = Decimal(lot["maxMktOrderQty" if order_type == "Market" else "maxOrderQty"])
        if not multiple(qty, Decimal(lot["qtyStep"])) or qty < Decimal(lot["minOrderQty"]):
            raise BybitError(10001, f"Qty invalid: {params['qty']} (qtyStep {lot['qtyStep']})")
        if qty > ceiling:
            raise BybitError(
                10001, f"The number of contracts exceeds maximum limit allowed: {ceiling}"
            )
        price = decimal_param(params, "price", required=order_type == "Limit")
        reference = price or self._last[symbol]
        if qty * reference < Decimal(lot["minNotionalValue"]):
            raise BybitError(
                110094, f"Order does not meet minimum order value {lot['minNotionalValue']}USDT"
            )
        idx = int(params.get("positionIdx", 0))
        allowed = (0,) if self._mode(symbol) == ONE_WAY else ((1,) if side == "Buy" else (2,))
        if idx not in allowed:
            raise BybitError(10001, "position idx not match position mode")
        take_profit, stop_loss = (
            decimal_param(params, "takeProfit"),
            decimal_param(params, "stopLoss"),
        )
        for name, level in (("takeProfit", take_profit), ("stopLoss", stop_loss), ("price", price)):
            if level is not None and not multiple(level, ticks):
                raise BybitError(10001, f"params error: {name} must be a multiple of {ticks}")
        above, below = (take_profit, stop_loss) if side == "Buy" else (stop_loss, take_profit)
        if (above is not None and above <= reference) or (below is not None and below >= reference):
            raise BybitError(10001, "TakeProfit / StopLoss is on the wrong side of the price")
        now = self._now_ms()
        order = Order(
            str(uuid.uuid4()),
            link,
            symbol,
            side,
            order_type,
            qty,
            price,
            idx,
            take_profit,
            stop_loss,
            now,
            updated_ms=now,
        )
        self._orders[order.order_id] = order
        if link:
            self._by_link[link] = order.order_id
        if order_type == "Market":
            self._fill_market(order)
        return {"orderId": order.order_id, "orderLinkId": link}

    def _fill_market(self, order: Order) -> None:
        price = self._last[order.symbol]
        filled = min(order.qty, self.liquidity.get(order.symbol, order.qty))
        order.cum_qty, order.cum_value = filled, filled * price
        if filled == order.qty:
            order.status = "Filled"
        else:
            order.status = "PartiallyFilledCanceled" if filled else "Cancelled"
        if filled:
            self._apply_fill(order, filled, price)

    def _apply_fill(self, order: Order, qty: Decimal, price: Decimal) -> None:
        p = self._positions.setdefault((order.symbol, order.position_idx), Position())
        if p.size == 0 or p.side == order.side:
            p.avg_price = (p.avg_price * p.size + price * qty) / (p.size + qty)
            p.size, p.side = p.size + qty, order.side
        elif qty <= p.size:
            p.size -= qty
        else:
            p.size, p.side, p.avg_price = qty - p.size, order.side, price
        if order.take_profit is not None or order.stop_loss is not None:
            p.take_profit, p.stop_loss = order.take_profit, order.stop_loss

    def _visible(self, order: Order) -> bool:
        return self._now_ms() >= order.created_ms + self.visibility_delay * 1000

    def order_list(self, params: dict[str, Any]) -> dict[str, Any]:
        if not (params.get("symbol") or params.get("settleCoin")):
            raise BybitError(10001, "params error: symbol or settleCoin is required")
        wanted_id, wanted_link = params.get("orderId"), params.get("orderLinkId")
        rows = [
            render_order(o)
            for o in sorted(self._orders.values(), key=lambda o: -o.created_ms)
            if self._visible(o)
            and params.get("symbol") in (None, o.symbol)
            and wanted_id in (None, o.order_id)
            and wanted_link in (None, o.link_id)
        ]
        return {"category": "linear", **self._page(rows, params, 20, 50)}

    def _position_rows(self, symbol: str) -> list[tuple[str, int]]:
        return [(symbol, 0)] if self._mode(symbol) == ONE_WAY else [(symbol, 1), (symbol, 2)]

    def position_list(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("symbol"):
            keys = self._position_rows(self._known(params["symbol"]))
        elif params.get("settleCoin") == "USDT":
            keys = [k for k, p in sorted(self._positions.items()) if p.size > 0]
        else:
            raise BybitError(10001, "params error: symbol or settleCoin is required")
        rows = [
            render_position(s, i, self._positions.get((s, i), Position()), self.leverage(s))
            for s, i in keys
        ]
        return {"category": "linear", **self._page(rows, params, 20, 200)}

    def set_leverage(self, params: dict[str, Any]) -> dict[str, Any]:
        symbol = self._known(params.get("symbol"))
        buy, sell = (
            decimal_param(params, n, required=True) for n in ("buyLeverage", "sellLeverage")
        )
        assert buy is not None
        assert sell is not None
        if not (1 <= buy <= 100 and 1 <= sell <= 100):
            raise BybitError(10001, "params error: leverage out of range [1, 100]")
        if self._mode(symbol) == ONE_WAY and buy != sell:
            raise BybitError(10001, "params error: buy leverage must equal sell leverage")
        if self.leverage(symbol) == (buy, sell):
            raise BybitError(110043, "leverage not modified")
        self._leverage[symbol] = (buy, sell)
        return {}

    def _busy(self, symbol: str) -> bool:
        """A position or an open order: Bybit then keeps the symbol's position mode."""
        return any(s == symbol and p.size > 0 for (s, _), p in self._positions.items()) or any(
            o.symbol == symbol and o.status in OPEN_STATUSES for o in self._orders.values()
        )

    def switch_mode(self, params: dict[str, Any]) -> dict[str, Any]:
        mode = params.get("mode")
        if mode not in (ONE_WAY, HEDGE):
            raise BybitError(10001, "params error: mode must be 0 (one-way) or 3 (hedge)")
        if params.get("symbol"):
            symbol = self._known(params["symbol"])
            if self._mode(symbol) == mode:
                raise BybitError(110025, "Position mode is not modified")
            if self._busy(symbol):
                raise BybitError(
                    110024, "You have an existing position, so position mode cannot be switched"
                )
            self._modes[symbol] = mode
            return {}
        if params.get("coin") != "USDT":
            raise BybitError(10001, "params error: symbol or coin is required")
        # By coin: every symbol without a position or open order switches; the others keep
        # their mode, and the answer is OK all the same.
        modes = {s: self._mode(s) for s in self.instruments}
        switchable = [s for s, m in modes.items() if m != mode and not self._busy(s)]
        if not switchable and all(m == mode for m in modes.values()):
            raise BybitError(110025, "Position mode is not modified")
        for symbol in switchable:
            self._modes[symbol] = mode
        return {}

    def wallet_balance(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("accountType") != "UNIFIED":
            raise BybitError(10001, "params error: accountType must be UNIFIED")
        unrealised = sum(
            ((self._last[s] - p.avg_price) * p.size * (1 if p.side == "Buy" else -1))
            for (s, _), p in self._positions.items()
        )
        return {
            "list": [{"accountType": "UNIFIED", "totalEquity": plain(self.equity + unrealised)}]
        }
