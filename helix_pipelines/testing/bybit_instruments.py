"""Bybit linear instruments for the fake venue: rows of `/v5/market/instruments-info` and the
default set the tests trade (with the venue multipliers the real list has, `1000PEPEUSDT` and
`SHIB1000USDT`), with their last prices."""

from __future__ import annotations

from typing import Any


def make_instrument(
    symbol: str,
    *,
    tick_size: str,
    qty_step: str,
    min_order_qty: str,
    max_order_qty: str,
    max_mkt_order_qty: str | None = None,
    min_notional_value: str = "5",
    base_coin: str | None = None,
    status: str = "Trading",
    contract_type: str = "LinearPerpetual",
    quote_coin: str = "USDT",
) -> dict[str, Any]:
    """A row of `/v5/market/instruments-info` (the fields Helix reads, and their neighbours)."""
    return {
        "symbol": symbol,
        "contractType": contract_type,
        "status": status,
        "baseCoin": base_coin or symbol.removesuffix(quote_coin),
        "quoteCoin": quote_coin,
        "settleCoin": quote_coin,
        "launchTime": "1585526400000",
        "deliveryTime": "0",
        "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
        "priceFilter": {"minPrice": tick_size, "maxPrice": "1999999.80", "tickSize": tick_size},
        "lotSizeFilter": {
            "maxOrderQty": max_order_qty,
            "minOrderQty": min_order_qty,
            "qtyStep": qty_step,
            "maxMktOrderQty": max_mkt_order_qty or max_order_qty,
            "minNotionalValue": min_notional_value,
        },
    }


DEFAULT_INSTRUMENTS: dict[str, dict[str, Any]] = {
    i["symbol"]: i
    for i in (
        make_instrument("BTCUSDT", tick_size="0.10", qty_step="0.001", min_order_qty="0.001",
                        max_order_qty="1190.000", max_mkt_order_qty="119.000"),
        make_instrument("ETHUSDT", tick_size="0.01", qty_step="0.01", min_order_qty="0.01",
                        max_order_qty="7240.00", max_mkt_order_qty="724.00"),
        make_instrument("SOLUSDT", tick_size="0.010", qty_step="0.1", min_order_qty="0.1",
                        max_order_qty="79770.0", max_mkt_order_qty="7977.0"),
        make_instrument("XRPUSDT", tick_size="0.0001", qty_step="1", min_order_qty="1",
                        max_order_qty="3870000", max_mkt_order_qty="387000"),
        make_instrument("DOGEUSDT", tick_size="0.00001", qty_step="1", min_order_qty="1",
                        max_order_qty="12500000", max_mkt_order_qty="1250000"),
        make_instrument("1000PEPEUSDT", tick_size="0.0000001", qty_step="100",
                        min_order_qty="100", max_order_qty="100000000",
                        max_mkt_order_qty="10000000"),
        make_instrument("SHIB1000USDT", tick_size="0.000001", qty_step="10", min_order_qty="10",
                        max_order_qty="50000000", max_mkt_order_qty="5000000"),
    )
}  # fmt: skip
DEFAULT_PRICES: dict[str, str] = {
    "BTCUSDT": "65000.0", "ETHUSDT": "3200.00", "SOLUSDT": "150.000", "XRPUSDT": "0.6000",
    "DOGEUSDT": "0.15000", "1000PEPEUSDT": "0.0190000", "SHIB1000USDT": "0.024000",
}  # fmt: skip
