"""Bybit v5 (linear perpetuals) through a real pybit `HTTP` session: testnet, demo or live.

pybit's own retries stay as they are for rate limits (10006: it sleeps until the limit resets
and resends; the orderLinkId makes a resend harmless) and off for network errors (`force_retry`
False): a timeout surfaces as `OrderOutcomeUnknown` and the executor looks the order up.
Helix symbols of coin scope ('BTC') trade as the USDT perpetual ('BTCUSDT').
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import requests
from pybit.exceptions import FailedRequestError, InvalidRequestError
from pybit.unified_trading import HTTP

from helix_pipelines.coinglass.errors import redact
from helix_pipelines.execution.brokers import OrderOutcomeUnknown, OrderRejected
from helix_pipelines.execution.orders import Instrument, OrderRequest, OrderResult, Position

log = logging.getLogger(__name__)

DUPLICATE_ORDER_LINK_ID = 110072
LEVERAGE_NOT_MODIFIED = 110043
POSITION_MODE_NOT_MODIFIED = 110025
RATE_LIMITED = 10006
ONE_WAY_MODE = 0
RATE_LIMIT_ATTEMPTS = 3
MAX_RATE_LIMIT_WAIT_SECONDS = 2.0
_STATUS = {
    "Filled": "filled", "New": "accepted", "PartiallyFilled": "accepted", "Untriggered": "accepted",
    "Cancelled": "cancelled", "PartiallyFilledCanceled": "cancelled", "Rejected": "rejected",
    "Deactivated": "cancelled",
}  # fmt: skip
_UNKNOWN_OUTCOME = (
    requests.exceptions.Timeout,
    requests.exceptions.ConnectionError,
    FailedRequestError,
)


def _rate_limit_wait(headers: Mapping[str, str] | None) -> float:
    """Seconds until Bybit's rate-limit window resets (X-Bapi-Limit-Reset-Timestamp), capped."""
    reset = (headers or {}).get("X-Bapi-Limit-Reset-Timestamp")
    if reset is None:
        return 0.5
    try:
        wait = int(reset) / 1000 - time.time()
    except ValueError:
        return 0.5
    return min(max(wait, 0.0), MAX_RATE_LIMIT_WAIT_SECONDS)


def venue_symbol(symbol: str) -> str:
    return symbol if symbol.endswith(("USDT", "USDC", "PERP")) else f"{symbol}USDT"


def open_session(mode: str, api_key: str, api_secret: str, *, timeout: int = 10) -> HTTP:
    """A pybit session for testnet, demo or live (the settings gate decides which is allowed).

    `force_retry` off: pybit must not resend an order after a timeout on its own. `retry_codes`
    keeps only 10002 (clock drift): 10006 (rate limit) surfaces so the broker waits for the
    reset itself, and pybit replaces an empty set with its defaults, hence the explicit set.
    """
    return HTTP(
        testnet=mode == "testnet", demo=mode == "demo", api_key=api_key, api_secret=api_secret,
        timeout=timeout, force_retry=False, max_retries=2, retry_delay=1, retry_codes={10002},
    )  # fmt: skip


class BybitBroker:
    def __init__(self, session: HTTP, mode: str) -> None:
        self.session = session
        self.mode = mode
        self._instruments: dict[str, Instrument] = {}
        self._leverage: dict[str, int] = {}

    def _call(self, method: str, **params: Any) -> dict[str, Any]:
        """One pybit call; Bybit errors come back with the API key redacted (a 10004 answer
        echoes the signed string, key included)."""
        try:
            return getattr(self.session, method)(category="linear", **params)["result"]
        except (InvalidRequestError, FailedRequestError) as exc:
            raise self._scrubbed(exc) from None

    def _scrubbed(self, exc: InvalidRequestError | FailedRequestError) -> Exception:
        return type(exc)(
            request=self._redact(str(exc.request)), message=self._redact(str(exc.message)),
            status_code=exc.status_code, time=exc.time, resp_headers=exc.resp_headers,
        )  # fmt: skip

    def prepare(self, symbols: Sequence[str], leverage: int) -> None:
        """One-way position mode for USDT perpetuals, and the default leverage per symbol."""
        try:
            self._call("switch_position_mode", coin="USDT", mode=ONE_WAY_MODE)
        except InvalidRequestError as exc:
            if exc.status_code != POSITION_MODE_NOT_MODIFIED:
                raise
        for symbol in symbols:
            try:
                self._set_leverage(symbol, leverage)
            except OrderRejected as exc:
                # One untradable symbol must not stop the others; its signals get 'rejected'.
                log.warning("start-up leverage for %s skipped: %s", symbol, exc)

    def _set_leverage(self, symbol: str, leverage: int) -> None:
        if self._leverage.get(symbol) == leverage:
            return
        try:
            self._call(
                "set_leverage",
                symbol=venue_symbol(symbol),
                buyLeverage=str(leverage),
                sellLeverage=str(leverage),
            )
        except InvalidRequestError as exc:
            if exc.status_code != LEVERAGE_NOT_MODIFIED:
                raise OrderRejected(
                    f"set leverage {leverage}x on {symbol}: retCode {exc.status_code} {exc.message}"
                ) from None
        self._leverage[symbol] = leverage

    def instrument(self, symbol: str) -> Instrument:
        if symbol not in self._instruments:
            found = self._call("get_instruments_info", symbol=venue_symbol(symbol))["list"]
            if not found:
                raise OrderRejected(f"{venue_symbol(symbol)} is not a Bybit linear instrument")
            lot, price = found[0]["lotSizeFilter"], found[0]["priceFilter"]
            self._instruments[symbol] = Instrument(
                symbol=symbol, qty_step=Decimal(lot["qtyStep"]), min_qty=Decimal(lot["minOrderQty"]),
                max_qty=Decimal(lot["maxOrderQty"]), tick_size=Decimal(price["tickSize"]),
                min_notional=Decimal(lot.get("minNotionalValue") or "0"),
            )  # fmt: skip
        return self._instruments[symbol]

    def last_price(self, symbol: str) -> Decimal:
        tickers = self._call("get_tickers", symbol=venue_symbol(symbol))["list"]
        if not tickers:
            raise OrderRejected(f"no ticker for {venue_symbol(symbol)}")
        return Decimal(tickers[0]["lastPrice"])

    def _redact(self, text: str) -> str:
        return redact(text, getattr(self.session, "api_key", None))

    def submit(self, order: OrderRequest) -> OrderResult:
        self._set_leverage(order.symbol, order.leverage)
        for attempt in range(1, RATE_LIMIT_ATTEMPTS + 1):
            try:
                self._call(
                    "place_order", symbol=venue_symbol(order.symbol), side=order.side,
                    orderType="Market", qty=str(order.qty), orderLinkId=order.order_link_id,
                    takeProfit=str(order.take_profit), stopLoss=str(order.stop_loss),
                    tpslMode="Full", positionIdx=0,
                )  # fmt: skip
                break
            except InvalidRequestError as exc:
                if exc.status_code == DUPLICATE_ORDER_LINK_ID:
                    raise OrderOutcomeUnknown(
                        f"orderLinkId {order.order_link_id} is a duplicate"
                    ) from None
                if exc.status_code == RATE_LIMITED and attempt < RATE_LIMIT_ATTEMPTS:
                    # Safe to resend: the same orderLinkId can only ever create one order.
                    time.sleep(_rate_limit_wait(exc.resp_headers))
                    continue
                raise OrderRejected(
                    self._redact(f"Bybit retCode {exc.status_code}: {exc.message}")
                ) from None
            except _UNKNOWN_OUTCOME as exc:
                raise OrderOutcomeUnknown(
                    f"{type(exc).__name__} while placing {order.order_link_id}"
                ) from None
        found = self.find_order(order.order_link_id, order.symbol)
        if found is None:
            raise OrderOutcomeUnknown(f"{order.order_link_id} accepted but not found yet")
        return found

    def find_order(self, order_link_id: str, symbol: str) -> OrderResult | None:
        for method in ("get_open_orders", "get_order_history"):
            try:
                orders = self._call(method, symbol=venue_symbol(symbol), orderLinkId=order_link_id)[
                    "list"
                ]
            except _UNKNOWN_OUTCOME:
                return None
            if orders:
                o = orders[0]
                avg = float(o["avgPrice"]) if o.get("avgPrice") not in (None, "", "0") else None
                status = _STATUS.get(o["orderStatus"], o["orderStatus"].lower())
                return OrderResult(order_link_id, o["orderId"], status, avg, Decimal(o["qty"]))
        return None

    def positions(self) -> dict[str, Position]:
        rows = self._call("get_positions", settleCoin="USDT")["list"]
        positions = {}
        for r in rows:
            if Decimal(r.get("size") or "0") > 0:
                side = "long" if r["side"] == "Buy" else "short"
                positions[r["symbol"]] = Position(
                    r["symbol"], side, Decimal(r["size"]), Decimal(r["avgPrice"])
                )
        return positions

    def equity(self) -> Decimal:
        try:
            accounts = self.session.get_wallet_balance(accountType="UNIFIED")["result"]["list"]
        except (InvalidRequestError, FailedRequestError) as exc:
            raise self._scrubbed(exc) from None
        return Decimal(accounts[0]["totalEquity"]) if accounts else Decimal(0)

    def housekeeping(self) -> list[str]:
        return []  # stops and targets live on the exchange

    def position_key(self, symbol: str) -> str:
        return venue_symbol(symbol)
