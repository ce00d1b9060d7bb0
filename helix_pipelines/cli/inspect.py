"""`helix status` and `helix universe`: what the warehouse holds, what the universe resolves to."""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import replace

from helix_pipelines.cli.dagster_home import dagster_home
from helix_pipelines.coinglass.settings import open_source
from helix_pipelines.contracts.vocabulary import RANGES
from helix_pipelines.services.settings import Settings, open_configured
from helix_pipelines.services.universe import resolve_universe


def status(args: argparse.Namespace, settings: Settings) -> int:
    warehouse = open_configured(settings)
    try:
        rows = sorted(
            warehouse.heatmaps.ledger_summary(),
            key=lambda r: (r["model"], RANGES.index(str(r["range"]))),
        )
        print(f"warehouse: {warehouse.description}")
        home = dagster_home()
        recorded = (
            "" if (home / "dagster.yaml").exists() else " (none yet: `helix demo` creates it)"
        )
        print(f"dagster instance: {home}{recorded}; `make dev` serves it")
        universe = warehouse.heatmaps.load_universe()
        print(f"universe: {len(universe)} symbols: {', '.join(m.symbol for m in universe[:30])}")
    finally:
        warehouse.close()
    if not rows:
        print(
            "no heatmap snapshots stored yet: run `helix demo` or materialize liquidation_heatmaps"
        )
        return 0
    header = ("model", "range", "loaded", "quarantined", "unavailable", "cells")
    print(" ".join(f"{h:>11}" for h in header) + "  latest fetch (UTC)")
    for row in rows:
        values = [row[h] for h in header[:-1]] + [f"{row['cells']:,}"]
        print(" ".join(f"{v!s:>11}" for v in values) + f"  {row['latest_fetch']:%Y-%m-%d %H:%M:%S}")
    return 0


def universe(args: argparse.Namespace, settings: Settings) -> int:
    selection = settings.universe
    if args.symbols:
        symbols = tuple(s for s in args.symbols.split(",") if s)
        selection = replace(selection, mode="list", symbols=symbols)

    async def run() -> int:
        source = open_source(settings.source)
        try:
            resolved = await resolve_universe(source, selection)
        finally:
            await source.aclose()
        label = " (SANDBOX)" if source.kind == "sandbox" else ""
        print(f"{len(resolved.members)} symbols ({selection.mode} mode) from {source.kind}{label}:")
        print(
            ", ".join(
                m.symbol + (f" ({m.venue_symbol} x{m.multiplier})" if m.multiplier > 1 else "")
                for m in resolved.members
            )
        )
        if resolved.unsupported:
            print(f"unsupported, left out: {', '.join(resolved.unsupported)}")
        for coin, why in resolved.choices.items():
            print(f"{coin}: {why}")
        if resolved.single_exchange:
            print(f"on a single exchange, kept apart: {', '.join(resolved.single_exchange)}")
        for symbol, why in resolved.excluded.items():
            print(f"left out {symbol}: {why}")
        return 0

    return asyncio.run(run())
