from __future__ import annotations

import asyncio

import pytest

from helix_pipelines.universe import UniverseError, UniverseSelection, resolve_universe
from helix_pipelines.warehouse.base import UniverseMember
from helix_pipelines_tests.sources import ScriptedSource

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
