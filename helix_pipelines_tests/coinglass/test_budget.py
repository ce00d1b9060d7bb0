from __future__ import annotations

import pytest

from helix_pipelines.coinglass.budget import BASE_TIERS, Tier, demand_per_minute, plan_tiers
from helix_pipelines.contracts.vocabulary import RANGES


def test_every_range_belongs_to_exactly_one_tier() -> None:
    ranges = [r for tier in BASE_TIERS for r in tier.ranges]
    assert sorted(ranges) == sorted(RANGES)


def test_small_universe_keeps_the_base_tiers() -> None:
    assert plan_tiers(5, 300) == BASE_TIERS
    # 3 models x 2 ranges x 5 symbols every 15 min = 2 requests/min for the intraday tier.
    assert BASE_TIERS[0].requests_per_minute(5) == 2.0


@pytest.mark.parametrize(("universe", "budget"), [(20, 300), (100, 300), (500, 1200), (50, 30)])
def test_planned_demand_fits_half_the_budget(universe: int, budget: int) -> None:
    tiers = plan_tiers(universe, budget)
    assert demand_per_minute(tiers, universe) <= budget * 0.5
    intervals = [t.interval_minutes for t in tiers]
    assert intervals == sorted(intervals)  # short ranges never refresh less often than long ones


def test_impossible_budget_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="even at daily refreshes"):
        plan_tiers(10_000, 30)


def test_cron_expressions() -> None:
    crons = {t.name: t.cron for t in BASE_TIERS}
    assert crons == {
        "intraday": "*/15 * * * *",
        "short": "5 */1 * * *",
        "medium": "10 */6 * * *",
        "long": "20 0 * * *",
    }
    staggered = Tier("intraday", ("12h",), 15, minute_offset=5)
    assert staggered.cron == "5-59/15 * * * *"
