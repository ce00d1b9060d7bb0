"""`helix live`: websocket prices and liquidations, the budget planner and the live radar in one
process, until Ctrl-C / SIGTERM (or `--cycles`); see services/live.py and docs/live.md."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Sequence

from helix_pipelines.bus.prices import LivePrices
from helix_pipelines.bus.radar import RadarPublisher
from helix_pipelines.cli.radar import format_radar
from helix_pipelines.clock import utc_now
from helix_pipelines.coinglass.planner import PlannerParams
from helix_pipelines.contracts.vocabulary import RANGES
from helix_pipelines.heatmaps.archive import ParquetArchive
from helix_pipelines.heatmaps.quarantine import QuarantineStore
from helix_pipelines.services.live import LiveOptions, LiveService, LiveStats
from helix_pipelines.services.settings import Settings, open_configured


def add_command(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "live", help="websocket prices and liquidations, the budget planner and the live radar"
    )
    parser.add_argument("--cycles", type=int, help="stop after N planning cycles (default: never)")
    parser.add_argument(
        "--hot-coins", type=int, default=25, help="radar top K refreshed every cycle"
    )
    parser.add_argument(
        "--hot-ranges", default="12h,24h", help="the hot list's ranges (default 12h,24h)"
    )
    parser.add_argument(
        "--cycle-seconds", type=float, default=50.0, help="seconds between plans (default 50)"
    )
    parser.add_argument(
        "--limit-per-minute",
        type=int,
        help="requests per minute to plan for (default: what CoinGlass reports for the key)",
    )
    parser.add_argument(
        "--testnet",
        action="store_true",
        help="tickers from Bybit testnet (prices only: no trading)",
    )
    parser.add_argument("--no-tickers", action="store_true", help="no Bybit price stream")
    parser.add_argument(
        "--no-liquidations", action="store_true", help="no CoinGlass liquidation stream"
    )
    parser.add_argument(
        "--top", type=int, default=10, help="radar rows printed at the end (default 10)"
    )
    parser.set_defaults(run=run)


STATUS_FILE = "live-status.json"


def options_from(args: argparse.Namespace, settings: Settings) -> LiveOptions:
    ranges = tuple(r for r in args.hot_ranges.split(",") if r)
    if unknown := [r for r in ranges if r not in RANGES]:
        raise SystemExit(f"helix live: unknown --hot-ranges {unknown}; known: {', '.join(RANGES)}")
    return LiveOptions(
        planner=PlannerParams(
            hot_coins=args.hot_coins, hot_ranges=ranges, cycle_seconds=args.cycle_seconds
        ),
        limit_per_minute=args.limit_per_minute,
        tickers=not args.no_tickers,
        network="testnet" if args.testnet else "mainnet",
        liquidations=not args.no_liquidations,
        max_cycles=args.cycles,
        status_path=settings.storage.data_dir / STATUS_FILE,
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    options = options_from(args, settings)
    warehouse = open_configured(settings)
    redis = settings.redis_url
    publisher = RadarPublisher(redis, key_prefix=settings.bus_prefix) if redis else None
    prices = LivePrices(redis, key_prefix=settings.bus_prefix) if redis else None
    print(f"helix live: warehouse {warehouse.description}; source {settings.source.describe()}")
    if not redis:
        print("helix live: HELIX_REDIS_URL is not set: the radar and prices are not published")
    service = LiveService(
        settings,
        warehouse,
        ParquetArchive(settings.storage.archive),
        QuarantineStore(settings.storage.quarantine),
        options,
        radar_publisher=publisher,
        live_prices=prices,
    )
    try:
        stats = asyncio.run(_serve(service))
    finally:
        for client in (publisher, prices):
            if client is not None:
                client.close()
        warehouse.close()
    print(summary(stats, top=args.top))
    return 1 if stats.cycles and stats.fetch_failures == stats.requests_planned else 0


async def _serve(service: LiveService) -> LiveStats:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    print("helix live: running; Ctrl-C stops it cleanly")
    return await service.run(stop)


def summary(stats: LiveStats, *, top: int) -> str:
    latency = stats.radar_latency.summary()
    lines: Sequence[str] = [
        f"cycles {stats.cycles}: {stats.requests_planned} requests planned and sent, "
        f"{stats.fetch_failures} failed",
        f"radar: {stats.rankings} rankings ({stats.rankings_stored} stored in liquidation_radar); "
        + (
            f"price -> radar p50 {_seconds(latency.p50)}, p95 {_seconds(latency.p95)}"
            if latency.count
            else "price -> radar: no live price moved it"
        ),
        *(f"note: {n}" for n in stats.notes),
    ]
    text = "\n".join(lines)
    if stats.last_radar:
        text += "\n" + format_radar(stats.last_radar, top=top, show_excluded=False, now=utc_now())
    return text


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"
