"""Between the coin CoinGlass names and the Bybit instrument that trades it, in one place.

Bybit lists some perpetuals per 1,000 (or more) units of the coin and says so in the name:
`1000PEPEUSDT` (baseCoin `1000PEPE`), `SHIB1000USDT` (`SHIB1000`), `10000SATSUSDT`,
`1000000MOGUSDT`. CoinGlass knows some of these by the multiplied name (`10000SATS`,
`1000000MOG`) and others by the plain coin (`PEPE`). A `VenueInstrument` records which coin a
Bybit instrument trades and its multiplier, so a signal in coin units (price per coin, size in
coins) becomes an order in contract units: price x multiplier, size / multiplier. Whether the two
sides really quote on the same scale was not recorded for every coin, so the executor also
compares the converted entry with the venue's last price before trading (the deviation guard).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from decimal import Decimal

# 100, 1000, 10000, ... in front of the coin (1000PEPE) or behind it (SHIB1000).
_LEADING = re.compile(r"^(10{2,})([A-Z][A-Z0-9]*)$")
_TRAILING = re.compile(r"^([A-Z][A-Z0-9]*?[A-Z])(10{2,})$")


@dataclass(frozen=True, slots=True)
class VenueInstrument:
    """One Bybit linear perpetual and the coin it trades.

    `multiplier`: coins per unit of the instrument (1000 for 1000PEPEUSDT, 1 for BTCUSDT), so
    venue price = coin price x multiplier and venue qty = coin qty / multiplier.
    """

    coin: str
    symbol: str
    base: str
    multiplier: int = 1

    def to_venue_price(self, coin_price: Decimal) -> Decimal:
        return coin_price * self.multiplier

    def to_venue_qty(self, coin_qty: Decimal) -> Decimal:
        return coin_qty / self.multiplier

    def to_coin_qty(self, venue_qty: Decimal) -> Decimal:
        return venue_qty * self.multiplier


def split_multiplier(base: str) -> tuple[str, int]:
    """('PEPE', 1000) for '1000PEPE', ('SHIB', 1000) for 'SHIB1000', (base, 1) otherwise.

    Only powers of ten from 100 count, so coins with digits of their own ('1INCH', 'C98',
    'AI16Z', '0G') keep their names.
    """
    leading = _LEADING.match(base)
    if leading:
        return leading.group(2), int(leading.group(1))
    trailing = _TRAILING.match(base)
    if trailing:
        return trailing.group(1), int(trailing.group(2))
    return base, 1


def instrument_for(coin: str, listed: Iterable[tuple[str, str]]) -> VenueInstrument | None:
    """The instrument that trades `coin` among (symbol, baseCoin) pairs, or None.

    The instrument whose base is the coin itself wins (CoinGlass's `10000SATS` is Bybit's
    `10000SATSUSDT`, multiplier 1); else the one whose base is the coin with a multiplier.
    """
    multiplied = None
    for symbol, base in listed:
        if base == coin:
            return VenueInstrument(coin, symbol, base, 1)
        root, multiplier = split_multiplier(base)
        if root == coin and multiplier > 1 and multiplied is None:
            multiplied = VenueInstrument(coin, symbol, base, multiplier)
    return multiplied


def map_to_coins(
    listed: Iterable[tuple[str, str]], coins: Collection[str]
) -> tuple[dict[str, VenueInstrument], dict[str, str]]:
    """(coin -> instrument, symbol -> why unmapped) for Bybit's listed (symbol, baseCoin) pairs
    against the coins CoinGlass supports.

    A base CoinGlass knows as such maps to itself; else its multiplier-free name if CoinGlass
    knows that. Two instruments for one coin (`PEPEUSDT` and `1000PEPEUSDT`) keep the
    unmultiplied one.
    """
    mapped: dict[str, VenueInstrument] = {}
    unmapped: dict[str, str] = {}
    for symbol, base in listed:
        root, multiplier = split_multiplier(base)
        if base in coins:
            candidate = VenueInstrument(base, symbol, base, 1)
        elif root in coins:
            candidate = VenueInstrument(root, symbol, base, multiplier)
        else:
            shown = f"{base} or {root}" if root != base else base
            unmapped[symbol] = f"CoinGlass lists no coin {shown}"
            continue
        held = mapped.get(candidate.coin)
        if held is None or candidate.multiplier < held.multiplier:
            if held is not None:
                unmapped[held.symbol] = f"{candidate.symbol} trades {candidate.coin} unmultiplied"
            mapped[candidate.coin] = candidate
        else:
            unmapped[symbol] = f"{held.symbol} already trades {candidate.coin}"
    return mapped, unmapped
