"""One CoinGlass budget shared across limiters and OS processes through the machine's real Redis.

Every test works under a key prefix of its own and deletes every key under it afterwards. Windows
are short (about a second) so the tests run in real time; what is asserted is what the budget
promises: never more sends than the limit in any window, measured on the recorded send times (or
at the fake server, where a plan is enforced), and no 429 when every process shares the window.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import multiprocessing
import socket
import time
import uuid
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

import pytest
import redis
import redis.exceptions

from helix_pipelines.coinglass import ratelimit
from helix_pipelines.coinglass.client import CoinGlassClient
from helix_pipelines.coinglass.errors import CoinGlassRateLimitError
from helix_pipelines.coinglass.ratelimit import RateLimiter
from helix_pipelines.coinglass.settings import SourceSettings, open_source
from helix_pipelines.coinglass.shared_window import (
    BUDGET_KEY,
    EXPIRE_SLACK_MS,
    SharedWindow,
    WindowAnswer,
    budget_key,
)
from helix_pipelines.testing.coinglass_server import DEFAULT_API_KEY, FakeCoinGlassServer
from helix_pipelines.testing.local_services import (
    REDIS_URL,
    redis_url_with_password,
)

LIMIT = 10
WINDOW = 1.0
SAFETY = 0.2
SPAN = WINDOW + SAFETY
START = 1000.0
RATELIMIT_LOGGER = "helix_pipelines.coinglass.ratelimit"


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def max_in_any_window(times: list[float], span: float) -> int:
    """Largest number of times inside any half-open interval (t - span, t]."""
    ordered = sorted(times)
    return max(
        (i + 1 - bisect.bisect_right(ordered, t - span) for i, t in enumerate(ordered)), default=0
    )


@dataclass
class FakeTime:
    """A clock that only moves when someone sleeps on it."""

    now: float = START

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


# -- the window itself ----------------------------------------------------------------------


def test_the_budget_is_named_by_a_hash_of_the_key_and_expires(
    client: redis.Redis, prefix: str
) -> None:
    secret = "cg-secret-0123456789abcdef"

    async def body() -> None:
        window = SharedWindow(REDIS_URL, secret, key_prefix=prefix)
        other = SharedWindow(REDIS_URL, "another-key-0123456789", key_prefix=prefix)
        try:
            assert (await window.try_acquire(LIMIT, SPAN)).wait_seconds == 0.0
            # A different key is a different budget: its window starts empty.
            assert await other.in_window(SPAN) == 0
            assert await window.in_window(SPAN) == 1
        finally:
            await window.aclose()
            await other.aclose()

    asyncio.run(body())
    key = budget_key(secret, prefix)
    assert key.startswith(f"{prefix}{BUDGET_KEY}")
    assert key != budget_key("another-key-0123456789", prefix)
    assert [k.decode() for k in client.scan_iter(match=f"{prefix}*")] == [key]
    members = client.zrange(key, 0, -1)
    assert len(members) == 1
    assert secret not in key
    assert secret.encode() not in members[0]
    assert 0 < client.pttl(key) <= SPAN * 1000 + EXPIRE_SLACK_MS
    assert secret not in repr(SharedWindow(REDIS_URL, secret, key_prefix=prefix))


def test_the_window_books_up_to_the_limit_then_says_how_long_to_wait(prefix: str) -> None:
    async def body() -> tuple[list[WindowAnswer], WindowAnswer, float]:
        window = SharedWindow(REDIS_URL, DEFAULT_API_KEY, key_prefix=prefix)
        try:
            booked = [await window.try_acquire(3, SPAN) for _ in range(3)]
            refused = await window.try_acquire(3, SPAN)
            await asyncio.sleep(refused.wait_seconds)
            after = await window.try_acquire(3, SPAN)
            return booked, refused, after.wait_seconds
        finally:
            await window.aclose()

    booked, refused, after = asyncio.run(body())
    assert [(a.wait_seconds, a.in_window) for a in booked] == [(0.0, 1), (0.0, 2), (0.0, 3)]
    # Full: nothing booked, and the wait is what is left of the oldest send's span.
    assert refused.in_window == 3
    assert SPAN - 0.2 < refused.wait_seconds <= SPAN
    # Waiting exactly that long frees the slot.
    assert after == 0.0


def test_a_process_that_has_not_heard_the_limit_uses_the_one_another_reported(
    prefix: str,
) -> None:
    """A new process starts at the configured 30/min: against a window another process keeps
    near the real limit it would wait forever, never sending the request that tells it."""

    async def body() -> tuple[list[float], float, float]:
        window = SharedWindow(REDIS_URL, DEFAULT_API_KEY, key_prefix=prefix)
        try:
            busy = [
                (await window.try_acquire(20, SPAN, reported=True)).wait_seconds for _ in range(15)
            ]
            newcomer = await window.try_acquire(5, SPAN)  # configured 5, nothing reported
            # A reported limit is the truth, also when it is lower than what was remembered.
            lowered = await window.try_acquire(10, SPAN, reported=True)
            return busy, newcomer.wait_seconds, lowered.wait_seconds
        finally:
            await window.aclose()

    busy, newcomer, lowered = asyncio.run(body())
    assert busy == [0.0] * 15
    assert newcomer == 0.0  # 15 in the window < the reported 20
    assert lowered > 0  # 16 in the window >= the reported 10


def test_observed_usage_is_booked_once_and_only_beyond_what_the_window_holds(
    prefix: str,
) -> None:
    async def body() -> list[int]:
        first = SharedWindow(REDIS_URL, DEFAULT_API_KEY, key_prefix=prefix)
        second = SharedWindow(REDIS_URL, DEFAULT_API_KEY, key_prefix=prefix)
        try:
            return [
                (await first.book_usage(7, LIMIT, SPAN)).booked,  # foreign: 7
                (await first.book_usage(5, LIMIT, SPAN)).booked,  # fewer than held: none
                # Two processes see the same header: the difference is booked once.
                (await first.book_usage(9, LIMIT, SPAN)).booked,
                (await second.book_usage(9, LIMIT, SPAN)).booked,
                await second.in_window(SPAN),
                # Never beyond the limit (entries booked together expire together anyway).
                (await second.book_usage(50, LIMIT, SPAN)).booked,
                await first.in_window(SPAN),
            ]
        finally:
            await first.aclose()
            await second.aclose()

    assert asyncio.run(body()) == [7, 0, 2, 0, 9, 1, 10]


def test_a_limiter_books_observed_usage_where_every_process_sees_it(prefix: str) -> None:
    async def body() -> tuple[int, int, int]:
        observer = RateLimiter(
            LIMIT,
            window_seconds=WINDOW,
            safety_seconds=SAFETY,
            shared=SharedWindow(REDIS_URL, DEFAULT_API_KEY, key_prefix=prefix),
        )
        other = RateLimiter(
            LIMIT,
            window_seconds=WINDOW,
            safety_seconds=SAFETY,
            shared=SharedWindow(REDIS_URL, DEFAULT_API_KEY, key_prefix=prefix),
        )
        # A response says the key used 8 of its 10 in this window; this process sent none.
        observer.observe(LIMIT, 8)
        await observer.aclose()  # lets the booking land
        assert other.shared is not None
        shared_count = await other.shared.in_window(SPAN)
        await other.acquire()
        await other.acquire()
        # The other limiter's own window is nearly empty, but the shared one is full now.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(other.acquire(), timeout=0.3)
        await other.aclose()
        return shared_count, observer.in_window(), other.in_window()

    assert asyncio.run(body()) == (8, 8, 2)


# -- limiters sharing one window --------------------------------------------------------------


def test_two_limiters_sharing_a_window_never_exceed_the_limit_in_any_window(prefix: str) -> None:
    seconds = 3.0

    async def body() -> dict[str, list[float]]:
        limiters = {
            name: RateLimiter(
                LIMIT,
                window_seconds=WINDOW,
                safety_seconds=SAFETY,
                shared=SharedWindow(REDIS_URL, DEFAULT_API_KEY, key_prefix=prefix),
            )
            for name in ("a", "b")
        }
        sent: dict[str, list[float]] = {name: [] for name in limiters}
        deadline = time.monotonic() + seconds

        async def worker(name: str) -> None:
            while time.monotonic() < deadline:
                await limiters[name].acquire()
                sent[name].append(time.monotonic())

        await asyncio.gather(*(worker(name) for name in limiters for _ in range(4)))
        for limiter in limiters.values():
            await limiter.aclose()
        return sent

    sent = asyncio.run(body())
    times = sent["a"] + sent["b"]
    first = min(times)
    # Each limiter alone would let 10 go at once: together they share those 10.
    assert sum(1 for t in times if t < first + WINDOW) == LIMIT
    assert max_in_any_window(times, WINDOW) <= LIMIT
    # Sends may start until the deadline, and a slot frees every window + safety: at most 3
    # windows' worth, and the budget is not left idle either.
    assert 2 * LIMIT <= len(times) <= 4 * LIMIT
    assert min(len(sent["a"]), len(sent["b"])) > 0  # both limiters got their turn


# -- OS processes against the fake server ------------------------------------------------------

PROCESS_LIMIT = 20
PROCESS_SECONDS = 3.0
PROCESS_CONCURRENCY = 8


@dataclass(frozen=True)
class HammerJob:
    base_url: str
    key_prefix: str
    shared: bool


def hammer(job: HammerJob, start: Barrier, results: Queue[tuple[int, int]]) -> None:
    """One OS process sending as fast as its client lets it, from when every process is ready
    until PROCESS_SECONDS later; puts (requests sent, 429s received)."""
    results.put(asyncio.run(_hammer(job, start)))


async def _hammer(job: HammerJob, start: Barrier) -> tuple[int, int]:
    shared = (
        SharedWindow(REDIS_URL, DEFAULT_API_KEY, key_prefix=job.key_prefix) if job.shared else None
    )
    limiter = RateLimiter(
        PROCESS_LIMIT, window_seconds=WINDOW, safety_seconds=SAFETY, shared=shared
    )
    async with CoinGlassClient(
        DEFAULT_API_KEY,
        job.base_url,
        limiter=limiter,
        max_concurrency=PROCESS_CONCURRENCY,
        max_attempts=1,
        timeout_seconds=5.0,
    ) as client:
        await asyncio.to_thread(start.wait, 60)
        deadline = time.monotonic() + PROCESS_SECONDS

        async def worker() -> None:
            while time.monotonic() < deadline:
                with contextlib.suppress(CoinGlassRateLimitError):
                    await client.supported_coins()

        await asyncio.gather(*(worker() for _ in range(PROCESS_CONCURRENCY)))
        return client.stats.requests_sent, client.stats.rate_limited


def run_two_processes(server: FakeCoinGlassServer, prefix: str, *, shared: bool) -> list[int]:
    """Requests sent by each of two spawned processes hammering `server`."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    results: Queue[tuple[int, int]] = context.Queue()
    job = HammerJob(server.base_url, prefix, shared)
    processes = [context.Process(target=hammer, args=(job, start, results)) for _ in range(2)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    return [sent for sent, _ in outcomes]


@pytest.mark.parametrize("shared", [True, False], ids=["shared-window", "per-process-baseline"])
def test_two_processes_share_one_budget_at_the_server(prefix: str, shared: bool) -> None:
    with FakeCoinGlassServer(
        limit_per_minute=PROCESS_LIMIT, window_seconds=WINDOW, record_bodies=False
    ) as server:
        sent = run_two_processes(server, prefix, shared=shared)
        records = server.recorded()
    statuses = [r.status for r in records]
    admitted = [r.arrival for r in records if r.status == 200]
    assert len(records) == sum(sent)
    assert min(sent) > 0  # both processes got their turn
    assert max_in_any_window(admitted, WINDOW) <= PROCESS_LIMIT  # the server's own rule
    if shared:
        assert statuses.count(429) == 0
        assert statuses == [200] * len(records)
        # Combined, the processes stayed within the budget in every window, by arrival time...
        assert max_in_any_window([r.arrival for r in records], WINDOW) <= PROCESS_LIMIT
        # ... and still used it: a slot frees every window + safety, from the first window on.
        assert sum(sent) >= 1.5 * PROCESS_LIMIT
    else:
        # Without the shared window each process spends the whole budget in the first window:
        # the server refuses the excess (this is what the shared window prevents).
        assert statuses.count(429) >= PROCESS_LIMIT // 2


# -- Redis failing ------------------------------------------------------------------------------


def test_redis_down_falls_back_to_the_local_window_and_still_limits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"redis://default:redis-secret-pw@127.0.0.1:{closed_port()}/0"
    fake = FakeTime()

    async def body() -> tuple[list[float], int]:
        limiter = RateLimiter(
            3,
            window_seconds=10.0,
            safety_seconds=1.0,
            clock=fake.clock,
            sleep=fake.sleep,
            shared=SharedWindow(url, DEFAULT_API_KEY),
        )
        times = []
        for _ in range(7):
            await limiter.acquire()
            times.append(fake.now)
        limiter.observe(3, 5)  # booking usage must not fail either
        await limiter.aclose()
        return times, limiter.in_window()

    with caplog.at_level(logging.INFO, logger=RATELIMIT_LOGGER):
        times, in_window = asyncio.run(body())
    # Exactly the local limiter's schedule: 3 per window + safety.
    assert times == [START] * 3 + [START + 11.0] * 3 + [START + 22.0]
    assert in_window == 5
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # Redis was asked again at +22 and still down: no second warning
    assert "ConnectionError" in warnings[0].getMessage()
    assert "redis-secret-pw" not in caplog.text
    assert "***" in warnings[0].getMessage()


def test_a_fetch_succeeds_while_redis_is_down() -> None:
    async def body(server: FakeCoinGlassServer) -> list[str]:
        limiter = RateLimiter(
            5,
            shared=SharedWindow(f"redis://127.0.0.1:{closed_port()}/0", DEFAULT_API_KEY),
        )
        async with CoinGlassClient(DEFAULT_API_KEY, server.base_url, limiter=limiter) as client:
            return await client.supported_coins()

    with FakeCoinGlassServer() as server:
        assert asyncio.run(body(server)) == list(server.supported_coins)


class FlakyWindow(SharedWindow):
    """A real shared window whose Redis a test can unplug between calls."""

    down = False

    async def try_acquire(
        self, limit: int, span_seconds: float, *, reported: bool = False
    ) -> WindowAnswer:
        if self.down:
            raise redis.exceptions.ConnectionError("unplugged")
        return await super().try_acquire(limit, span_seconds, reported=reported)


def test_a_blip_mid_run_falls_back_then_shares_again(
    prefix: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ratelimit, "SHARED_RETRY_SECONDS", 0.2)

    async def body() -> tuple[int, int]:
        window = FlakyWindow(REDIS_URL, DEFAULT_API_KEY, key_prefix=prefix)
        limiter = RateLimiter(5, window_seconds=WINDOW, safety_seconds=SAFETY, shared=window)
        await limiter.acquire()
        await limiter.acquire()
        window.down = True
        await limiter.acquire()  # falls back: local window only
        await limiter.acquire()  # within the retry pause: Redis is not even asked
        window.down = False
        await asyncio.sleep(0.25)
        await limiter.acquire()  # asked again, and shared again
        shared_count = await window.in_window(SPAN)
        await limiter.aclose()
        return shared_count, limiter.in_window()

    with caplog.at_level(logging.INFO, logger=RATELIMIT_LOGGER):
        shared_count, local_count = asyncio.run(body())
    # The two sends made during the blip are only in the local window.
    assert (shared_count, local_count) == (3, 5)
    levels = [(r.levelno, "answers again" in r.getMessage()) for r in caplog.records]
    assert levels == [(logging.WARNING, False), (logging.INFO, True)]


# -- every CoinGlass caller shares the budget when HELIX_REDIS_URL is set ---------------------


def test_settings_and_resources_give_every_client_the_shared_window(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dagster as dg

    from helix_pipelines.defs.resources import CoinGlassResource, default_resources
    from helix_pipelines.services.settings import Settings

    api_key = f"cg-test-{uuid.uuid4().hex}"
    secret_url = redis_url_with_password("redis-secret-pw")
    settings = Settings.from_env({"COINGLASS_API_KEY": api_key, "HELIX_REDIS_URL": secret_url})
    assert settings.source.redis_url == secret_url
    assert "redis-secret-pw" not in repr(settings.source)
    assert "redis-secret-pw" not in settings.source.describe()
    assert "shared through Redis" in settings.source.describe()

    monkeypatch.setenv("COINGLASS_API_KEY", api_key)
    monkeypatch.setenv("HELIX_REDIS_URL", secret_url)
    resource = default_resources(Settings.from_env())["coinglass"]
    assert resource.redis_url == dg.EnvVar("HELIX_REDIS_URL")
    configured = CoinGlassResource(api_key=api_key, redis_url=REDIS_URL).settings()
    assert configured.redis_url == REDIS_URL

    async def fetch(server: FakeCoinGlassServer) -> tuple[list[str], str | None]:
        source = open_source(SourceSettings(api_key=api_key, base_url=server.base_url))
        assert isinstance(source, CoinGlassClient)
        assert source.limiter.shared is None  # no Redis URL: the process counts alone
        await source.aclose()
        source = open_source(
            SourceSettings(api_key=api_key, base_url=server.base_url, redis_url=REDIS_URL)
        )
        assert isinstance(source, CoinGlassClient)
        try:
            coins = await source.supported_coins()
        finally:
            await source.aclose()
        shared = source.limiter.shared
        return coins, shared.key if shared else None

    key = budget_key(api_key)
    try:
        with FakeCoinGlassServer(api_key=api_key) as server:
            coins, shared_key = asyncio.run(fetch(server))
        assert coins == list(server.supported_coins)
        assert shared_key == key
        assert client.zcard(key) == 1  # the one request was booked in the shared window
        assert client.pttl(key) > 0
    finally:
        client.delete(key)
