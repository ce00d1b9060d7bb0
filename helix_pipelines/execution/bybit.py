"""Bybit v5 (linear USDT perpetuals) through a real pybit `HTTP` session: testnet, demo or live.

What the venue really does (docs/real-apis.md), and what the broker does about it:
- retCode 10006 (rate limit) on any call: wait until X-Bapi-Limit-Reset-Timestamp and ask
  again, for up to `rate_limit_patience_seconds`; then `VenueUnavailable` (never a rejection).
- order/create answering 10000 / 10016, a timeout or a dropped connection after sending, or
  110072 (duplicate orderLinkId): the order may exist, so it is looked up, never sent again.
- order creation is asynchronous: the create answer's `orderId` is polled with a bounded
  backoff (`confirm_seconds`, by default the recv_window less the venue's clock lead, plus a
  second) until the order is visible and, for a market order, done. Still invisible after that:
  `OrderOutcomeUnknown`, whose message says why (lookups, recv_window, clock offset).
- market orders end Filled, PartiallyFilledCanceled or Cancelled: `cumExecQty` and `avgPrice`
  are the fill, whatever was asked.
- list calls page with `cursor`; market orders are capped by `maxMktOrderQty` (the executor);
  quantities and prices go out as plain decimals.
- `switch_position_mode` by coin leaves symbols with positions or orders in hedge mode and still
  answers OK, so each symbol's mode is read from its positions and orders use its positionIdx.
- coins map to instruments with their multipliers (`helix_pipelines.instruments`).
pybit's own retries stay off for network errors (`force_retry=False`) and for 10006; the call
layer (`bybit_calls`) waits rate limits out and sorts failures by what they say.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pybit.exceptions import InvalidRequestError
from pybit.unified_trading import HTTP

from helix_pipelines.contracts.instruments import instrument_for
from helix_pipelines.execution.brokers import (
    OrderNotSent,
    OrderOutcomeUnknown,
    OrderRejected,
    VenueUnavailable,
)
from helix_pipelines.execution.bybit_calls import BybitCalls, MayHaveActed
from helix_pipelines.execution.bybit_listing import is_tradable_usdt_perpetual
from helix_pipelines.execution.orders import Instrument, OrderRequest, OrderResult, Position, plain

log = logging.getLogger(__name__)

DUPLICATE_ORDER_LINK_ID = 110072
LEVERAGE_NOT_MODIFIED = 110043
POSITION_MODE_NOT_MODIFIED = 110025
ONE_WAY_MODE = 0
VENUE_SIDE = {"long": "Buy", "short": "Sell"}  # the venue's words stay in this adapter
_STATUS = {
    "Filled": "filled",
    "New": "accepted",
    "PartiallyFilled": "accepted",
    "Untriggered": "accepted",
    "Rejected": "rejected",
}
_ENDED = frozenset({"Cancelled", "PartiallyFilledCanceled", "Deactivated"})


def _status(order: dict[str, Any]) -> str:
    venue = str(order.get("orderStatus", ""))
    if venue in _ENDED:
        return "partially_filled" if Decimal(order.get("cumExecQty") or "0") > 0 else "cancelled"
    return _STATUS.get(venue, venue.lower())


def _result(order: dict[str, Any], order_link_id: str) -> OrderResult:
    avg = order.get("avgPrice")
    return OrderResult(
        order_link_id=order_link_id,
        venue_order_id=str(order["orderId"]),
        status=_status(order),
        avg_price=float(avg) if avg not in (None, "", "0") else None,
        qty=Decimal(order["qty"]),
        filled_qty=Decimal(order.get("cumExecQty") or "0"),
        venue_status=str(order.get("orderStatus", "")),
    )


class BybitBroker:
    def __init__(
        self,
        session: HTTP,
        mode: str,
        *,
        confirm_seconds: float | None = None,
        visibility_grace_seconds: float = 30.0,
        rate_limit_patience_seconds: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.session = session
        self.mode = mode
        self._venue = BybitCalls(session, patience_seconds=rate_limit_patience_seconds, sleep=sleep)
        self._confirm_seconds = confirm_seconds
        self._grace = visibility_grace_seconds
        self._sleep = sleep
        self._listing: dict[str, dict[str, Any]] | None = None
        self._instruments: dict[str, Instrument] = {}
        self._modes: dict[str, int] = {}
        self._leverage: dict[str, int] = {}

    @property
    def clock_offset_ms(self) -> float | None:
        """How far Bybit's clock runs ahead of ours, once measured (negative: behind)."""
        return self._venue.clock_offset_ms

    # -- start-up and instruments ------------------------------------------------------------

    def prepare(self, coins: Sequence[str], leverage: int) -> None:
        """One-way mode for USDT perpetuals (where Bybit lets it switch), the venue's clock
        offset, and the default leverage per instrument."""
        try:
            self._venue.call(
                "switch_position_mode", category="linear", coin="USDT", mode=ONE_WAY_MODE
            )
        except InvalidRequestError as exc:
            if exc.status_code != POSITION_MODE_NOT_MODIFIED:
                raise
        self._venue.clock_lead_ms()
        for coin in coins:
            try:
                symbol = self.instrument(coin).symbol
                self._set_leverage(symbol, leverage)
                self._position_idx(symbol, "Buy")  # learn its mode now, not at the first order
            except (OrderRejected, VenueUnavailable) as exc:
                # One untradable coin must not stop the others; its signals say why.
                log.warning("start-up leverage for %s skipped: %s", coin, exc)

    def instrument(self, coin: str) -> Instrument:
        if coin not in self._instruments:
            listing = self._listing_rows()
            venue = instrument_for(coin, ((s, r["baseCoin"]) for s, r in listing.items()))
            if venue is None:
                raise OrderRejected(
                    f"Bybit lists no trading USDT perpetual for {coin} "
                    f"(looked for {coin}USDT and multiplied names such as 1000{coin}USDT)"
                )
            row = listing[venue.symbol]
            lot, price = row["lotSizeFilter"], row["priceFilter"]
            self._instruments[coin] = Instrument(
                symbol=venue.symbol,
                qty_step=Decimal(lot["qtyStep"]),
                min_qty=Decimal(lot["minOrderQty"]),
                max_qty=Decimal(lot["maxOrderQty"]),
                tick_size=Decimal(price["tickSize"]),
                min_notional=Decimal(lot.get("minNotionalValue") or "0"),
                max_market_qty=Decimal(lot.get("maxMktOrderQty") or lot["maxOrderQty"]),
                coin=coin,
                multiplier=venue.multiplier,
            )
        return self._instruments[coin]

    def _listing_rows(self) -> dict[str, dict[str, Any]]:
        """Every trading USDT linear perpetual, by symbol (all pages, read once)."""
        if self._listing is None:
            rows = self._venue.pages("get_instruments_info", category="linear", limit=1000)
            self._listing = {r["symbol"]: r for r in rows if is_tradable_usdt_perpetual(r)}
        return self._listing

    def _position_idx(self, symbol: str, side: str) -> int:
        """0 in one-way mode; 1 (Buy) / 2 (Sell) where the symbol stayed in hedge mode."""
        if symbol not in self._modes:
            rows = self._venue.read("get_positions", category="linear", symbol=symbol)["list"]
            hedge = any(int(r.get("positionIdx", 0)) in (1, 2) for r in rows)
            self._modes[symbol] = 3 if hedge else ONE_WAY_MODE
            if hedge:
                log.warning(
                    "%s is in hedge mode at Bybit (it kept a position or order when "
                    "USDT switched to one-way); orders use its positionIdx",
                    symbol,
                )
        if self._modes[symbol] == ONE_WAY_MODE:
            return 0
        return 1 if side == "Buy" else 2

    def _set_leverage(self, symbol: str, leverage: int) -> None:
        if self._leverage.get(symbol) == leverage:
            return
        try:
            self._venue.call(
                "set_leverage",
                category="linear",
                symbol=symbol,
                buyLeverage=str(leverage),
                sellLeverage=str(leverage),
            )
        except InvalidRequestError as exc:
            if exc.status_code != LEVERAGE_NOT_MODIFIED:
                raise OrderRejected(
                    f"set leverage {leverage}x on {symbol}: retCode {exc.status_code} {exc.message}"
                ) from None
        except MayHaveActed as exc:
            raise VenueUnavailable(f"leverage of {symbol} unknown: {exc}") from None
        self._leverage[symbol] = leverage

    def last_price(self, symbol: str) -> Decimal:
        tickers = self._venue.read("get_tickers", category="linear", symbol=symbol)["list"]
        if not tickers:
            raise OrderRejected(f"no ticker for {symbol}")
        return Decimal(tickers[0]["lastPrice"])

    # -- orders ------------------------------------------------------------------------------

    def _window_seconds(self) -> float:
        """How long Bybit may still accept a request after we signed it: its recv_window less
        the lead of its clock over ours."""
        recv_window = float(getattr(self.session, "recv_window", 5000) or 5000)
        return max(recv_window - self._venue.clock_lead_ms(), 0.0) / 1000

    def acceptance_deadline(self, sent_at: datetime) -> datetime:
        return sent_at + timedelta(seconds=self._window_seconds() + self._grace)

    def submit(self, order: OrderRequest) -> OrderResult:
        try:
            self._set_leverage(order.symbol, order.leverage)
            idx = self._position_idx(order.symbol, VENUE_SIDE[order.side])
        except VenueUnavailable as exc:
            raise OrderNotSent(f"before sending {order.order_link_id}: {exc}") from None
        sent_at = time.monotonic()
        order_id = None
        try:
            created = self._venue.call(
                "place_order",
                category="linear",
                symbol=order.symbol,
                side=VENUE_SIDE[order.side],
                orderType="Market",
                qty=plain(order.qty),
                orderLinkId=order.order_link_id,
                takeProfit=plain(order.take_profit),
                stopLoss=plain(order.stop_loss),
                tpslMode="Full",
                positionIdx=idx,
            )
            order_id = created.get("orderId") or None
            why = "accepted"
        except InvalidRequestError as exc:
            if exc.status_code != DUPLICATE_ORDER_LINK_ID:
                raise OrderRejected(f"Bybit retCode {exc.status_code}: {exc.message}") from None
            why = "duplicate orderLinkId (110072): the venue has it"
        except MayHaveActed as exc:
            why = f"outcome unknown ({exc})"
        except VenueUnavailable as exc:
            raise OrderNotSent(f"{order.order_link_id} not sent: {exc}") from None
        return self._confirm(order, order_id, sent_at, why)

    def _confirm(
        self, order: OrderRequest, order_id: str | None, sent_at: float, why: str
    ) -> OrderResult:
        """Poll until the order is visible and, being a market order, done; bounded."""
        budget = (
            self._confirm_seconds
            if self._confirm_seconds is not None
            else self._window_seconds() + 1.0
        )
        delay, lookups, found, trouble = 0.05, 0, None, ""
        while True:
            try:
                found = self._lookup(order.order_link_id, order.symbol, order_id)
            except VenueUnavailable as exc:
                trouble = f"; the last lookup failed: {exc}"
            lookups += 1
            if found is not None and why != "accepted":
                found = replace(found, lookup_note=f"found by orderLinkId after: {why}")
            if found is not None and found.status != "accepted":
                return found
            elapsed = time.monotonic() - sent_at
            if elapsed >= budget:
                break
            self._sleep(min(delay, budget - elapsed))
            delay = min(delay * 2, 1.0)
        if found is not None:
            return found  # visible and still working after the whole budget
        raise OrderOutcomeUnknown(
            f"{order.order_link_id} ({why}) not visible at Bybit after {lookups} lookups over "
            f"{time.monotonic() - sent_at:.1f} s: Bybit accepts a request up to its recv_window "
            f"after signing and its clock runs {self._venue.clock_lead_ms():+.0f} ms from ours, so it "
            f"may still appear{trouble}"
        )

    def _lookup(self, order_link_id: str, symbol: str, order_id: str | None) -> OrderResult | None:
        key = {"orderId": order_id} if order_id else {"orderLinkId": order_link_id}
        for method in ("get_open_orders", "get_order_history"):
            rows = self._venue.read(method, category="linear", symbol=symbol, **key)["list"]
            if rows:
                return _result(rows[0], order_link_id)
        return None

    def find_order(self, order_link_id: str, symbol: str) -> OrderResult | None:
        return self._lookup(order_link_id, symbol, None)

    # -- account -----------------------------------------------------------------------------

    def positions(self) -> dict[str, Position]:
        positions: dict[str, Position] = {}
        for r in self._venue.pages(
            "get_positions", category="linear", settleCoin="USDT", limit=200
        ):
            size = Decimal(r.get("size") or "0")
            held = positions.get(r["symbol"])
            if size > 0 and (held is None or size > held.qty):
                side = "long" if r["side"] == "Buy" else "short"
                positions[r["symbol"]] = Position(
                    r["symbol"], side, size, Decimal(r.get("avgPrice") or "0")
                )
        return positions

    def equity(self) -> Decimal:
        try:
            accounts = self._venue.read("get_wallet_balance", accountType="UNIFIED")["list"]
        except InvalidRequestError as exc:
            raise self._venue.scrubbed(exc) from None
        return Decimal(accounts[0]["totalEquity"]) if accounts else Decimal(0)

    def housekeeping(self) -> list[str]:
        return []  # stops and targets live on the exchange
