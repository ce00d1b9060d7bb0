"""A whole universe shaped like the real one, for the fake Bybit and the fake CoinGlass alike.

Bybit (docs/real-apis.md): about 435 linear instruments at one reading, 432 of them trading USDT
perpetuals, names with multipliers (`1000PEPEUSDT`, `SHIB1000USDT`, `10000SATSUSDT`,
`1000000MOGUSDT`), beside USDC perpetuals, dated futures and instruments that are not trading.
CoinGlass: supported coins that include the multiplied names it knows as such (`10000SATS`,
`1000000MOG`) and the plain names of the others (`PEPE`, `SHIB`), some coins Bybit does not
list, and exchange pairs in which a few coins appear on one exchange only.
"""

from __future__ import annotations

from typing import Any

from helix_pipelines.coinglass.synthetic import SYNTHETIC_COINS
from helix_pipelines.testing.bybit_instruments import make_instrument

MULTIPLIED = {"1000PEPEUSDT": "1000PEPE", "SHIB1000USDT": "SHIB1000", "1000BONKUSDT": "1000BONK",
              "10000SATSUSDT": "10000SATS", "1000000MOGUSDT": "1000000MOG"}  # fmt: skip
"""Bybit symbol -> baseCoin, for the instruments that trade a multiple of the coin."""
COINGLASS_NAMES = {"1000PEPE": "PEPE", "SHIB1000": "SHIB", "1000BONK": "BONK",
                   "10000SATS": "10000SATS", "1000000MOG": "1000000MOG"}  # fmt: skip
"""How CoinGlass names those coins (some multiplied, some plain)."""
NOT_IN_UNIVERSE = {
    "BTCPERP": {"quote_coin": "USDC"},  # a USDC perpetual
    "BTCUSDT-26DEC25": {"contract_type": "LinearFutures"},  # a dated future
    "ETHUSDT-27MAR26": {"contract_type": "LinearFutures"},
    "NEWLISTUSDT": {"status": "PreLaunch"},
    "GONEUSDT": {"status": "Closed"},
}
UNKNOWN_TO_COINGLASS = ("ZZNEWUSDT", "ZZTINYUSDT")
"""Trading USDT perpetuals CoinGlass has no coin for."""
SINGLE_EXCHANGE = ("SOLO1", "SOLO2")
"""Coins CoinGlass lists on Bybit only."""


def coin_names(count: int) -> list[str]:
    """`count` coin names: the synthetic generator's named coins first, then numbered ones."""
    named = [c for c in SYNTHETIC_COINS if c not in ("PEPE",)]
    return (named + [f"ALT{i:03d}" for i in range(count)])[:count]


def bybit_instruments(coins: list[str]) -> dict[str, dict[str, Any]]:
    """The linear instruments of a Bybit that lists a USDT perpetual for every coin, plus the
    multiplied, the unknown, the single-exchange and the non-universe ones."""
    rows = [make_instrument(f"{c}USDT", **_filters()) for c in coins]
    rows += [make_instrument(s, base_coin=b, **_filters()) for s, b in MULTIPLIED.items()]
    rows += [make_instrument(s, **_filters()) for s in UNKNOWN_TO_COINGLASS]
    rows += [make_instrument(f"{c}USDT", **_filters()) for c in SINGLE_EXCHANGE]
    for symbol, extra in NOT_IN_UNIVERSE.items():
        base = "BTC" if symbol.startswith("BTC") else symbol.split("USDT")[0].removesuffix("PERP")
        rows.append(make_instrument(symbol, base_coin=base, **_filters(), **extra))
    return {r["symbol"]: r for r in rows}


def coinglass_coins(coins: list[str]) -> list[str]:
    """CoinGlass's supported coins, in its relevance order: ours, the multiplied ones by their
    CoinGlass names, the single-exchange ones, and a few Bybit does not list."""
    return [*coins, *COINGLASS_NAMES.values(), *SINGLE_EXCHANGE, "ONLYCG1", "ONLYCG2"]


def coinglass_exchange_pairs(coins: list[str]) -> dict[str, list[dict[str, str]]]:
    """Every coin on Binance, OKX and Bybit, except the single-exchange ones (Bybit only);
    Binance lists PEPE by its multiplied base, like the real one."""

    def pairs(names: list[str]) -> list[dict[str, str]]:
        return [
            {"instrument_id": f"{n}USDT", "base_asset": n, "quote_asset": "USDT"} for n in names
        ]

    shared = [*coins, "1000PEPE", "SHIB", "BONK", "10000SATS", "1000000MOG"]
    return {
        "Binance": pairs(shared),
        "OKX": pairs(shared),
        "Bybit": pairs([*shared, *SINGLE_EXCHANGE]),
    }


def _filters() -> dict[str, str]:
    return {
        "tick_size": "0.0001",
        "qty_step": "1",
        "min_order_qty": "1",
        "max_order_qty": "1000000",
    }
