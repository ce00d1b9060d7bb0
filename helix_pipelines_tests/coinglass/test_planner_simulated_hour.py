"""An hour of planning against the fake CoinGlass server, in simulated time: the budget is never
exceeded, 0.9-1.0 of it is used, and the hot list is never older than its 60 s target.

Scaled to run in seconds: 30 coins and 120 requests/min keep the real job's proportions (the hot
list, five coins x 12h/24h x 3 models, is about a third of the budget; the rest of the universe
needs more than what is left). bench/planner.py runs the real 435 coins at 1,200/min.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from helix_pipelines.coinglass.planner import PlannerParams
from helix_pipelines.contracts.heatmaps import UniverseMember
from helix_pipelines.testing.planner_sim import Simulation, simulate

LIMIT = 120
PARAMS = PlannerParams(hot_coins=5)
MEMBERS = [UniverseMember("coin", "", f"C{i:02d}", i + 1) for i in range(30)]


def ranking(t: float) -> list[str]:
    # The radar's order changes every 10 minutes, so the hot list moves through the universe.
    shift = int(t // 600) * 3
    symbols = [m.symbol for m in MEMBERS]
    return symbols[shift:] + symbols[:shift]


@pytest.fixture(scope="module")
def hour() -> Simulation:
    return simulate(
        MEMBERS,
        limit=LIMIT,
        seconds=3600,
        start=datetime(2026, 12, 1, 12, tzinfo=UTC),
        params=PARAMS,
        ranking=ranking,
    )


def test_no_request_is_refused_and_no_window_exceeds_the_limit(hour: Simulation) -> None:
    assert len(hour.arrivals) > 0.9 * LIMIT * 60
    assert {status for _, status in hour.arrivals} == {200}
    assert hour.max_in_window(60) <= LIMIT


def test_budget_use_is_between_90_and_100_percent_of_the_limit_after_the_first_minute(
    hour: Simulation,
) -> None:
    use = hour.per_minute(LIMIT)[1:]
    assert len(use) == 59
    assert min(use) >= 0.9, use
    assert max(use) <= 1.0, use


def test_the_hot_list_is_never_older_than_its_target(hour: Simulation) -> None:
    gaps = hour.hot_refresh_gaps()
    assert len(gaps) > 60 * 30  # about 70 cycles x 30 hot keys
    assert max(gaps) <= PARAMS.hot_target_seconds


def test_every_key_of_the_universe_is_fetched_within_the_hour(hour: Simulation) -> None:
    assert len(hour.fetched) == 30 * 24
