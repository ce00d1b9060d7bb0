from __future__ import annotations

import asyncio

import pytest

from helix_pipelines.contracts.heatmaps import UniverseMember
from helix_pipelines.services.universe import UniverseError, UniverseSelection, resolve_universe
from helix_pipelines.testing.sources import ScriptedSource

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
        ({"mode": "pair-ish"}, "universe mode must be list, top or all"),
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
