from __future__ import annotations

from decimal import Decimal

import pytest

from helix_pipelines.contracts.instruments import (
    VenueInstrument,
    instrument_for,
    map_to_coins,
    split_multiplier,
)

LISTED = [
    ("BTCUSDT", "BTC"),
    ("1000PEPEUSDT", "1000PEPE"),
    ("SHIB1000USDT", "SHIB1000"),
    ("10000SATSUSDT", "10000SATS"),
    ("1000000MOGUSDT", "1000000MOG"),
    ("1INCHUSDT", "1INCH"),
    ("C98USDT", "C98"),
    ("0GUSDT", "0G"),
]


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("1000PEPE", ("PEPE", 1000)),
        ("SHIB1000", ("SHIB", 1000)),
        ("10000SATS", ("SATS", 10000)),
        ("1000000MOG", ("MOG", 1_000_000)),
        ("1000000BABYDOGE", ("BABYDOGE", 1_000_000)),
        ("BTC", ("BTC", 1)),
        ("1INCH", ("1INCH", 1)),
        ("C98", ("C98", 1)),
        ("AI16Z", ("AI16Z", 1)),
        ("0G", ("0G", 1)),
        ("10X", ("10X", 1)),
    ],
)
def test_split_multiplier(base: str, expected: tuple[str, int]) -> None:
    assert split_multiplier(base) == expected


def test_a_coin_finds_its_instrument_with_the_multiplier() -> None:
    assert instrument_for("PEPE", LISTED) == VenueInstrument(
        "PEPE", "1000PEPEUSDT", "1000PEPE", 1000
    )
    assert instrument_for("SHIB", LISTED) == VenueInstrument(
        "SHIB", "SHIB1000USDT", "SHIB1000", 1000
    )
    # CoinGlass names some coins by the multiplied name: the instrument then trades them 1:1.
    assert instrument_for("10000SATS", LISTED) == VenueInstrument(
        "10000SATS", "10000SATSUSDT", "10000SATS", 1
    )
    assert instrument_for("BTC", LISTED) == VenueInstrument("BTC", "BTCUSDT", "BTC", 1)
    assert instrument_for("INCH", LISTED) is None
    assert instrument_for("NOPE", LISTED) is None


def test_conversions_between_coin_and_contract_units() -> None:
    pepe = VenueInstrument("PEPE", "1000PEPEUSDT", "1000PEPE", 1000)
    assert pepe.to_venue_price(Decimal("0.000019")) == Decimal("0.019000")
    assert pepe.to_venue_qty(Decimal("5000000")) == Decimal("5000")
    assert pepe.to_coin_qty(Decimal("5000")) == Decimal("5000000")


def test_mapping_the_listing_against_coinglass_coins() -> None:
    coins = {"BTC", "PEPE", "SHIB", "10000SATS", "MOG", "1INCH"}
    mapped, unmapped = map_to_coins([*LISTED, ("PEPEUSDT", "PEPE")], coins)
    assert {c: (v.symbol, v.multiplier) for c, v in mapped.items()} == {
        "BTC": ("BTCUSDT", 1),
        "PEPE": ("PEPEUSDT", 1),
        "SHIB": ("SHIB1000USDT", 1000),
        "10000SATS": ("10000SATSUSDT", 1),
        "MOG": ("1000000MOGUSDT", 1_000_000),
        "1INCH": ("1INCHUSDT", 1),
    }
    assert unmapped == {
        "1000PEPEUSDT": "PEPEUSDT trades PEPE unmultiplied",
        "C98USDT": "CoinGlass lists no coin C98",
        "0GUSDT": "CoinGlass lists no coin 0G",
    }
