"""The budget planner at the real universe's size: the hot list every cycle, the rest by
staleness, never more than the budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from helix_pipelines.coinglass.planner import (
    FetchKey,
    KeyState,
    PlannerParams,
    plan_fetches,
    tier_of,
)
from helix_pipelines.contracts.heatmaps import UniverseMember
from helix_pipelines.contracts.vocabulary import MODELS, RANGES

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def universe(n: int) -> list[UniverseMember]:
    return [UniverseMember("coin", "", f"C{i:03d}", i + 1) for i in range(n)]


def all_keys(members: list[UniverseMember]) -> list[FetchKey]:
    return [
        FetchKey("coin", "", m.symbol, model, r)
        for m in members
        for r in RANGES
        for model in MODELS
    ]


def test_real_universe_first_cycle_spends_the_budget_hot_list_first() -> None:
    members = universe(435)
    ranking = [m.symbol for m in reversed(members)]  # the radar ranks the last coin first
    plan = plan_fetches(members, ranking, {}, limit_per_minute=1200, now=NOW)
    assert plan.budget == 950  # 1200 x 0.95 x 50 s / 60 s
    assert len(plan.keys) == 950
    assert plan.hot_coins == tuple(ranking[:25])
    hot = plan.keys[:150]
    assert {k.symbol for k in hot} == set(ranking[:25])
    assert {k.range for k in hot} == {"12h", "24h"}
    assert {k.model for k in hot} == set(MODELS)
    # Never-fetched keys after the hot list: the fastest tier first.
    assert {tier_of(k.range) for k in plan.keys[150:]} == {"intraday"}
    tiers = {t.name: t for t in plan.tiers}
    assert tiers["hot"].keys == 150
    assert tiers["intraday"].keys == 410 * 6
    assert tiers["short"].keys == tiers["medium"].keys == tiers["long"].keys == 435 * 6
    # Leftover 800 a cycle = 960/min; need 2460 + 2610/4 + 2610/24 + 2610/96 = 3248.4/min.
    stretch = (2460 + 2610 / 4 + 2610 / 24 + 2610 / 96) / 960
    assert tiers["intraday"].interval_seconds == pytest.approx(60 * stretch)
    assert tiers["long"].interval_seconds == pytest.approx(96 * 60 * stretch)
    assert plan.share_of_limit == pytest.approx(0.95)


def test_fresh_keys_wait_for_their_base_interval_and_stale_ones_go_first() -> None:
    members = universe(10)
    states = {k: KeyState(NOW - timedelta(seconds=30)) for k in all_keys(members)}
    stale = FetchKey("coin", "", "C009", 2, "30d")
    states[stale] = KeyState(NOW - timedelta(days=1))
    plan = plan_fetches(members, [], states, limit_per_minute=1200, now=NOW)
    hot = [k for k in plan.keys if k.range in ("12h", "24h")]
    assert len(hot) == 10 * 6  # fewer coins than hot_coins: all of them are hot
    # 30 s old is younger than any tier's base interval: only the day-old key joins the hot list.
    assert [k for k in plan.keys if k not in hot] == [stale]
    assert plan.share_of_limit < 0.9  # a small universe does not burn requests for nothing


def test_unavailable_keys_are_skipped_until_their_retry() -> None:
    members = universe(3)
    young = FetchKey("coin", "", "C002", 1, "1y")
    recent = {young: KeyState(NOW - timedelta(hours=2), unavailable=True)}
    plan = plan_fetches(members, [], recent, limit_per_minute=1200, now=NOW)
    assert young not in plan.keys
    assert {t.name: t.skipped_unavailable for t in plan.tiers}["long"] == 1
    retry = {young: KeyState(NOW - timedelta(hours=25), unavailable=True)}
    assert young in plan_fetches(members, [], retry, limit_per_minute=1200, now=NOW).keys


def test_change_rate_breaks_ties_between_equally_stale_keys() -> None:
    members = universe(2)
    old = NOW - timedelta(hours=10)
    states = {k: KeyState(NOW) for k in all_keys(members)}
    static = FetchKey("coin", "", "C000", 1, "90d")
    moving = FetchKey("coin", "", "C001", 1, "90d")
    states[static] = KeyState(old, change_rate=0.0)
    states[moving] = KeyState(old, change_rate=1.0)
    params = PlannerParams(hot_coins=0, cycle_seconds=50)
    # A budget of one request a cycle: the key whose payload keeps changing wins.
    plan = plan_fetches(members, [], states, limit_per_minute=2, now=NOW, params=params)
    assert plan.budget == 1
    assert plan.keys == (moving,)


def test_a_budget_smaller_than_the_hot_list_is_never_exceeded() -> None:
    members = universe(50)
    plan = plan_fetches(members, [], {}, limit_per_minute=60, now=NOW)
    assert plan.budget == 47
    assert len(plan.keys) == 47
    assert all(k.range in ("12h", "24h") for k in plan.keys)
    assert plan.notes
    assert "the 47 stalest" in plan.notes[0]
    # The next cycle takes the ones left out: the hot list goes round, none starves.
    fetched = {k: KeyState(NOW) for k in plan.keys}
    later = plan_fetches(members, [], fetched, limit_per_minute=60, now=NOW + timedelta(seconds=50))
    assert not set(later.keys) & set(plan.keys)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hot_ranges": ("2h",)}, "unknown ranges"),
        ({"budget_share": 1.5}, "budget_share"),
        ({"cycle_seconds": 90}, "at most the hot target"),
    ],
)
def test_bad_parameters_are_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PlannerParams(**kwargs)  # type: ignore[arg-type]
