"""The budget planner's service path: read what the warehouse knows, plan the next cycle, fetch
it through the one ingest path, and keep cycling until told to stop.

Grain: one plan a cycle. State lives in the warehouse (the fetch log, the latest radar, the
universe), so a restarted `helix live` carries on where it stopped and Dagster runs, the CLI
and the planner see one truth. Each (model, range) of a plan is one `ingest_heatmaps` call over
the plan's members of that key, in plan order (the hot list first), all through one source so
they share its rate limiter (and, with `HELIX_REDIS_URL`, every other process's).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from helix_pipelines.clock import utc_now
from helix_pipelines.coinglass.pacing import PacedSource, Pacer
from helix_pipelines.coinglass.planner import (
    FetchKey,
    FetchPlan,
    KeyState,
    PlannerParams,
    plan_fetches,
)
from helix_pipelines.coinglass.source import HeatmapSource
from helix_pipelines.contracts.heatmaps import UniverseMember
from helix_pipelines.heatmaps.archive import ParquetArchive
from helix_pipelines.heatmaps.quarantine import QuarantineStore
from helix_pipelines.services.ingest import ingest_heatmaps
from helix_pipelines.services.ingest_report import IngestOptions, IngestReport
from helix_pipelines.warehouse import Warehouse

log = logging.getLogger(__name__)

INGESTS_IN_FLIGHT = 2


def key_states(warehouse: Warehouse) -> dict[FetchKey, KeyState]:
    """The fetch log as the planner reads it (one row per key ever fetched)."""
    return {
        FetchKey(r["scope"], r["exchange"], r["symbol"], r["model"], r["range"]): KeyState(
            r["last_fetched_at"], r["change_rate"], r["last_status"] == "unavailable"
        )
        for r in warehouse.heatmaps.fetch_log.states().iter_rows(named=True)
    }


def radar_ranking(warehouse: Warehouse) -> list[str]:
    """Symbols of the newest radar by rank (empty before the first radar)."""
    radar = warehouse.analytics.latest_radar()
    return radar.filter(radar["rank"].is_not_null()).sort("rank")["symbol"].to_list()


def next_plan(
    warehouse: Warehouse,
    *,
    limit_per_minute: int,
    now: datetime,
    params: PlannerParams | None = None,
    ranking: list[str] | None = None,
    failed: Mapping[FetchKey, datetime] | None = None,
) -> FetchPlan:
    """The next cycle's plan from the warehouse's state (raises when no universe is stored);
    `ranking` (the live radar's order) instead of the newest stored radar when given. A key in
    `failed` (when its last fetch failed) counts as fetched then: it waits its tier's interval
    like any fresh key instead of being planned every cycle as "never fetched"."""
    states = key_states(warehouse)
    for key, at in (failed or {}).items():
        known = states.get(key)
        if known is None or known.last_fetched_at < at:
            states[key] = KeyState(at, known.change_rate if known else 1.0)
    members = warehouse.heatmaps.load_universe()
    if not members:
        raise ValueError("symbol_universe is empty: run `helix universe` or materialize it first")
    return plan_fetches(
        members,
        radar_ranking(warehouse) if ranking is None else ranking,
        states,
        limit_per_minute=limit_per_minute,
        now=now,
        params=params,
    )


def plan_rows(plan: FetchPlan) -> list[dict[str, object]]:
    """The plan's `fetch_plan_tiers` rows."""
    return [
        tier.as_row()
        | {
            "planned_at": plan.planned_at,
            "limit_per_minute": plan.limit_per_minute,
            "budget": plan.budget,
        }
        for tier in plan.tiers
    ]


@dataclass
class CycleReport:
    """What one executed plan did."""

    plan: FetchPlan
    reports: list[IngestReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def changed_symbols(self) -> set[str]:
        """Symbols with a new loaded snapshot this cycle (their analytics need refreshing)."""
        return set().union(*(r.changed_symbols for r in self.reports))

    @property
    def failed(self) -> int:
        return sum(len(r.failed) for r in self.reports)

    @property
    def failed_keys(self) -> list[FetchKey]:
        return [
            FetchKey(q.scope, q.exchange, q.symbol, q.model, q.range)
            for r in self.reports
            for q in r.failed_requests
        ]


async def execute_plan(
    plan: FetchPlan,
    source: HeatmapSource,
    pacer: Pacer,
    warehouse: Warehouse,
    archive: ParquetArchive,
    quarantine: QuarantineStore,
    options: IngestOptions | None = None,
    *,
    clock: Callable[[], datetime] = utc_now,
) -> CycleReport:
    """Fetch and store a plan: one ingest per (model, range), hot keys first, paced so the
    cycle's requests spread over the cycle."""
    started = time.perf_counter()
    pacer.interval_seconds = plan.cycle_seconds / max(1, plan.budget)
    paced = PacedSource(source, pacer)
    members = {(m.scope, m.exchange, m.symbol): m for m in warehouse.heatmaps.load_universe()}
    hot = set(plan.hot_coins)
    # The hot list's ingests come first and alone, so its requests are paced out first.
    groups: dict[tuple[bool, int, str], list[UniverseMember]] = {}
    for key in plan.keys:
        member = members.get((key.scope, key.exchange, key.symbol))
        if member is not None:
            is_hot = key.symbol in hot and key.range in plan.hot_ranges
            groups.setdefault((not is_hot, key.model, key.range), []).append(member)
    # The planner already skipped what CoinGlass has no data for, and re-probes it on purpose.
    options = options or IngestOptions(skip_unavailable_for=None)
    report = CycleReport(plan)
    # Two at a time: a slow (model, range) does not hold back the next, and memory stays within
    # two ingests' in-flight budgets (each bounds its own) instead of one per group.
    slots = asyncio.Semaphore(INGESTS_IN_FLIGHT)

    async def ingest(model: int, range_: str, group: list[UniverseMember]) -> IngestReport:
        async with slots:
            return await ingest_heatmaps(
                paced,
                warehouse.heatmaps,
                archive,
                quarantine,
                group,
                model,
                range_,
                options,
                clock=clock,
            )

    report.reports = list(
        await asyncio.gather(*(ingest(m, r, group) for (_, m, r), group in groups.items()))
    )
    report.seconds = time.perf_counter() - started
    return report


async def plan_loop(
    plan: Callable[[], FetchPlan | Awaitable[FetchPlan]],
    execute: Callable[[FetchPlan], Awaitable[object]],
    stop: asyncio.Event,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    on_plan: Callable[[FetchPlan], None] | None = None,
) -> int:
    """Plan, execute, wait for the next cycle; until `stop` is set. Returns the cycles run.

    A cycle starts `cycle_seconds` after the previous one started, or at once when executing
    took longer. `sleep` defaults to waiting on `stop` (so a stop wakes the loop at once).
    """
    cycles = 0
    while not stop.is_set():
        started = clock()
        planned = plan()
        current = await planned if inspect.isawaitable(planned) else planned
        if on_plan is not None:
            on_plan(current)
        await execute(current)
        cycles += 1
        remaining = current.cycle_seconds - (clock() - started)
        if remaining > 0:
            if sleep is not None:
                await sleep(remaining)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), remaining)
    return cycles
