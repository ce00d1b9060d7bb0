"""The budget planner: what to fetch next so the CoinGlass budget goes where the trader looks.

A full sweep of the universe is 435 coins x 3 models x 8 ranges = 10,440 requests, 8.7 minutes
at 1,200/min, so refreshing everything every minute is impossible. Each planning cycle
(`cycle_seconds`) the planner spends `budget_share` of the plan's per-minute limit:

  hot   the radar's top `hot_coins` coins x `hot_ranges` x every model, every cycle, first in
        the queue: the coins closest to their clusters are never older than one cycle plus
        the time their requests take (target `hot_target_seconds`).
  rest  every other (coin, model, range), by range tier. Tier i has a base interval b_i (short
        ranges change fastest: `TIER_BASE_MINUTES`); what the hot list leaves over sets one
        common stretch s = max(1, sum(n_i / b_i) / leftover per minute), so tier i is due every
        s x b_i minutes (its expected staleness). The cycle's leftover goes to the keys with the
        highest priority age / interval x (0.5 + 0.5 x change rate), a key never fetched first;
        no key is fetched sooner than its base interval, so a small universe does not burn
        requests on data that cannot have changed.

Keys whose newest answer was "no data" (young coins on long ranges) are skipped until
`unavailable_retry` has passed, then probed again like any stale key. The plan never exceeds
the budget: it holds at most `budget_share x limit x cycle / 60` requests. Pure and
deterministic (no I/O): `services.planner` feeds it the warehouse's state and runs the plan.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

from helix_pipelines.contracts.heatmaps import HeatmapRequest, UniverseMember
from helix_pipelines.contracts.vocabulary import MODELS, RANGES, Scope

TIER_RANGES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "intraday": ("12h", "24h"),
        "short": ("3d", "7d"),
        "medium": ("30d", "90d"),
        "long": ("180d", "1y"),
    }
)
TIER_BASE_MINUTES: Mapping[str, float] = MappingProxyType(
    {"intraday": 1.0, "short": 4.0, "medium": 24.0, "long": 96.0}
)
HOT = "hot"


@dataclass(frozen=True, slots=True, order=True)
class FetchKey:
    """One heatmap the planner schedules: a universe member's (model, range)."""

    scope: Scope
    exchange: str
    symbol: str
    model: int
    range: str

    def request(self) -> HeatmapRequest:
        return HeatmapRequest(self.scope, self.symbol, self.model, self.range, self.exchange)


@dataclass(frozen=True, slots=True)
class KeyState:
    """What the fetch log knows of a key: when it was last fetched, how often a fetch brought a
    changed payload (1.0 when unknown), and whether CoinGlass's newest answer was "no data"."""

    last_fetched_at: datetime
    change_rate: float = 1.0
    unavailable: bool = False


@dataclass(frozen=True, slots=True)
class PlannerParams:
    hot_coins: int = 25
    hot_ranges: tuple[str, ...] = ("12h", "24h")
    hot_target_seconds: float = 60.0
    cycle_seconds: float = 50.0
    budget_share: float = 0.95
    unavailable_retry: timedelta = timedelta(hours=24)
    tier_base_minutes: Mapping[str, float] = field(default_factory=lambda: TIER_BASE_MINUTES)

    def __post_init__(self) -> None:
        if self.hot_coins < 0:
            raise ValueError(f"hot_coins must be >= 0, got {self.hot_coins}")
        if unknown := set(self.hot_ranges) - set(RANGES):
            raise ValueError(f"hot_ranges holds unknown ranges {sorted(unknown)}; known: {RANGES}")
        if not 0 < self.budget_share <= 1:
            raise ValueError(f"budget_share must be in (0, 1], got {self.budget_share}")
        if not 0 < self.cycle_seconds <= self.hot_target_seconds:
            raise ValueError(
                f"cycle_seconds ({self.cycle_seconds}) must be positive and at most the hot "
                f"target ({self.hot_target_seconds} s): the hot list is fetched once a cycle"
            )

    def budget_per_cycle(self, limit_per_minute: int) -> int:
        return math.floor(limit_per_minute * self.budget_share * self.cycle_seconds / 60)


@dataclass(frozen=True, slots=True)
class TierPlan:
    """One tier of a plan: its size, the interval the budget allows (= expected staleness), what
    this cycle fetches, and how stale the tier is now."""

    name: str
    keys: int
    skipped_unavailable: int
    interval_seconds: float
    requests_per_minute: float
    planned: int
    never_fetched: int
    stalest_seconds: float | None  # the oldest fetched key's age now

    def as_row(self) -> dict[str, object]:
        return {
            "tier": self.name,
            "keys": self.keys,
            "skipped_unavailable": self.skipped_unavailable,
            "interval_seconds": round(self.interval_seconds, 1),
            "requests_per_minute": round(self.requests_per_minute, 1),
            "planned": self.planned,
            "never_fetched": self.never_fetched,
            "stalest_seconds": None
            if self.stalest_seconds is None
            else round(self.stalest_seconds),
        }


@dataclass(frozen=True, slots=True)
class FetchPlan:
    """One cycle's requests in the order to send them (hot first) and why."""

    planned_at: datetime
    limit_per_minute: int
    budget: int  # the most this cycle may send
    cycle_seconds: float
    hot_coins: tuple[str, ...]
    hot_ranges: tuple[str, ...]
    keys: tuple[FetchKey, ...]
    tiers: tuple[TierPlan, ...]
    notes: tuple[str, ...] = ()

    @property
    def share_of_limit(self) -> float:
        """Planned requests per minute over the limit per minute."""
        return len(self.keys) * 60 / self.cycle_seconds / self.limit_per_minute


def tier_of(range_: str) -> str:
    return next(name for name, ranges in TIER_RANGES.items() if range_ in ranges)


def plan_fetches(
    members: Sequence[UniverseMember],
    ranking: Sequence[str],
    states: Mapping[FetchKey, KeyState],
    *,
    limit_per_minute: int,
    now: datetime,
    params: PlannerParams | None = None,
) -> FetchPlan:
    """The next cycle's plan for `members` (in universe order), the hot list taken from
    `ranking` (symbols by radar rank; members it does not rank follow in universe order)."""
    params = params or PlannerParams()
    if limit_per_minute < 1:
        raise ValueError(f"limit_per_minute must be at least 1, got {limit_per_minute}")
    by_symbol = {m.symbol: m for m in members}
    ranked = [s for s in dict.fromkeys(ranking) if s in by_symbol]
    first = set(ranked)
    order = ranked + [m.symbol for m in members if m.symbol not in first]
    hot_symbols = order[: params.hot_coins]
    position = {symbol: i for i, symbol in enumerate(order)}

    def keys_of(symbols: Sequence[str], ranges: Sequence[str]) -> list[FetchKey]:
        return [
            FetchKey(by_symbol[s].scope, by_symbol[s].exchange, s, model, range_)
            for s in symbols
            for range_ in ranges
            for model in MODELS
        ]

    def skipped(key: FetchKey) -> bool:
        state = states.get(key)
        return (
            state is not None
            and state.unavailable
            and now - state.last_fetched_at < params.unavailable_retry
        )

    budget = params.budget_per_cycle(limit_per_minute)
    notes: list[str] = []
    hot_all = keys_of(hot_symbols, params.hot_ranges)
    hot = [k for k in hot_all if not skipped(k)]
    if len(hot) > budget:
        notes.append(
            f"the hot list needs {len(hot)} requests a cycle, the budget allows {budget}: "
            f"the {budget} stalest are fetched (round robin)"
        )
        never = datetime.min.replace(tzinfo=now.tzinfo)
        hot = sorted(hot, key=lambda k: states[k].last_fetched_at if k in states else never)
        hot = hot[:budget]
    leftover_per_minute = (budget - len(hot)) * 60 / params.cycle_seconds

    hot_keys = set(hot_all)
    rest = {
        name: [k for k in keys_of(order, ranges) if k not in hot_keys]
        for name, ranges in TIER_RANGES.items()
    }
    available = {name: [k for k in keys if not skipped(k)] for name, keys in rest.items()}
    base = params.tier_base_minutes
    need = sum(len(keys) / base[name] for name, keys in available.items())
    stretch = max(1.0, need / leftover_per_minute) if leftover_per_minute > 0 else math.inf
    interval = {name: base[name] * stretch * 60 for name in available}

    def age(key: FetchKey) -> float | None:
        state = states.get(key)
        return None if state is None else (now - state.last_fetched_at).total_seconds()

    def priority(key: FetchKey) -> tuple[float, float, int]:
        name = tier_of(key.range)
        seconds = age(key)
        if seconds is None:
            return (math.inf, -base[name], -position[key.symbol])
        change = states[key].change_rate
        return (seconds / interval[name] * (0.5 + 0.5 * change), -base[name], -position[key.symbol])

    candidates = [
        k
        for keys in available.values()
        for k in keys
        if (seconds := age(k)) is None or seconds >= base[tier_of(k.range)] * 60
    ]
    room = budget - len(hot)
    chosen = sorted(candidates, key=priority, reverse=True)[:room] if room > 0 else []

    tiers = [
        _tier_plan(
            HOT,
            hot_all,
            hot,
            hot,
            params.cycle_seconds,
            len(hot) * 60 / params.cycle_seconds,
            age,
        )
    ]
    chosen_set = set(chosen)
    for name, keys in rest.items():
        kept = available[name]
        tiers.append(
            _tier_plan(
                name,
                keys,
                kept,
                [k for k in kept if k in chosen_set],
                interval[name],
                len(kept) / interval[name] * 60 if math.isfinite(interval[name]) else 0.0,
                age,
            )
        )
    return FetchPlan(
        planned_at=now,
        limit_per_minute=limit_per_minute,
        budget=budget,
        cycle_seconds=params.cycle_seconds,
        hot_coins=tuple(hot_symbols),
        hot_ranges=params.hot_ranges,
        keys=tuple(hot + chosen),
        tiers=tuple(tiers),
        notes=tuple(notes),
    )


def _tier_plan(
    name: str,
    keys: Sequence[FetchKey],
    kept: Sequence[FetchKey],
    planned: Sequence[FetchKey],
    interval_seconds: float,
    requests_per_minute: float,
    age: Callable[[FetchKey], float | None],
) -> TierPlan:
    ages = [a for k in kept if (a := age(k)) is not None]
    return TierPlan(
        name=name,
        keys=len(kept),
        skipped_unavailable=len(keys) - len(kept),
        interval_seconds=interval_seconds,
        requests_per_minute=requests_per_minute,
        planned=len(planned),
        never_fetched=len(kept) - len(ages),
        stalest_seconds=max(ages) if ages else None,
    )
