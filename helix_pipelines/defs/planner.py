"""The `heatmap_fetch_plan` asset: what the budget planner would fetch next, and each tier's
expected staleness, shown in the UI (`helix live` runs the plans; see docs/live.md)."""

import dagster as dg

from helix_pipelines.clock import utc_now
from helix_pipelines.coinglass.planner import FetchPlan, PlannerParams
from helix_pipelines.contracts.units import duration_text
from helix_pipelines.defs.resources import CoinGlassResource, WarehouseResource
from helix_pipelines.services.planner import next_plan


class FetchPlanConfig(dg.Config):
    hot_coins: int = 25
    hot_ranges: list[str] = ["12h", "24h"]  # noqa: RUF012 - pydantic copies defaults
    cycle_seconds: float = 50.0
    budget_share: float = 0.95
    # None: the limit CoinGlass reported to `helix live`'s last cycle, else the resource's.
    limit_per_minute: int | None = None

    def params(self) -> PlannerParams:
        return PlannerParams(
            hot_coins=self.hot_coins,
            hot_ranges=tuple(self.hot_ranges),
            cycle_seconds=self.cycle_seconds,
            budget_share=self.budget_share,
        )


def tiers_table(plan: FetchPlan) -> str:
    lines = [
        "| tier | keys | interval (expected staleness) | requests/min | this cycle "
        "| stalest now | never fetched | skipped (no data) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {t.name} | {t.keys} | {duration_text(t.interval_seconds)} | {t.requests_per_minute:.0f} "
        f"| {t.planned} | {duration_text(t.stalest_seconds)} | {t.never_fetched} "
        f"| {t.skipped_unavailable} |"
        for t in plan.tiers
    ]
    return "\n".join(lines)


@dg.asset(group_name="live", kinds={"python"}, deps=["symbol_universe", "liquidation_radar"])
def heatmap_fetch_plan(
    context: dg.AssetExecutionContext,
    config: FetchPlanConfig,
    coinglass: CoinGlassResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    """The next planning cycle from the warehouse's state: the radar's top coins' short ranges
    every cycle, the rest by staleness, within the plan's per-minute limit.

    Read-only: materializing it shows the plan and stores nothing; `helix live` executes plans
    and records each cycle in `fetch_plan_tiers` (the `last live cycle` entry below).
    """
    store = warehouse.get()
    last = store.heatmaps.fetch_log.latest_plan()
    limit = (
        config.limit_per_minute
        or (int(last["limit_per_minute"][0]) if last.height else None)
        or coinglass.settings().rate_limit_per_minute
    )
    plan = next_plan(store, limit_per_minute=limit, now=utc_now(), params=config.params())
    for note in plan.notes:
        context.log.warning(note)
    hot = next(t for t in plan.tiers if t.name == "hot")
    return dg.MaterializeResult(
        metadata={
            "tiers": dg.MetadataValue.md(tiers_table(plan)),
            "hot_coins": dg.MetadataValue.md(", ".join(plan.hot_coins) or "none"),
            "limit_per_minute": limit,
            "budget_per_cycle": plan.budget,
            "cycle_seconds": plan.cycle_seconds,
            "share_of_limit": round(plan.share_of_limit, 3),
            "hot_list_stalest_seconds": hot.stalest_seconds or 0.0,
            "planned_requests": len(plan.keys),
            "last_live_cycle": (
                str(last["planned_at"][0]) if last.height else "helix live has not run yet"
            ),
            "notes": dg.MetadataValue.md("\n".join(f"- {n}" for n in plan.notes) or "none"),
        }
    )
