"""`helix demo`: the whole pipeline on whatever the settings select (the sandbox by default): the
universe, every model x range, then analytics (with the radar) and the executor.

It runs Helix's own Dagster jobs in process, recorded in the local Dagster instance
(`dagster_runs`), so `make dev` afterwards shows every materialization, preview and check
result. One line per partition, read back from what the run recorded; a partition whose
blocking check failed is marked, and the demo then exits non-zero.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from helix_pipelines.cli.dagster_runs import LocalRuns, RunOutcome, describe, local_instance
from helix_pipelines.cli.radar import format_radar
from helix_pipelines.clock import utc_now
from helix_pipelines.contracts.radar import RadarEntry
from helix_pipelines.contracts.vocabulary import MODELS, RANGES
from helix_pipelines.defs.analytics import CLUSTERS, SIGNALS, ZONES
from helix_pipelines.defs.execution import DECISIONS
from helix_pipelines.defs.heatmap_ingest import (
    BLOCKING_CHECKS,
    CHECK_SPECS,
    LOADED,
    NORMALIZED,
    PAYLOADS,
)
from helix_pipelines.defs.universe import UNIVERSE
from helix_pipelines.services.settings import Settings, open_configured

COLUMNS = ("model", "range", "new", "unchanged", "quarantined", "unavailable", "failed", "cells",
           "levels", "coverage", "seconds", "checks")  # fmt: skip


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
    # The runs load Helix's definitions as the code location does, from the environment: the
    # command's options become environment settings, so the runs and this process agree.
    if args.data_dir:
        os.environ["HELIX_DATA_DIR"] = args.data_dir
    if args.symbols:
        os.environ["HELIX_UNIVERSE_MODE"] = "list"
        os.environ["HELIX_UNIVERSE_SYMBOLS"] = args.symbols
    settings = Settings.from_env()
    print(f"helix demo: source = {settings.source.describe()}")
    instance = local_instance()
    print(f"dagster instance: {describe(instance)} — `make dev` shows these runs")
    runs = LocalRuns(instance)
    try:
        return _run(runs, settings, models, ranges, analytics=not args.no_analytics)
    finally:
        print(f"recorded {len(runs.runs)} runs: " + ", ".join(r.job for r in runs.runs))


def _run(
    runs: LocalRuns, settings: Settings, models: list[int], ranges: list[str], *, analytics: bool
) -> int:
    started = time.perf_counter()
    universe = runs.run("symbol_universe_job")
    if not universe.success:
        print(f"universe: FAILED: {universe.error}")
        return 1
    members = universe.materializations(UNIVERSE)[-1]
    print(f"universe: {members['members']} symbols ({members['symbols']})")
    keys = ",".join(f"{m}/{r}" for m in models for r in ranges)
    table = PartitionTable()
    print(" ".join(f"{c:>11}" for c in COLUMNS))
    heatmaps = runs.run(
        "heatmap_keys_job",
        config={"ops": {"ingest_heatmap_keys": {"config": {"keys": keys}}}},
        on_event=table.add,
    )
    print(
        f"\ndone in {time.perf_counter() - started:.1f}s: {len(models) * len(ranges)} model x "
        f"range partitions, {table.total('snapshots_new')} new snapshots, "
        f"{table.total('snapshots_unchanged')} unchanged, {table.total('quarantined')} "
        f"quarantined, {table.total('unavailable') + table.total('skipped_unavailable')} without "
        f"data at CoinGlass, {table.total('failed_requests')} failed, "
        f"{table.total('cells_ingested'):,} cells archived as "
        f"{table.total('price_levels_added'):,} price-level rows"
    )
    print(f"warehouse: {table.last('warehouse')}   archive (every grid, Parquet): "
          f"{settings.storage.archive}")  # fmt: skip
    problems = table.problems(len(models) * len(ranges))
    if analytics and not problems and heatmaps.success:
        _analytics_and_executor(runs, settings)
    elif analytics:
        print("analytics: skipped (a partition failed or a blocking check did not pass)")
    if settings.source.kind == "sandbox":
        print(
            "note: SANDBOX data — synthetic heatmaps, not market data. "
            "Set COINGLASS_API_KEY for real data."
        )
    print(
        "next: `make dev` opens the Dagster UI on this instance; "
        "`helix status` summarizes the warehouse."
    )
    if problems or not heatmaps.success:
        for problem in problems or [heatmaps.error or "the heatmap run failed"]:
            print(f"FAILED: {problem}")
        return 1
    return 0


class PartitionTable:
    """The demo's table, one line per partition, printed as the run records each: its
    materializations' metadata, then its check results."""

    def __init__(self) -> None:
        self.metadata: dict[str, dict[str, Any]] = {}
        self.checks: dict[str, dict[str, bool]] = {}
        self.errors: list[str] = []

    def add(self, entry: dg.EventLogEntry) -> None:
        event = entry.dagster_event
        if event is None:
            self.errors.append(entry.user_message)
            print(f"{'':>11} {'':>11}  FAILED: {entry.user_message}")
            return
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.step_materialization_data.materialization
            if materialization.asset_key in (PAYLOADS, NORMALIZED, LOADED):
                values = {k: v.value for k, v in materialization.metadata.items()}
                self.metadata.setdefault(str(materialization.partition), {}).update(values)
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.asset_check_evaluation_data
            partition = str(evaluation.partition)
            self.checks.setdefault(partition, {})[evaluation.check_name] = evaluation.passed
            if len(self.checks[partition]) == len(CHECK_SPECS):
                print(" ".join(f"{v!s:>11}" for v in self.row(partition)))

    def row(self, partition: str) -> tuple[object, ...]:
        m = self.metadata.get(partition, {})
        model, range_ = partition.split("|")
        return (
            model,
            range_,
            m.get("snapshots_new", 0),
            m.get("snapshots_unchanged", 0),
            m.get("quarantined", 0),
            m.get("unavailable", 0) + m.get("skipped_unavailable", 0),
            m.get("failed_requests", 0),
            m.get("cells_ingested", 0),
            m.get("price_levels_added", 0),
            f"{m.get('coverage_pct', 0):g}%",
            f"{m.get('duration_seconds', 0):.2f}",
            _checks_mark(self.checks[partition]),
        )

    def total(self, name: str) -> int:
        return sum(int(m.get(name, 0)) for m in self.metadata.values())

    def last(self, name: str) -> object:
        return next((m[name] for m in reversed(self.metadata.values()) if name in m), "-")

    def problems(self, expected: int) -> list[str]:
        failed = [
            f"{partition}: blocking check {name} did not pass"
            for partition, checks in self.checks.items()
            for name, passed in checks.items()
            if name in BLOCKING_CHECKS and not passed
        ]
        missing = expected - len(self.checks)
        return failed + self.errors + ([f"{missing} partitions not ingested"] if missing else [])


def _checks_mark(checks: Mapping[str, bool]) -> str:
    failed = [name for name, passed in checks.items() if not passed]
    if not failed:
        return "ok"
    blocking = [name for name in failed if name in BLOCKING_CHECKS]
    return "FAILED" if blocking else "warn"


def _analytics_and_executor(runs: LocalRuns, settings: Settings) -> None:
    """Clusters, zones, the radar and signals from what was just ingested, then the executor."""
    analytics = runs.run("analytics_job")
    if not analytics.success:
        print(f"analytics: FAILED: {analytics.error}")
        return
    clusters = _latest(analytics, CLUSTERS)
    if clusters is None:
        print("analytics: nothing to analyze yet")
        return
    zones, signals = _latest(analytics, ZONES) or {}, _latest(analytics, SIGNALS) or {}
    print(
        f"analytics: {clusters['clusters']} clusters, {zones.get('zones', 0)} consensus zones, "
        f"{signals.get('signals', 0)} trade signals ({signals.get('new_signals', 0)} new, "
        f"{signals.get('published', 0)} published to Redis)"
    )
    warehouse = open_configured(settings)
    try:
        radar = [RadarEntry(**r) for r in warehouse.analytics.latest_radar().iter_rows(named=True)]
    finally:
        warehouse.close()
    print(format_radar(radar, top=10, show_excluded=True, now=utc_now()))
    executor = runs.run("executor_job")
    decided = _latest(executor, DECISIONS)
    if not executor.success or decided is None:
        print(f"executor: FAILED: {executor.error}")
        return
    counts = decided["counts"] or "no decision"
    print(f"executor ({decided['mode']}): {decided['signals']} new signals -> {counts}")
    book = ", ".join(f"{symbol} {line}" for symbol, line in decided["positions"].items())
    print(f"positions after the run: {book or 'none'}")


def _latest(outcome: RunOutcome, key: dg.AssetKey) -> Mapping[str, Any] | None:
    found = outcome.materializations(key)
    return found[-1] if found else None
