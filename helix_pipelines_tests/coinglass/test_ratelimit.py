"""Unit tests of the sliding-window RateLimiter on a fake clock: exact times, no real waiting.

The limiter takes an injectable clock and sleep. The fake sleep advances the fake clock by exactly
the requested amount, so every acquisition time is a deterministic number the tests can check
against the budget arithmetic (window + safety margin). Values are kept on a dyadic grid (multiples
of 1/8) so float arithmetic is exact and equalities such as "acquired exactly when a slot freed"
can be asserted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helix_pipelines.coinglass.ratelimit import RateLimiter

START = 1000.0
T = TypeVar("T")


@dataclass
class FakeTime:
    """A clock that only moves when someone sleeps on it (or a test advances it)."""

    now: float = START
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        # Yield like a real sleep would, so other tasks get to queue up behind the lock.
        await asyncio.sleep(0)

    def limiter(self, limit: int, *, window: float = 10.0, safety: float = 1.0) -> RateLimiter:
        return RateLimiter(
            limit, window_seconds=window, safety_seconds=safety, clock=self.clock, sleep=self.sleep
        )


def run(factory: Callable[[], Awaitable[T]]) -> T:
    """Run one coroutine factory on a fresh event loop (the limiter's lock binds to it)."""

    async def main() -> T:
        return await factory()

    return asyncio.run(main())


async def acquire_all(limiter: RateLimiter, fake: FakeTime, count: int) -> list[float]:
    """Start `count` concurrent acquisitions in order; return each one's fake-time of success."""
    times: list[float | None] = [None] * count

    async def one(i: int) -> None:
        await limiter.acquire()
        times[i] = fake.now

    await asyncio.gather(*(one(i) for i in range(count)))
    assert all(t is not None for t in times)
    return [t for t in times if t is not None]


def max_in_any_window(times: list[float], span: float) -> int:
    """Largest number of times inside any half-open interval (t - span, t]."""
    ordered = sorted(times)
    return max(
        (sum(1 for u in ordered[: i + 1] if u > t - span) for i, t in enumerate(ordered)),
        default=0,
    )


def test_rejects_a_limit_below_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RateLimiter(0)


def test_sequential_acquisitions_never_exceed_limit_in_any_window() -> None:
    fake = FakeTime()
    limiter = fake.limiter(5, window=10.0, safety=1.0)

    async def body() -> list[float]:
        return [t for _ in range(23) for t in await acquire_all(limiter, fake, 1)]

    times = run(body)
    # First five go at once; each later one goes exactly when the one five before it expires.
    assert times[:5] == [START] * 5
    assert times[5:10] == [START + 11.0] * 5
    assert times[20:] == [START + 44.0] * 3
    assert all(times[i + 5] - times[i] >= 11.0 for i in range(len(times) - 5))
    assert max_in_any_window(times, 11.0) == 5
    assert limiter.in_window() == 3


def test_concurrent_acquisitions_are_paced_the_same_way() -> None:
    fake = FakeTime()
    limiter = fake.limiter(4, window=8.0, safety=0.5)
    times = run(lambda: acquire_all(limiter, fake, 10))
    assert times == [START] * 4 + [START + 8.5] * 4 + [START + 17.0] * 2
    assert max_in_any_window(times, 8.5) == 4
    assert limiter.waited_seconds == 17.0


def test_expired_entries_leave_the_window() -> None:
    fake = FakeTime()
    limiter = fake.limiter(3, window=10.0, safety=1.0)
    run(lambda: acquire_all(limiter, fake, 3))
    assert limiter.in_window() == 3
    fake.now += 10.875
    assert limiter.in_window() == 3
    fake.now += 0.125  # exactly window + safety after the sends: they no longer count
    assert limiter.in_window() == 0


def test_observe_resizes_down_and_up() -> None:
    fake = FakeTime()
    limiter = fake.limiter(10, window=10.0, safety=1.0)

    async def body() -> tuple[list[float], list[float]]:
        first = await acquire_all(limiter, fake, 3)
        limiter.observe(3, None)
        shrunk = await acquire_all(limiter, fake, 1)
        limiter.observe(20, None)
        grown = await acquire_all(limiter, fake, 10)
        return first + shrunk, grown

    before, after = run(body)
    assert limiter.limit == 20
    # Limit 3 with 3 already sent: the fourth waits for the first to expire.
    assert before == [START] * 3 + [START + 11.0]
    # Limit 20 with 3 in the window (one expired at +11): ten more go immediately.
    assert after == [START + 11.0] * 10


@pytest.mark.parametrize("max_limit", [None, 0, -5])
def test_observe_ignores_missing_or_nonsense_limits(max_limit: int | None) -> None:
    fake = FakeTime()
    limiter = fake.limiter(7)
    limiter.observe(max_limit, None)
    assert limiter.limit == 7
    assert limiter.in_window() == 0


def test_observe_used_books_foreign_usage() -> None:
    fake = FakeTime()
    limiter = fake.limiter(5, window=10.0, safety=1.0)

    async def body() -> list[float]:
        await acquire_all(limiter, fake, 1)
        fake.now += 2.0
        # The server counts 4 in its window; we sent 1: another process used 3 of our budget.
        limiter.observe(5, 4)
        assert limiter.in_window() == 4
        return await acquire_all(limiter, fake, 3)

    times = run(body)
    # One slot left now; the next frees when our own first send expires (START + 11); the last
    # waits for the foreign usage booked at START + 2 to expire (START + 13).
    assert times == [START + 2.0, START + 11.0, START + 13.0]


def test_observe_used_below_own_count_books_nothing() -> None:
    fake = FakeTime()
    limiter = fake.limiter(10)
    run(lambda: acquire_all(limiter, fake, 4))
    limiter.observe(None, 2)  # the server has not seen all our sends yet: no foreign usage
    assert limiter.in_window() == 4
    limiter.observe(None, None)
    assert limiter.in_window() == 4


def test_hold_delays_everyone_until_it_ends() -> None:
    fake = FakeTime()
    limiter = fake.limiter(100)

    async def body() -> list[float]:
        limiter.hold(7.0)
        limiter.hold(2.0)  # a shorter hold never shortens a longer one
        return await acquire_all(limiter, fake, 5)

    times = run(body)
    assert times == [START + 7.0] * 5
    assert limiter.waited_seconds == 7.0


def test_hold_and_full_window_combine() -> None:
    fake = FakeTime()
    limiter = fake.limiter(2, window=10.0, safety=1.0)

    async def body() -> list[float]:
        await acquire_all(limiter, fake, 2)
        limiter.hold(3.0)
        return await acquire_all(limiter, fake, 3)

    # The hold ends at +3 but the window is still full until +11; then the one after at +22.
    assert run(body) == [START + 11.0, START + 11.0, START + 22.0]


def test_waiters_are_served_first_in_first_out() -> None:
    fake = FakeTime()
    limiter = fake.limiter(1, window=10.0, safety=1.0)
    order: list[str] = []

    async def one(name: str, delay_ticks: int) -> None:
        for _ in range(delay_ticks):
            await asyncio.sleep(0)
        await limiter.acquire()
        order.append(name)

    async def body() -> None:
        # Created in this order and arriving in this order (a, b, c ...): each later arrival must
        # wait behind every earlier one, although all are eligible once a slot frees.
        await asyncio.gather(*(one(name, i) for i, name in enumerate("abcdef")))

    run(body)
    assert order == list("abcdef")
    assert fake.sleeps == [11.0] * 5


# -- property ---------------------------------------------------------------------------------

grid = st.integers(min_value=0, max_value=80).map(lambda n: n / 8)
Op = tuple[str, float, int]
ops = st.lists(
    st.one_of(
        st.tuples(st.just("acquire"), st.just(0.0), st.integers(1, 6)),
        st.tuples(st.just("advance"), grid, st.just(0)),
        st.tuples(st.just("hold"), grid, st.just(0)),
        st.tuples(st.just("limit"), st.just(0.0), st.integers(1, 6)),
        st.tuples(st.just("used"), st.just(0.0), st.integers(0, 10)),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(1, 6),
    window=st.integers(1, 16).map(lambda n: n / 2),
    safety=st.integers(0, 8).map(lambda n: n / 4),
    script=ops,
)
def test_property_budget_respected_and_no_needless_waiting(
    limit: int, window: float, safety: float, script: list[Op]
) -> None:
    """Whatever the mix of acquisitions, resizes, foreign usage and holds:

    - an acquisition happens only when fewer than `limit` bookings (ours and foreign) lie in
      (t - window - safety, t], and never before a hold ends;
    - an acquisition that waited happened exactly when it became allowed (a hold ended or a
      booking expired), so the limiter never leaves budget unused.
    """
    fake = FakeTime()
    limiter = fake.limiter(limit, window=window, safety=safety)
    span = window + safety
    bookings: list[float] = []
    held_until = 0.0

    def count_at(t: float) -> int:
        return sum(1 for b in bookings if b > t - span)

    async def body() -> None:
        nonlocal held_until
        for kind, amount, n in script:
            if kind == "advance":
                fake.now += amount
            elif kind == "hold":
                limiter.hold(amount)
                held_until = max(held_until, fake.now + amount)
            elif kind == "limit":
                limiter.observe(n, None)
            elif kind == "used":
                before = limiter.in_window()
                limiter.observe(None, n)
                booked = limiter.in_window() - before
                assert booked == max(0, n - before)
                bookings.extend([fake.now] * booked)
            else:
                started = fake.now
                for t in await acquire_all(limiter, fake, n):
                    assert t >= held_until
                    assert count_at(t) < limiter.limit
                    if t > started:
                        freed = {b + span for b in bookings}
                        assert t == held_until or t in freed
                    bookings.append(t)
                # Local bookings are exactly what the limiter holds in its window.
                assert limiter.in_window() == count_at(fake.now)

    run(body)


def test_raising_the_limit_wakes_a_request_already_waiting() -> None:
    """A waiter sized under the old limit must not sleep out the whole window after a resize."""
    fake = FakeTime()

    async def sleep_forever(seconds: float) -> None:
        fake.sleeps.append(seconds)
        await asyncio.get_running_loop().create_future()  # only a wake-up can end this wait

    async def body() -> int:
        limiter = RateLimiter(
            2, window_seconds=10, safety_seconds=1, clock=fake.clock, sleep=sleep_forever
        )
        await limiter.acquire()
        await limiter.acquire()
        third = asyncio.create_task(limiter.acquire())
        for _ in range(5):  # let it reach its sleep
            await asyncio.sleep(0)
        assert not third.done()
        assert fake.sleeps == [11.0]
        limiter.observe(100, None)
        await asyncio.wait_for(third, timeout=1)
        return limiter.in_window()

    assert run(body) == 3
