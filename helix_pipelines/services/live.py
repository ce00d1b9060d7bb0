"""`helix live`: the websocket consumers, the budget planner and the live radar in one process.

  prices        Bybit tickers over pybit's websocket (REST fallback when it is down) fill a
                `PriceBook`; every move marks the radar dirty, and the coins' prices go to
                Redis for the paper broker of `helix executor serve`.
  liquidations  CoinGlass's `liquidationOrders` websocket -> a bounded queue -> batched inserts
                into `liquidation_events`; the radar shows each coin's realized liquidations of
                the last `realized_window`.
  planner       every cycle: plan from the warehouse's state, fetch and store through the one
                ingest path (paced, under the shared budget), re-assess the symbols whose
                heatmaps changed, record the cycle in `fetch_plan_tiers`.
  radar         re-ranks the universe on every price move (at most every `radar_min_interval`),
                publishes each ranking to Redis and stores one every `radar_store_seconds`.

Each part that cannot run says so once and the rest go on: no Bybit instruments in the universe
(the sandbox) means no tickers, no CoinGlass key no liquidation feed, no Redis nothing published.
Shutdown (`stop` set, e.g. by SIGINT/SIGTERM): feeds stop first, queued liquidations are
flushed, the cycle in progress gets `shutdown_seconds` to finish its batch, then everything
closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from redis.exceptions import RedisError

from helix_pipelines.analytics.radar import RadarParams
from helix_pipelines.bus.prices import LivePrices
from helix_pipelines.bus.radar import RadarPublisher
from helix_pipelines.clock import utc_now
from helix_pipelines.coinglass.pacing import Pacer
from helix_pipelines.coinglass.planner import FetchKey, FetchPlan, PlannerParams
from helix_pipelines.coinglass.settings import open_source
from helix_pipelines.coinglass.source import HeatmapSource
from helix_pipelines.contracts.live import PriceTick
from helix_pipelines.contracts.radar import RadarEntry
from helix_pipelines.contracts.tables import RADAR_SCHEMA
from helix_pipelines.heatmaps.archive import ParquetArchive
from helix_pipelines.heatmaps.quarantine import QuarantineStore
from helix_pipelines.live.bybit_tickers import Network, TickerFeed
from helix_pipelines.live.coinglass_ws import DEFAULT_URL, LiquidationFeed
from helix_pipelines.live.event_writer import EventWriter, LatencyReservoir
from helix_pipelines.live.prices import PriceBook
from helix_pipelines.services.live_radar import LiveRadar
from helix_pipelines.services.planner import (
    CycleReport,
    execute_plan,
    next_plan,
    plan_loop,
    plan_rows,
)
from helix_pipelines.services.settings import Settings
from helix_pipelines.services.universe import resolve_universe
from helix_pipelines.warehouse import Warehouse

log = logging.getLogger(__name__)

# The sandbox and replay cost nothing upstream: plan for the limit the real job targets.
LOCAL_SOURCE_LIMIT = 1200


@dataclass(frozen=True)
class LiveOptions:
    planner: PlannerParams = field(default_factory=PlannerParams)
    radar_params: RadarParams = field(default_factory=RadarParams)
    limit_per_minute: int | None = None  # None: the key's limit as CoinGlass reports it
    tickers: bool = True
    network: Network = "mainnet"
    bybit_ws_url: str | None = None  # None: the network's public linear stream
    ticker_silence_seconds: float = 10.0
    liquidations: bool = True
    liquidation_ws_url: str = DEFAULT_URL
    realized_window: timedelta = timedelta(hours=1)
    realized_refresh_seconds: float = 5.0
    price_max_age: timedelta = timedelta(seconds=30)
    price_publish_seconds: float = 1.0
    radar_min_interval: float = 0.1
    radar_store_seconds: float = 300.0
    max_cycles: int | None = None  # stop after this many planning cycles (None: until stopped)
    shutdown_seconds: float = 30.0
    status_path: Path | None = None  # where the status file goes (the container's healthcheck)
    status_seconds: float = 15.0


@dataclass
class LiveStats:
    """What the service has done, for its log lines, the CLI summary and the benchmarks."""

    cycles: int = 0
    requests_planned: int = 0
    fetch_failures: int = 0
    rankings: int = 0
    rankings_stored: int = 0
    radar_latency: LatencyReservoir = field(default_factory=LatencyReservoir)
    last_cycle: CycleReport | None = None
    last_radar: list[RadarEntry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _stop_on_failure(task: asyncio.Task[None], stop: asyncio.Event) -> None:
    """A part that died takes the service down (its error is raised by `run`): a planner or a
    radar that silently stopped would leave a process that looks alive and does nothing."""
    if not task.cancelled() and task.exception() is not None:
        log.error("live: %s failed: %r; stopping", task.get_name(), task.exception())
        stop.set()


class LiveService:
    def __init__(
        self,
        settings: Settings,
        warehouse: Warehouse,
        archive: ParquetArchive,
        quarantine: QuarantineStore,
        options: LiveOptions | None = None,
        *,
        radar_publisher: RadarPublisher | None = None,
        live_prices: LivePrices | None = None,
        ticker_feed_factory: Callable[[PriceBook, list[str]], TickerFeed] | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings
        self.warehouse = warehouse
        self.archive = archive
        self.quarantine = quarantine
        self.options = options or LiveOptions()
        self.radar_publisher = radar_publisher
        self.live_prices = live_prices
        self._ticker_feed_factory = ticker_feed_factory
        self.clock = clock
        self.book = PriceBook()
        self.radar = LiveRadar(
            warehouse,
            radar_params=self.options.radar_params,
            price_max_age=self.options.price_max_age,
        )
        self.stats = LiveStats()
        self.ticker_feed: TickerFeed | None = None
        self.liquidation_feed: LiquidationFeed | None = None
        self.writer: EventWriter | None = None
        self._dirty = asyncio.Event()
        self._moved_since: float | None = None  # monotonic time of the oldest unranked move
        self._realized: dict[str, tuple[float, int]] | None = None
        self._realized_at = float("-inf")
        self._stored_at = float("-inf")
        self._redis_down = False
        self._prices_off: str | None = None

    # -- the whole service ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> LiveStats:
        """Run every part until `stop` is set (or `max_cycles` planning cycles have run)."""
        source = open_source(self.settings.source)
        # First, so a healthcheck sees the process alive while the first reload (minutes for
        # the whole universe at real sizes) runs.
        status = asyncio.create_task(self._write_status(stop), name="status")
        try:
            await self._ensure_universe(source)
            loaded = await asyncio.to_thread(self.radar.reload, self.clock())
            log.info("live radar: inputs for %d symbols", loaded)
            self._start_tickers()
            feeds_stop = asyncio.Event()
            planner = asyncio.create_task(self._plan(source, stop), name="planner")
            radar = asyncio.create_task(self._rank_loop(stop), name="radar")
            feeds = self._liquidation_tasks(feeds_stop)
            prices = asyncio.create_task(self._publish_prices(stop), name="prices")
            for task in (planner, radar, prices, *feeds):
                task.add_done_callback(lambda done: _stop_on_failure(done, stop))
            await stop.wait()
            log.info("live: stopping")
            feeds_stop.set()
            feed_results = await asyncio.gather(*feeds, return_exceptions=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(planner), self.options.shutdown_seconds)
            for task in (planner, radar, prices, status):
                task.cancel()
            results = await asyncio.gather(planner, radar, prices, status, return_exceptions=True)
            for result in [*feed_results, *results]:
                if isinstance(result, Exception):
                    raise result
        finally:
            status.cancel()
            if self.ticker_feed is not None:
                await asyncio.to_thread(self.ticker_feed.stop)
            await source.aclose()
            self._write_status_once()  # the file says how the run ended, not 15 s before
        return self.stats

    async def _ensure_universe(self, source: HeatmapSource) -> None:
        if self.warehouse.heatmaps.load_universe():
            return
        log.info("no universe stored: resolving it (as `helix universe` would)")
        resolved = await resolve_universe(source, self.settings.universe)
        self.warehouse.heatmaps.replace_universe(resolved.members)

    # -- prices --------------------------------------------------------------------------------

    def _start_tickers(self) -> None:
        venue_symbols = sorted({venue for venue, _ in self.radar.venue.values()})
        if not self.options.tickers:
            self._prices_off = "--no-tickers"
            self._note("live prices off (--no-tickers): the radar ranks at heatmap closes")
            return
        if not venue_symbols:
            self._prices_off = "the universe names no Bybit instruments"
            self._note(
                "live prices off: the universe names no Bybit instruments (the sandbox and list "
                "mode do not); the radar ranks at heatmap closes"
            )
            return
        loop = asyncio.get_running_loop()

        def moved(tick: PriceTick) -> None:
            loop.call_soon_threadsafe(self._price_moved, time.monotonic())

        self.book.add_listener(moved)
        factory = self._ticker_feed_factory or self._default_ticker_feed
        self.ticker_feed = factory(self.book, venue_symbols).start()

    def _default_ticker_feed(self, book: PriceBook, symbols: list[str]) -> TickerFeed:
        return TickerFeed(
            book,
            symbols,
            network=self.options.network,
            ws_url=self.options.bybit_ws_url,
            silence_seconds=self.options.ticker_silence_seconds,
        )

    def _price_moved(self, at: float) -> None:
        if self._moved_since is None:
            self._moved_since = at
        self._dirty.set()

    async def _publish_prices(self, stop: asyncio.Event) -> None:
        """Every `price_publish_seconds`, the coins whose price moved, to Redis."""
        if self.live_prices is None or self.ticker_feed is None:
            return
        written: dict[str, PriceTick] = {}
        while not stop.is_set():
            await asyncio.sleep(self.options.price_publish_seconds)
            changed = {}
            for coin, (venue_symbol, _) in self.radar.venue.items():
                tick = self.book.tick(venue_symbol)
                if tick is not None and written.get(coin) != tick:
                    changed[coin] = tick
            prices = {
                coin: (tick.price / self.radar.venue[coin][1], tick.at, tick.origin)
                for coin, tick in changed.items()
            }
            if prices and await self._to_redis("live prices", self.live_prices.write, prices):
                written |= changed

    # -- liquidations --------------------------------------------------------------------------

    def _liquidation_tasks(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        api_key = self.settings.source.api_key
        if not self.options.liquidations:
            self._note("realized liquidations off (--no-liquidations)")
            return []
        if not api_key:
            self._note("realized liquidations off: the CoinGlass websocket needs COINGLASS_API_KEY")
            return []
        self.liquidation_feed = LiquidationFeed(api_key, url=self.options.liquidation_ws_url)
        self.writer = EventWriter(self.warehouse.live.add_liquidation_events, clock=self.clock)
        self._realized = {}
        writer_stop = asyncio.Event()
        feed = self.liquidation_feed

        async def consume() -> None:
            try:
                await feed.run(self.writer.put_many, stop)  # type: ignore[union-attr]
            finally:
                writer_stop.set()  # everything the feed handed over is queued: flush it

        return [
            asyncio.create_task(consume(), name="liquidation-feed"),
            asyncio.create_task(self.writer.run(writer_stop), name="liquidation-writer"),
        ]

    async def _realized_now(self, now: datetime) -> dict[str, tuple[float, int]] | None:
        """Realized liquidations per coin over the window, re-read every few seconds."""
        if self._realized is None:
            return None
        if time.monotonic() - self._realized_at >= self.options.realized_refresh_seconds:
            self._realized = await asyncio.to_thread(
                self.warehouse.live.realized_by_coin, now - self.options.realized_window, now
            )
            self._realized_at = time.monotonic()
        return self._realized

    # -- the planner ---------------------------------------------------------------------------

    async def _plan(self, source: HeatmapSource, stop: asyncio.Event) -> None:
        pacer = Pacer(1.0)
        failed: dict[FetchKey, datetime] = {}  # when each key's last fetch failed

        def plan_now() -> FetchPlan:
            limit = (
                self.options.limit_per_minute
                or source.stats.limit_per_minute
                or (
                    self.settings.source.rate_limit_per_minute
                    if source.kind == "coinglass"
                    else LOCAL_SOURCE_LIMIT
                )
            )
            current = next_plan(
                self.warehouse,
                limit_per_minute=limit,
                now=self.clock(),
                params=self.options.planner,
            )
            for note in current.notes:
                log.warning("planner: %s", note)
            self.warehouse.heatmaps.fetch_log.save_plan(plan_rows(current))
            return current

        async def plan() -> FetchPlan:
            # Reads the whole fetch log (10k rows): off the loop the feeds and the radar run on.
            return await asyncio.to_thread(plan_now)

        async def execute(current: FetchPlan) -> None:
            report = await execute_plan(
                current,
                source,
                pacer,
                self.warehouse,
                self.archive,
                self.quarantine,
                clock=self.clock,
            )
            failed.update(dict.fromkeys(report.failed_keys, current.planned_at))
            changed = report.changed_symbols
            if changed:
                await asyncio.to_thread(self.radar.reload, self.clock(), changed)
                self._dirty.set()
            self.stats.cycles += 1
            self.stats.requests_planned += len(current.keys)
            self.stats.fetch_failures += report.failed
            self.stats.last_cycle = report
            log.info(
                "cycle %d: %d requests (hot %d) in %.1f s, %d failed, %d symbols changed; "
                "radar p95 %.3f s",
                self.stats.cycles,
                len(current.keys),
                current.tiers[0].planned,
                report.seconds,
                report.failed,
                len(changed),
                self.stats.radar_latency.percentile(0.95) or 0.0,
            )
            if self.options.max_cycles is not None and self.stats.cycles >= self.options.max_cycles:
                stop.set()

        await plan_loop(plan, execute, stop)

    # -- the radar -----------------------------------------------------------------------------

    async def _rank_loop(self, stop: asyncio.Event) -> None:
        """Re-rank whenever a price or the inputs moved, at most every `radar_min_interval`, and
        at least every `realized_refresh_seconds` (new realized liquidations, data ages)."""
        self._dirty.set()  # the first ranking from the heatmaps alone
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), self.options.realized_refresh_seconds)
            self._dirty.clear()
            began = time.monotonic()
            moved_since, self._moved_since = self._moved_since, None
            now = self.clock()
            entries = self.radar.rank(self.book.tick, await self._realized_now(now), now)
            if self.radar_publisher is not None and entries:
                await self._to_redis("the radar", self.radar_publisher.publish, entries)
            if moved_since is not None:
                self.stats.radar_latency.add(time.monotonic() - moved_since)
            self.stats.rankings += 1
            self.stats.last_radar = entries
            if entries and time.monotonic() - self._stored_at >= self.options.radar_store_seconds:
                self._stored_at = time.monotonic()
                frame = pl.DataFrame([e.as_row() for e in entries], schema=RADAR_SCHEMA)
                await asyncio.to_thread(self.warehouse.analytics.save_radar, frame)
                self.stats.rankings_stored += 1
            # The rest of the interval, not all of it: a ranking that took longer goes again now.
            await asyncio.sleep(
                max(0.0, self.options.radar_min_interval - (time.monotonic() - began))
            )

    # -- status --------------------------------------------------------------------------------

    def status(self) -> dict[str, object]:
        """What an operator (or a healthcheck) wants to know, JSON-ready."""
        cycle = self.stats.last_cycle
        latency = self.stats.radar_latency.summary()
        tickers = self.ticker_feed.stats() if self.ticker_feed is not None else None
        feed = self.liquidation_feed.stats if self.liquidation_feed is not None else None
        return {
            "written_at": self.clock().isoformat(),
            "cycles": self.stats.cycles,
            "last_cycle_requests": len(cycle.plan.keys) if cycle else 0,
            "last_cycle_failed": cycle.failed if cycle else 0,
            "hot_coins": list(cycle.plan.hot_coins) if cycle else [],
            "radar_rankings": self.stats.rankings,
            "price_to_radar_p95_seconds": latency.p95,
            "prices": tickers.status if tickers else "off",
            "prices_reason": tickers.reason if tickers else self._prices_off,
            "liquidations_connected": feed.connected if feed else None,
            "liquidation_events": feed.events if feed else 0,
            "liquidation_malformed": feed.malformed if feed else 0,
            "liquidation_last_error": feed.last_error if feed else None,
            "liquidations_stored": self.writer.stats.inserted if self.writer else 0,
            "notes": self.stats.notes,
        }

    async def _write_status(self, stop: asyncio.Event) -> None:
        path = self.options.status_path
        if path is None:
            return
        while not stop.is_set():
            self._write_status_once()
            await asyncio.sleep(self.options.status_seconds)

    def _write_status_once(self) -> None:
        path = self.options.status_path
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.status(), default=str, indent=1))
        temporary.replace(path)  # a reader never sees half a file

    async def _to_redis(self, what: str, write: Callable[[Any], object], payload: Any) -> bool:
        """One write to Redis off the loop; a Redis that is down costs a warning per outage, not
        the service (the radar and the planner go on; the next write tries again)."""
        try:
            await asyncio.to_thread(write, payload)
        except (RedisError, OSError) as exc:
            if not self._redis_down:
                log.warning(
                    "live: cannot publish %s to Redis (%s); retrying", what, type(exc).__name__
                )
            self._redis_down = True
            return False
        if self._redis_down:
            log.info("live: Redis answers again")
        self._redis_down = False
        return True

    def _note(self, message: str) -> None:
        log.warning("live: %s", message)
        self.stats.notes.append(message)
