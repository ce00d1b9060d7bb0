"""Tiered heatmap schedules: short ranges often, long ranges rarely, within the request budget.

`PLANNED_UNIVERSE_SIZE` and `REQUEST_BUDGET_PER_MINUTE` size the tiers (see
`helix_pipelines.coinglass.budget`); at run time the rate limiter still enforces the plan's real
limit, so an underestimate slows runs down instead of drawing 429s.
"""

from collections.abc import Iterator

import dagster as dg

from helix_pipelines.coinglass.budget import Tier, plan_tiers
from helix_pipelines.contracts.units import duration_text
from helix_pipelines.contracts.vocabulary import MODELS
from helix_pipelines.defs.heatmaps import heatmap_ingest_job
from helix_pipelines.defs.partitions import heatmap_partition_key

PLANNED_UNIVERSE_SIZE = 20
REQUEST_BUDGET_PER_MINUTE = 300


def tier_schedule(tier: Tier) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"heatmaps_{tier.name}_schedule",
        cron_schedule=tier.cron,
        job=heatmap_ingest_job,
        execution_timezone="UTC",
        description=f"Ranges {', '.join(tier.ranges)} for models 1-3, every "
        f"{duration_text(tier.interval_minutes * 60)} (one run per model x range).",
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest]:
        tick = (
            context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else ""
        )
        for range_ in tier.ranges:
            for model in MODELS:
                key = heatmap_partition_key(model, range_)
                yield dg.RunRequest(run_key=f"{tick}|{key}", partition_key=key)

    return _schedule


heatmap_schedules = [
    tier_schedule(t) for t in plan_tiers(PLANNED_UNIVERSE_SIZE, REQUEST_BUDGET_PER_MINUTE)
]
