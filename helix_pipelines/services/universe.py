"""Resolve the symbol universe: which coins (or one exchange's pairs) the pipeline follows.

Modes: `list` (explicit symbols), `top` (the first N in CoinGlass's supported-coins order, which
CoinGlass ranks by market relevance) and `all` (everything supported). Symbols the source does
not support are reported, not silently fetched forever.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from helix_pipelines.coinglass.source import HeatmapSource
from helix_pipelines.contracts.heatmaps import UniverseMember

UniverseMode = Literal["list", "top", "all"]
DEFAULT_SYMBOLS: tuple[str, ...] = ("BTC", "ETH", "SOL", "XRP", "DOGE")


@dataclass(frozen=True, slots=True)
class UniverseSelection:
    """How to pick the universe; `exchange` applies to pair scope only."""

    mode: UniverseMode = "list"
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    top_n: int = 20
    scope: Literal["coin", "pair"] = "coin"
    exchange: str = "Binance"
    quote: str = "USDT"


@dataclass(frozen=True, slots=True)
class ResolvedUniverse:
    members: list[UniverseMember]
    unsupported: list[str]
    choices: dict[str, str] = field(default_factory=dict)
    """Pair scope: base asset -> which instrument was chosen over which (several share it)."""

    @property
    def fingerprint(self) -> str:
        """Stable hash of the members: equal universes have equal fingerprints."""
        text = "\n".join(f"{m.scope}|{m.exchange}|{m.symbol}" for m in self.members)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class UniverseError(ValueError):
    """The selection yields no symbol at all, or is itself invalid."""


async def resolve_universe(source: HeatmapSource, selection: UniverseSelection) -> ResolvedUniverse:
    """Ask the source what it supports and apply the selection to it."""
    if selection.mode not in ("list", "top", "all"):
        raise UniverseError(f"universe mode must be list, top or all, got {selection.mode!r}")
    if selection.mode == "top" and selection.top_n < 1:
        raise UniverseError(f"top_n must be at least 1, got {selection.top_n}")
    coins = await source.supported_coins()
    if selection.scope == "coin":
        available = {coin: coin for coin in coins}
        exchange = ""
    else:
        pairs = await source.supported_exchange_pairs()
        if selection.exchange not in pairs:
            raise UniverseError(
                f"exchange {selection.exchange!r} is not supported; choose one of {sorted(pairs)[:20]}"
            )
        available, choices = perpetual_per_base(pairs[selection.exchange], selection.quote)
        exchange = selection.exchange
    wanted = _wanted(selection, coins, available)
    chosen = [available[coin] for coin in wanted if coin in available]
    unsupported = [coin for coin in wanted if coin not in available]
    if not chosen:
        raise UniverseError(
            f"no symbol of the {selection.mode} selection is supported by the source "
            f"(unsupported: {', '.join(unsupported[:20]) or 'none requested'})"
        )
    members = [
        UniverseMember(scope=selection.scope, exchange=exchange, symbol=symbol, rank=rank)
        for rank, symbol in enumerate(dict.fromkeys(chosen), start=1)
    ]
    if selection.scope == "coin":
        return ResolvedUniverse(members, unsupported)
    picked = {coin for coin in wanted if coin in available}
    return ResolvedUniverse(members, unsupported, {c: w for c, w in choices.items() if c in picked})


# Delivery dates as exchanges spell them: BTCUSD_250627, BTC-USD-250627, BTC-26DEC25.
_DATED = re.compile(r"(\d{6}|\d{2}[A-Z]{3}\d{2})$")
_PERPETUAL_MARK = re.compile(r"(PERP|SWAP)", re.IGNORECASE)


def perpetual_per_base(
    pairs: Sequence[Mapping[str, str]], quote: str
) -> tuple[dict[str, str], dict[str, str]]:
    """(base asset -> the perpetual's instrument id, base -> why when several shared the base).

    An exchange lists perpetuals beside dated (quarterly) contracts of the same base asset
    (`BTCUSD_PERP`, `BTCUSD_250627`): the heatmap of the perpetual is the one wanted. A dated
    contract is one whose id ends in a delivery date; among the rest, an explicit PERP/SWAP mark
    wins, then the shortest id. A base with dated contracts only is left out.
    """
    by_base: dict[str, list[str]] = {}
    for pair in pairs:
        if (
            pair.get("quote_asset") == quote
            and pair.get("base_asset")
            and pair.get("instrument_id")
        ):
            by_base.setdefault(pair["base_asset"], []).append(pair["instrument_id"])
    chosen: dict[str, str] = {}
    why: dict[str, str] = {}
    for base, ids in by_base.items():
        undated = [i for i in ids if _PERPETUAL_MARK.search(i) or not _DATED.search(i)]
        if not undated:
            why[base] = f"no perpetual among {', '.join(sorted(ids))}: left out"
            continue
        best = min(undated, key=lambda i: (not _PERPETUAL_MARK.search(i), len(i), i))
        chosen[base] = best
        if len(ids) > 1:
            others = ", ".join(sorted(i for i in ids if i != best))
            why[base] = f"{best} (the perpetual) over {others}"
    return chosen, why


def _wanted(
    selection: UniverseSelection, coins: Sequence[str], available: dict[str, str]
) -> list[str]:
    if selection.mode == "list":
        return [s.strip().upper() for s in selection.symbols if s.strip()]
    ranked = [coin for coin in coins if coin in available]
    return ranked[: selection.top_n] if selection.mode == "top" else ranked
