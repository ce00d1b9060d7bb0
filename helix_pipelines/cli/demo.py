"""`helix demo`: the whole pipeline on whatever the settings select (the sandbox by default):
the universe, every model x range, then analytics (with the radar) and the executor, through the same services
the assets run, with one line per partition."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import replace

from helix_pipelines.bus.publisher import SignalPublisher
from helix_pipelines.bus.radar import RadarPublisher
from helix_pipelines.cli.radar import format_radar
from helix_pipelines.clock import utc_now
from helix_pipelines.coinglass.settings import open_source
from helix_pipelines.contracts.heatmaps import UniverseMember
from helix_pipelines.contracts.vocabulary import MODELS, RANGES
from helix_pipelines.heatmaps.archive import ParquetArchive
from helix_pipelines.heatmaps.quarantine import QuarantineStore
from helix_pipelines.secrets import redact, redacted_dsn
from helix_pipelines.services.executor import build_executor, run_pending
from helix_pipelines.services.ingest import IngestReport, run_ingest
from helix_pipelines.services.outcomes import refresh_outcomes
from helix_pipelines.services.settings import Settings, open_configured
from helix_pipelines.services.signals import refresh_signals
from helix_pipelines.services.universe import resolve_universe
from helix_pipelines.warehouse import Warehouse

COLUMNS = (
    "model",
    "range",
    "new",
    "unchanged",
    "quarantined",
    "unavailable",
    "failed",
    "cells",
    "levels",
    "coverage",
    "seconds",
)
OUTCOME_HORIZON_HOURS = 24.0


def choose(value: str | None, allowed: Sequence[str], what: str) -> list[str]:
    if not value:
        return list(allowed)
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in allowed]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (choose from {', '.join(allowed)})")
    return chosen


def run(args: argparse.Namespace, settings: Settings) -> int:
    models = [int(m) for m in choose(args.models, [str(m) for m in MODELS], "models")]
    ranges = choose(args.ranges, RANGES, "ranges")
    if args.symbols:
        symbols = tuple(s for s in args.symbols.split(",") if s)
        universe = replace(settings.universe, mode="list", symbols=symbols)
        settings = replace(settings, universe=universe)
    print(f"helix demo: source = {settings.source.describe()}")
    warehouse = open_configured(settings)
    try:
        return _run(settings, warehouse, models, ranges, analytics=not args.no_analytics)
    finally:
        warehouse.close()


def _run(
    settings: Settings,
    warehouse: Warehouse,
    models: list[int],
    ranges: list[str],
    *,
    analytics: bool,
) -> int:
    started = time.perf_counter()
    members = asyncio.run(_universe(settings))
    warehouse.heatmaps.replace_universe(members)
    shown = ", ".join(m.symbol for m in members[:20]) + (", ..." if len(members) > 20 else "")
    print(f"universe: {len(members)} symbols ({shown})")
    archive = ParquetArchive(settings.storage.archive)
    quarantine = QuarantineStore(settings.storage.quarantine)
    print(" ".join(f"{c:>11}" for c in COLUMNS))
    reports: list[IngestReport] = []
    failures: list[str] = []
    for model in models:
        for range_ in ranges:
            try:
                report = run_ingest(
                    settings.source, warehouse.heatmaps, archive, quarantine, members, model, range_
                )
            except Exception as exc:
                failures.append(f"m{model} {range_}")
                print(
                    f"{model:>11} {range_:>11}  FAILED: {type(exc).__name__}: {_shown(exc, settings)}"
                )
                continue
            reports.append(report)
            print(" ".join(f"{v!s:>11}" for v in _row(report)))
    total_cells = sum(r.stored.cells_ingested for r in reports)
    total_levels = sum(r.stored.levels_added for r in reports)
    print(
        f"\ndone in {time.perf_counter() - started:.1f}s: {len(models) * len(ranges)} model x "
        f"range partitions, {sum(r.stored.snapshots_added for r in reports)} new snapshots, "
        f"{sum(r.unchanged for r in reports)} unchanged, "
        f"{sum(len(r.quarantined) for r in reports)} quarantined, "
        f"{sum(len(r.unavailable) + len(r.skipped_unavailable) for r in reports)} without data "
        f"at CoinGlass, {sum(len(r.failed) for r in reports)} failed, {total_cells:,} cells archived as "
        f"{total_levels:,} price-level rows"
    )
    print(
        f"warehouse: {warehouse.description} (cells kept for: "
        f"{warehouse.heatmaps.cells.describe()})   archive (every grid, Parquet): {archive.root}"
    )
    if analytics and not failures:
        _analytics_and_executor(settings, warehouse)
    if settings.source.kind == "sandbox":
        print(
            "note: SANDBOX data — synthetic heatmaps, not market data. "
            "Set COINGLASS_API_KEY for real data."
        )
    print(
        "next: `make dev` opens the Dagster UI with this pipeline; "
        "`helix status` summarizes the warehouse."
    )
    if failures:
        print(f"failed partitions: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


async def _universe(settings: Settings) -> list[UniverseMember]:
    source = open_source(settings.source)
    try:
        return (await resolve_universe(source, settings.universe)).members
    finally:
        await source.aclose()


def _row(report: IngestReport) -> tuple[object, ...]:
    return (
        report.model,
        report.range,
        report.stored.snapshots_added,
        report.unchanged,
        len(report.quarantined),
        len(report.unavailable) + len(report.skipped_unavailable),
        len(report.failed),
        report.stored.cells_ingested,
        report.stored.levels_added,
        f"{report.coverage:.0%}",
        f"{report.duration_seconds:.2f}",
    )


def _analytics_and_executor(settings: Settings, warehouse: Warehouse) -> None:
    """Clusters, zones and signals from what was just ingested, then the executor on them."""
    publisher, radar_publisher = (
        (
            SignalPublisher(settings.redis_url, key_prefix=settings.bus_prefix),
            RadarPublisher(settings.redis_url, key_prefix=settings.bus_prefix),
        )
        if settings.redis_url
        else (None, None)
    )
    try:
        report = refresh_signals(
            warehouse,
            now=utc_now(),
            limits=settings.risk,
            publisher=publisher,
            radar_publisher=radar_publisher,
        )
    finally:
        for bus in (publisher, radar_publisher):
            if bus is not None:
                bus.close()
    if report is None:
        print("analytics: nothing to analyze yet")
        return
    refresh_outcomes(warehouse, horizon_hours=OUTCOME_HORIZON_HOURS, now=utc_now())
    result = report.result
    print(
        f"analytics: {result.clusters.height} clusters, {result.zones.height} consensus zones, "
        f"{len(report.tradable)} trade signals ({len(report.new)} new, "
        f"{report.published or 0} published to Redis)"
    )
    print(format_radar(result.radar, top=10, show_excluded=True, now=utc_now()))
    run = run_pending(
        build_executor(settings, warehouse),
        warehouse,
        default_leverage=settings.executor.default_leverage,
    )
    print(
        f"executor ({run.mode}): {len(run.decisions)} new signals -> {run.counts or 'no decision'}"
    )
    book = ", ".join(f"{symbol} {line}" for symbol, line in run.positions.items())
    print(f"positions after the run: {book or 'none'}")


def _shown(exc: Exception, settings: Settings) -> str:
    """The error's message without a secret the settings hold (a key or a DSN's password)."""
    text = redact(str(exc), settings.source.api_key)
    if settings.storage.pg_dsn:
        text = text.replace(settings.storage.pg_dsn, redacted_dsn(settings.storage.pg_dsn))
    return text
