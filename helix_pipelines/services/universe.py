"""Resolve the symbol universe: which coins (or one exchange's pairs) the pipeline follows.

Modes: `list` (explicit symbols), `top` (the first N in CoinGlass's supported-coins order, which
CoinGlass ranks by market relevance), `all` (everything supported) and `bybit` (the default
whenever a CoinGlass key is set): every USDT perpetual trading on Bybit that CoinGlass covers,
from Bybit's public instrument list intersected with CoinGlass's supported coins, multiplier
names mapped (`1000PEPEUSDT` -> `PEPE`, kept with its multiplier). In that mode a coin CoinGlass
lists on a single exchange only is flagged and kept apart (its aggregated heatmap is one venue's
book, not the market's), and every Bybit instrument left out is listed with the reason.
Symbols the source does not support are reported, not silently fetched forever.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from helix_pipelines.coinglass.source import HeatmapSource
from helix_pipelines.contracts.heatmaps import UniverseMember
from helix_pipelines.contracts.instruments import map_to_coins, split_multiplier
from helix_pipelines.execution.bybit_listing import (
    MAINNET,
    BybitInstrumentListing,
    is_tradable_usdt_perpetual,
    why_not_tradable,
)

UniverseMode = Literal["list", "top", "all", "bybit"]
MODES = ("list", "top", "all", "bybit")
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
    bybit_endpoint: str = MAINNET
    include_single_exchange: bool = False


class InstrumentListing(Protocol):
    """Bybit's linear instruments, every page (`execution.bybit_listing` in production)."""

    def linear_instruments(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class ResolvedUniverse:
    members: list[UniverseMember]
    unsupported: list[str]
    choices: dict[str, str] = field(default_factory=dict)
    """Pair scope: base asset -> which instrument was chosen over which (several share it)."""
    excluded: dict[str, str] = field(default_factory=dict)
    """Bybit mode: instrument -> why it is not a member (not a USDT perpetual, not trading,
    unknown to CoinGlass, or its coin is traded by another instrument)."""
    single_exchange: list[str] = field(default_factory=list)
    """Bybit mode: coins CoinGlass lists on one exchange only, kept apart."""

    @property
    def fingerprint(self) -> str:
        """Stable hash of the members: equal universes have equal fingerprints."""
        text = "\n".join(
            f"{m.scope}|{m.exchange}|{m.symbol}"
            + (f"|{m.venue_symbol}|{m.multiplier}" if m.venue_symbol else "")
            for m in self.members
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class UniverseError(ValueError):
    """The selection yields no symbol at all, or is itself invalid."""


async def resolve_universe(
    source: HeatmapSource,
    selection: UniverseSelection,
    listing: InstrumentListing | None = None,
) -> ResolvedUniverse:
    """Ask the source what it supports and apply the selection to it (Bybit mode: against
    `listing`, Bybit's public one at `selection.bybit_endpoint` unless given)."""
    if selection.mode not in MODES:
        raise UniverseError(
            f"universe mode must be one of {', '.join(MODES)}, got {selection.mode!r}"
        )
    if selection.mode == "bybit":
        listing = listing or BybitInstrumentListing(selection.bybit_endpoint)
        return await _bybit_universe(source, listing, selection.include_single_exchange)
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


async def _bybit_universe(
    source: HeatmapSource, listing: InstrumentListing, include_single_exchange: bool
) -> ResolvedUniverse:
    coins = await source.supported_coins()
    venues = _exchanges_per_coin(await source.supported_exchange_pairs())
    rows = await asyncio.to_thread(listing.linear_instruments)
    excluded = {r["symbol"]: why_not_tradable(r) for r in rows if not is_tradable_usdt_perpetual(r)}
    tradable = [(r["symbol"], r["baseCoin"]) for r in rows if is_tradable_usdt_perpetual(r)]
    mapped, unmapped = map_to_coins(tradable, set(coins))
    excluded.update(unmapped)
    order = {coin: i for i, coin in enumerate(coins)}
    single = sorted(c for c in mapped if venues.get(c, 0) <= 1)
    kept = [c for c in mapped if include_single_exchange or c not in single]
    if not kept:
        raise UniverseError(
            f"none of Bybit's {len(rows)} linear instruments is a trading USDT perpetual that "
            "CoinGlass covers on more than one exchange"
        )
    members = [
        UniverseMember("coin", "", coin, rank, mapped[coin].symbol, mapped[coin].multiplier)
        for rank, coin in enumerate(sorted(kept, key=order.__getitem__), start=1)
    ]
    if not include_single_exchange:
        excluded.update(
            {
                mapped[c].symbol: f"CoinGlass lists {c} on a single exchange: kept apart"
                for c in single
            }
        )
    return ResolvedUniverse(members, [], {}, dict(sorted(excluded.items())), single)


def _exchanges_per_coin(pairs: Mapping[str, Sequence[Mapping[str, str]]]) -> dict[str, int]:
    """coin -> how many exchanges CoinGlass lists a pair of it on (multiplied bases count for
    their coin too: Binance's 1000PEPE is PEPE)."""
    seen: dict[str, set[str]] = {}
    for exchange, listed in pairs.items():
        for pair in listed:
            base = pair.get("base_asset") or ""
            for coin in {base, split_multiplier(base)[0]}:
                seen.setdefault(coin, set()).add(exchange)
    return {coin: len(exchanges) for coin, exchanges in seen.items()}
