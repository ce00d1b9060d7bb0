from __future__ import annotations

import asyncio

import pytest

from helix_pipelines.contracts.heatmaps import UniverseMember
from helix_pipelines.execution.bybit_listing import BybitInstrumentListing
from helix_pipelines.services.universe import UniverseError, UniverseSelection, resolve_universe
from helix_pipelines.testing.bybit_server import FakeBybitServer
from helix_pipelines.testing.sources import ScriptedSource
from helix_pipelines.testing.universe import (
    bybit_instruments,
    coin_names,
    coinglass_coins,
    coinglass_exchange_pairs,
)

SOURCE = ScriptedSource({}, coins=["BTC", "ETH", "SOL", "XRP"])


def resolve(**selection):
    return asyncio.run(resolve_universe(SOURCE, UniverseSelection(**selection)))


def test_list_mode_keeps_order_and_reports_unsupported() -> None:
    resolved = resolve(mode="list", symbols=("eth", "BTC", "NOPE", "ETH"))
    assert [m.symbol for m in resolved.members] == ["ETH", "BTC"]
    assert resolved.members[0] == UniverseMember("coin", "", "ETH", 1)
    assert resolved.unsupported == ["NOPE"]


def test_top_and_all_modes() -> None:
    assert [m.symbol for m in resolve(mode="top", top_n=2).members] == ["BTC", "ETH"]
    assert len(resolve(mode="all").members) == 4


def test_pair_scope_maps_coins_to_instruments() -> None:
    resolved = resolve(mode="list", symbols=("SOL",), scope="pair", exchange="Binance")
    assert resolved.members == [UniverseMember("pair", "Binance", "SOLUSDT", 1)]


def test_fingerprint_changes_only_with_members() -> None:
    assert (
        resolve(mode="top", top_n=2).fingerprint
        == resolve(mode="list", symbols=("BTC", "ETH")).fingerprint
    )
    assert resolve(mode="top", top_n=2).fingerprint != resolve(mode="top", top_n=3).fingerprint


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        ({"mode": "list", "symbols": ("NOPE",)}, "no symbol of the list selection is supported"),
        ({"mode": "top", "top_n": 0}, "top_n must be at least 1"),
        ({"mode": "pair-ish"}, "universe mode must be one of list, top, all, bybit"),
        ({"scope": "pair", "exchange": "Kraken"}, "exchange 'Kraken' is not supported"),
    ],
)
def test_invalid_selections_are_clear_errors(selection: dict, message: str) -> None:
    with pytest.raises(UniverseError, match=message):
        resolve(**selection)


def test_pair_scope_picks_the_perpetual_among_dated_contracts_and_says_so() -> None:
    from helix_pipelines.services.universe import perpetual_per_base

    pairs = [
        {"instrument_id": "BTCUSD_250627", "base_asset": "BTC", "quote_asset": "USD"},
        {"instrument_id": "BTCUSD_PERP", "base_asset": "BTC", "quote_asset": "USD"},
        {"instrument_id": "BTCUSD_250926", "base_asset": "BTC", "quote_asset": "USD"},
        {"instrument_id": "ETH-USD-SWAP", "base_asset": "ETH", "quote_asset": "USD"},
        {"instrument_id": "ETH-USD-250627", "base_asset": "ETH", "quote_asset": "USD"},
        {"instrument_id": "SOLUSD", "base_asset": "SOL", "quote_asset": "USD"},
        {"instrument_id": "XRP-26DEC25", "base_asset": "XRP", "quote_asset": "USD"},
        {"instrument_id": "DOGEUSDT", "base_asset": "DOGE", "quote_asset": "USDT"},
    ]
    chosen, why = perpetual_per_base(pairs, "USD")
    assert chosen == {"BTC": "BTCUSD_PERP", "ETH": "ETH-USD-SWAP", "SOL": "SOLUSD"}
    assert why["BTC"] == "BTCUSD_PERP (the perpetual) over BTCUSD_250627, BTCUSD_250926"
    assert why["XRP"] == "no perpetual among XRP-26DEC25: left out"
    assert "SOL" not in why  # one instrument: nothing to choose


def test_the_resolved_pair_universe_reports_its_choices() -> None:
    class Pairs(ScriptedSource):
        async def supported_exchange_pairs(self) -> dict[str, list[dict[str, str]]]:
            return {
                "Binance": [
                    {"instrument_id": "BTCUSDT_250926", "base_asset": "BTC", "quote_asset": "USDT"},
                    {"instrument_id": "BTCUSDT", "base_asset": "BTC", "quote_asset": "USDT"},
                ]
            }

    resolved = asyncio.run(
        resolve_universe(
            Pairs({}, coins=["BTC"]),
            UniverseSelection(mode="list", symbols=("BTC",), scope="pair", exchange="Binance"),
        )
    )
    assert resolved.members == [UniverseMember("pair", "Binance", "BTCUSDT", 1)]
    assert resolved.choices == {"BTC": "BTCUSDT (the perpetual) over BTCUSDT_250926"}


COINS = coin_names(430)


@pytest.fixture(scope="module")
def bybit():
    with FakeBybitServer(instruments=bybit_instruments(COINS)) as server:
        yield server


def resolve_bybit(server, page_size: int = 1000, **selection):
    source = ScriptedSource(
        {}, coins=coinglass_coins(COINS), exchange_pairs=coinglass_exchange_pairs(COINS)
    )
    listing = BybitInstrumentListing(server.endpoint, page_size=page_size)
    return asyncio.run(
        resolve_universe(source, UniverseSelection(mode="bybit", **selection), listing)
    )


def test_the_bybit_universe_is_every_trading_usdt_perpetual_coinglass_covers(bybit) -> None:
    resolved = resolve_bybit(bybit, page_size=100)
    # 430 plain coins and the 5 multiplied ones; the single-exchange two are kept apart.
    assert len(resolved.members) == 435
    assert len(bybit.recorded("/v5/market/instruments-info")) >= 5  # 444 rows, 100 a page
    by_coin = {m.symbol: m for m in resolved.members}
    assert by_coin["PEPE"] == UniverseMember(
        "coin", "", "PEPE", by_coin["PEPE"].rank, "1000PEPEUSDT", 1000
    )
    assert (by_coin["SHIB"].venue_symbol, by_coin["SHIB"].multiplier) == ("SHIB1000USDT", 1000)
    # CoinGlass knows 10000SATS by its multiplied name: the instrument trades it 1:1.
    assert (by_coin["10000SATS"].venue_symbol, by_coin["10000SATS"].multiplier) == (
        "10000SATSUSDT",
        1,
    )
    assert by_coin["BTC"] == UniverseMember("coin", "", "BTC", 1, "BTCUSDT", 1)
    # Ranked in CoinGlass's relevance order.
    assert [m.symbol for m in resolved.members[:3]] == COINS[:3]
    assert resolved.single_exchange == ["SOLO1", "SOLO2"]
    excluded = resolved.excluded
    assert excluded["BTCPERP"] == "quoted in USDC, not USDT"
    assert excluded["BTCUSDT-26DEC25"] == "LinearFutures, not a perpetual"
    assert excluded["GONEUSDT"].startswith("status Closed")
    assert excluded["NEWLISTUSDT"].startswith("status PreLaunch")
    assert excluded["ZZNEWUSDT"] == "CoinGlass lists no coin ZZNEW"
    assert excluded["SOLO1USDT"] == "CoinGlass lists SOLO1 on a single exchange: kept apart"
    assert len(excluded) == 5 + 2 + 2
    assert not {"ONLYCG1", "ONLYCG2"} & set(by_coin)  # CoinGlass-only coins are not traded


def test_single_exchange_coins_can_be_included_and_pages_do_not_change_the_answer(bybit) -> None:
    included = resolve_bybit(bybit, include_single_exchange=True)
    assert {"SOLO1", "SOLO2"} <= {m.symbol for m in included.members}
    assert len(included.members) == 437
    assert resolve_bybit(bybit, page_size=1000).fingerprint == resolve_bybit(bybit, 50).fingerprint


def test_a_delisted_instrument_changes_the_fingerprint(bybit) -> None:
    before = resolve_bybit(bybit)
    with bybit.venue.lock:
        bybit.venue.instruments["ETHUSDT"]["status"] = "Closed"
    try:
        after = resolve_bybit(bybit)
    finally:
        with bybit.venue.lock:
            bybit.venue.instruments["ETHUSDT"]["status"] = "Trading"
    assert after.fingerprint != before.fingerprint
    assert "ETH" not in {m.symbol for m in after.members}
    assert after.excluded["ETHUSDT"].startswith("status Closed")


def test_an_unreachable_bybit_is_an_error_that_names_the_endpoint() -> None:
    from helix_pipelines.execution.brokers import VenueUnavailable

    with FakeBybitServer() as server:
        endpoint = server.endpoint  # a port nothing listens on once the server stops
    listing = BybitInstrumentListing(endpoint, timeout=2)
    with pytest.raises(VenueUnavailable, match=rf"instrument list at {endpoint}"):
        listing.linear_instruments()
