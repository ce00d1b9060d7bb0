"""Tiered refresh plan: how often each range is fetched so total demand fits the plan's budget.

Short ranges change quickly and are fetched often, long ranges rarely. Each tier costs
`models x ranges x universe size` requests per run; the plan slows every tier down one notch at a
time until the average demand fits the requests-per-minute budget (with headroom left for
backfills and retries).
"""

from __future__ import annotations

from dataclasses import dataclass

from helix_pipelines.contracts.vocabulary import MODELS

# Refresh intervals in minutes that map onto simple cron expressions.
INTERVAL_LADDER: tuple[int, ...] = (5, 10, 15, 30, 60, 120, 180, 360, 720, 1440)


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    ranges: tuple[str, ...]
    interval_minutes: int
    minute_offset: int = 0

    @property
    def cron(self) -> str:
        minutes = self.interval_minutes
        if minutes < 60:
            offset = self.minute_offset % minutes
            # `*/15` reads 'every 15 minutes' in the UI; `0-59/15` read 'minutes 0 through 59'.
            return f"*/{minutes} * * * *" if offset == 0 else f"{offset}-59/{minutes} * * * *"
        hours = minutes // 60
        if hours < 24:
            return f"{self.minute_offset} */{hours} * * *"
        return f"{self.minute_offset} 0 * * *"

    def requests_per_minute(self, universe_size: int, n_models: int = len(MODELS)) -> float:
        return n_models * len(self.ranges) * universe_size / self.interval_minutes


BASE_TIERS: tuple[Tier, ...] = (
    Tier("intraday", ("12h", "24h"), 15, 0),
    Tier("short", ("3d", "7d"), 60, 5),
    Tier("medium", ("30d", "90d"), 360, 10),
    Tier("long", ("180d", "1y"), 1440, 20),
)


def demand_per_minute(tiers: tuple[Tier, ...], universe_size: int) -> float:
    return sum(t.requests_per_minute(universe_size) for t in tiers)


def plan_tiers(
    universe_size: int, budget_per_minute: float, *, headroom: float = 0.5
) -> tuple[Tier, ...]:
    """Slowest-necessary tiers whose demand is at most `headroom` x budget.

    Raises ValueError when even daily refreshes of every range do not fit.
    """
    if universe_size < 1 or budget_per_minute <= 0:
        raise ValueError("universe size and budget must be positive")
    allowed = budget_per_minute * headroom
    tiers = BASE_TIERS
    while demand_per_minute(tiers, universe_size) > allowed:
        if all(t.interval_minutes == INTERVAL_LADDER[-1] for t in tiers):
            raise ValueError(
                f"{universe_size} symbols need {demand_per_minute(tiers, universe_size):.1f} "
                f"requests/min even at daily refreshes; the budget allows {allowed:.1f}"
            )
        tiers = tuple(_slower(t) for t in tiers)
    return tiers


def _slower(tier: Tier) -> Tier:
    index = INTERVAL_LADDER.index(tier.interval_minutes)
    slower = INTERVAL_LADDER[min(index + 1, len(INTERVAL_LADDER) - 1)]
    return Tier(tier.name, tier.ranges, slower, tier.minute_offset)
