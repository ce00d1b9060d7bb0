"""The real CoinGlassClient (real httpx, real sockets) against the local fake CoinGlass server.

Why not an httpx mock transport: retries on resets and truncated bodies, timeouts, keep-alive and
pacing under a budget counted at the *server* only show up over a real connection. Timings are
shrunk (backoff of milliseconds, windows of a second) so the file runs in seconds; the only time
assertions are lower bounds computed from the server's own recorded arrival times.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import pytest

from helix_pipelines.coinglass.client import CoinGlassClient, peek_code
from helix_pipelines.coinglass.endpoints import SUPPORTED_COINS_PATH, SUPPORTED_EXCHANGE_PAIRS_PATH
from helix_pipelines.coinglass.errors import (
    CoinGlassAuthError,
    CoinGlassRateLimitError,
    CoinGlassRequestError,
    CoinGlassServerError,
    CoinGlassUnavailableError,
)
from helix_pipelines.coinglass.ratelimit import RateLimiter
from helix_pipelines.contracts.heatmaps import HeatmapRequest
from helix_pipelines.testing.coinglass_server import (
    DEFAULT_API_KEY,
    DEFAULT_COINS,
    DEFAULT_EXCHANGE_PAIRS,
    FakeCoinGlassServer,
)
from helix_pipelines.testing.coinglass_wire import RecordedRequest

T = TypeVar("T")

BTC_3D = HeatmapRequest("coin", "BTC", 2, "3d")
ETH_24H = HeatmapRequest("coin", "ETH", 1, "24h")
BINANCE_BTC = HeatmapRequest("pair", "BTCUSDT", 3, "7d", exchange="Binance")


@pytest.fixture
def server() -> Iterator[FakeCoinGlassServer]:
    with FakeCoinGlassServer(timeout_fault_seconds=10.0) as fake:
        yield fake


def run(factory: Callable[[], Awaitable[T]]) -> T:
    """Run one coroutine on a fresh loop; the client is built inside it so its locks bind there."""

    async def main() -> T:
        return await factory()

    return asyncio.run(main())


def client_for(server: FakeCoinGlassServer, **overrides: Any) -> CoinGlassClient:
    """A client with test-speed backoff; a generous limiter unless the test supplies one."""
    options: dict[str, Any] = {
        "rate_limit_per_minute": 10_000,
        "timeout_seconds": 5.0,
        "max_attempts": 4,
        "backoff_base_seconds": 0.01,
        "backoff_cap_seconds": 0.05,
    }
    options.update(overrides)
    api_key = options.pop("api_key", DEFAULT_API_KEY)
    return CoinGlassClient(api_key, server.base_url, **options)


async def fetch_with(server: FakeCoinGlassServer, request: HeatmapRequest, **kw: Any) -> bytes:
    async with client_for(server, **kw) as client:
        return await client.fetch_heatmap(request)


def statuses(records: list[RecordedRequest]) -> list[int | None]:
    return [r.status for r in records]


# -- happy path -------------------------------------------------------------------------------


def test_heatmap_bytes_are_exactly_what_the_server_served(server: FakeCoinGlassServer) -> None:
    async def body() -> list[bytes]:
        async with client_for(server) as client:
            return [await client.fetch_heatmap(r) for r in (BTC_3D, ETH_24H, BINANCE_BTC)]

    bodies = run(body)
    for request, got in zip((BTC_3D, ETH_24H, BINANCE_BTC), bodies, strict=True):
        assert got == server.served_body(request.path, request.params)
        data = orjson.loads(got)["data"]
        assert set(data) == {
            "y_axis",
            "liquidation_leverage_data",
            "price_candlesticks",
            "update_time",
        }
    records = server.recorded()
    assert [(r.path, r.params) for r in records] == [
        (r.path, r.params) for r in (BTC_3D, ETH_24H, BINANCE_BTC)
    ]
    assert statuses(records) == [200, 200, 200]
    # Sequential requests ride one keep-alive connection (and Content-Length framing is right).
    assert len({r.peer_port for r in records}) == 1


def test_supported_coins_and_exchange_pairs_parse(server: FakeCoinGlassServer) -> None:
    server.supported_coins = ["BTC", "ETH", "HYPE"]

    async def body() -> tuple[list[str], dict[str, list[dict[str, str]]]]:
        async with client_for(server) as client:
            return await client.supported_coins(), await client.supported_exchange_pairs()

    coins, pairs = run(body)
    assert coins == ["BTC", "ETH", "HYPE"]
    assert pairs == DEFAULT_EXCHANGE_PAIRS
    assert pairs["Binance"][0] == {
        "instrument_id": "BTCUSDT",
        "base_asset": "BTC",
        "quote_asset": "USDT",
    }
    assert [r.path for r in server.recorded()] == [
        SUPPORTED_COINS_PATH,
        SUPPORTED_EXCHANGE_PAIRS_PATH,
    ]


def test_capture_dir_holds_one_file_per_request(
    server: FakeCoinGlassServer, tmp_path: Path
) -> None:
    capture = tmp_path / "capture"
    requests = (BTC_3D, ETH_24H, BINANCE_BTC)

    async def body() -> None:
        async with client_for(server, capture_dir=capture) as client:
            for request in requests:
                await client.fetch_heatmap(request)

    run(body)
    assert sorted(p.name for p in capture.iterdir()) == sorted(r.capture_name for r in requests)
    for request in requests:
        stored = (capture / request.capture_name).read_bytes()
        assert stored == server.served_body(request.path, request.params)
    assert DEFAULT_API_KEY.encode() not in b"".join(p.read_bytes() for p in capture.iterdir())


# -- retries ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault", ["500", "502", "503", "408", "timeout", "reset", "truncate", "code:500", "code:503"]
)
def test_transient_failure_is_retried_then_succeeds(
    server: FakeCoinGlassServer, fault: str
) -> None:
    server.inject(fault)

    async def body() -> tuple[bytes, CoinGlassClient]:
        async with client_for(server, timeout_seconds=0.5) as client:
            return await client.fetch_heatmap(BTC_3D), client

    got, client = run(body)
    assert got == server.served_body(BTC_3D.path, BTC_3D.params)
    assert peek_code(got) == "0"
    records = server.recorded()
    assert [r.fault for r in records] == [fault, None]
    assert records[1].status == 200
    assert client.stats.requests_sent == 2
    assert client.stats.retries == 1
    assert server.pending_faults() == 0


def test_retries_exhausted_raise_server_error_naming_the_attempts(
    server: FakeCoinGlassServer,
) -> None:
    server.fail_symbol("BTC", "503")

    with pytest.raises(CoinGlassServerError) as caught:
        run(lambda: fetch_with(server, BTC_3D, max_attempts=3))

    assert type(caught.value) is CoinGlassServerError
    assert "gave up after 3 attempts" in str(caught.value)
    assert BTC_3D.path in str(caught.value)
    assert caught.value.status == 503
    assert statuses(server.recorded()) == [503, 503, 503]


def test_no_data_for_a_young_coin_costs_one_retry_then_says_unavailable(
    server: FakeCoinGlassServer,
) -> None:
    server.history_days = {"BTC": 2.0}  # BTC "listed" two days ago: no 3d heatmap yet

    async def body() -> tuple[CoinGlassUnavailableError, CoinGlassClient]:
        async with client_for(server, max_attempts=5) as client:
            with pytest.raises(CoinGlassUnavailableError) as caught:
                await client.fetch_heatmap(BTC_3D)
            return caught.value, client

    error, client = run(body)
    assert statuses(server.recorded()) == [200, 200]  # not five: one answer, one retry
    assert error.body == b'{"code":"500","msg":"Server Error"}'
    assert "no data" in str(error)
    assert (client.stats.requests_sent, client.stats.unavailable) == (2, 1)
    assert not isinstance(error, CoinGlassServerError)  # distinct from a failure


def test_no_data_retries_are_configurable(server: FakeCoinGlassServer) -> None:
    server.history_days = {"BTC": 2.0}
    with pytest.raises(CoinGlassUnavailableError):
        run(lambda: fetch_with(server, BTC_3D, unavailable_retries=0))
    assert len(server.recorded()) == 1


def test_a_no_data_answer_that_heals_on_the_retry_is_just_data(
    server: FakeCoinGlassServer,
) -> None:
    server.history_days = {"BTC": 2.0}

    async def body() -> bytes:
        async with client_for(server) as client:
            task = asyncio.create_task(client.fetch_heatmap(BTC_3D))
            while not server.recorded():
                await asyncio.sleep(0.001)
            server.history_days = {}
            return await task

    assert peek_code(run(body)) == "0"
    assert statuses(server.recorded()) == [200, 200]


def test_other_code_500_messages_are_server_errors_retried_in_full(
    server: FakeCoinGlassServer,
) -> None:
    server.fail_symbol("BTC", "code:500")  # "scripted error code 500": an internal error
    with pytest.raises(CoinGlassServerError, match="gave up after 3 attempts"):
        run(lambda: fetch_with(server, BTC_3D, max_attempts=3))
    assert len(server.recorded()) == 3


def test_a_burst_of_server_errors_pauses_the_whole_client(server: FakeCoinGlassServer) -> None:
    server.fail_symbol("BTC", "503")
    server.fail_symbol("ETH", "503")

    async def body() -> None:
        client = client_for(server, max_attempts=2, error_burst=3, error_burst_pause_seconds=0.6)
        async with client:
            for request in (BTC_3D, ETH_24H):
                with pytest.raises(CoinGlassServerError):
                    await client.fetch_heatmap(request)

    run(body)
    arrivals = [r.arrival for r in server.recorded()]
    assert len(arrivals) == 4
    # The third error in a row paused every request: the fourth waited out the pause.
    assert arrivals[3] - arrivals[2] >= 0.6
    assert arrivals[1] - arrivals[0] < 0.6


def test_retries_exhausted_on_429_raise_rate_limit_error(server: FakeCoinGlassServer) -> None:
    server.fail_symbol("BTC", "429:0")
    with pytest.raises(CoinGlassRateLimitError, match="gave up after 2 attempts"):
        run(lambda: fetch_with(server, BTC_3D, max_attempts=2))
    assert statuses(server.recorded()) == [429, 429]


def test_faults_injected_for_one_symbol_leave_others_alone(
    server: FakeCoinGlassServer,
) -> None:
    server.inject("503", "reset", symbol="ETH")

    async def body() -> list[bytes]:
        async with client_for(server) as client:
            return list(await asyncio.gather(*(client.fetch_heatmap(r) for r in (BTC_3D, ETH_24H))))

    btc, eth = run(body)
    assert btc == server.served_body(BTC_3D.path, BTC_3D.params)
    assert eth == server.served_body(ETH_24H.path, ETH_24H.params)
    assert statuses(server.recorded(BTC_3D.path)) == [200]
    assert statuses(server.recorded(ETH_24H.path)) == [503, None, 200]


def test_scripted_429_retry_after_is_honoured(server: FakeCoinGlassServer) -> None:
    server.inject("429:1")

    async def body() -> tuple[bytes, CoinGlassClient]:
        async with client_for(server) as client:
            return await client.fetch_heatmap(BTC_3D), client

    got, client = run(body)
    assert got == server.served_body(BTC_3D.path, BTC_3D.params)
    first, retry = server.recorded()
    assert (first.status, first.retry_after, retry.status) == (429, 1, 200)
    assert retry.arrival - first.arrival >= 1.0
    assert client.stats.rate_limited == 1
    assert client.stats.status_counts == {429: 1, 200: 1}


def test_budget_used_by_another_process_draws_a_429_whose_retry_after_is_honoured() -> None:
    """Another holder of the key spent the budget; the server's Retry-After says when to return."""
    with FakeCoinGlassServer(limit_per_minute=3, window_seconds=1.0) as server:
        with httpx.Client(
            base_url=server.base_url, headers={"CG-API-KEY": DEFAULT_API_KEY}
        ) as other:
            for _ in range(3):
                assert other.get(SUPPORTED_COINS_PATH).status_code == 200
        limiter = RateLimiter(100, window_seconds=1.0, safety_seconds=0.25)

        async def body() -> bytes:
            async with client_for(server, limiter=limiter) as client:
                return await client.fetch_heatmap(BTC_3D)

        got = run(body)
        assert got == server.served_body(BTC_3D.path, BTC_3D.params)
        mine = server.recorded(BTC_3D.path)
        assert statuses(mine) == [429, 200]
        assert mine[0].retry_after == 1
        assert mine[1].arrival - mine[0].arrival >= mine[0].retry_after
        assert limiter.limit == 3


def test_limit_is_sized_from_the_server_headers_after_the_first_response() -> None:
    """Client starts far above the plan; only the burst sent before any response can draw 429s."""
    concurrency, plan = 8, 4
    with FakeCoinGlassServer(
        limit_per_minute=plan, window_seconds=1.0, min_latency=0.2, max_latency=0.2
    ) as server:
        limiter = RateLimiter(1000, window_seconds=1.0, safety_seconds=0.5)
        requests = [HeatmapRequest("coin", coin, 1, "24h") for coin in DEFAULT_COINS] * 2

        async def body() -> list[bytes]:
            async with client_for(
                server, limiter=limiter, max_concurrency=concurrency, max_attempts=6
            ) as client:
                return list(await asyncio.gather(*(client.fetch_heatmap(r) for r in requests)))

        bodies = run(body)
        for request, got in zip(requests, bodies, strict=True):
            assert got == server.served_body(request.path, request.params)
        assert limiter.limit == plan
        records = server.recorded()
        rejected = [r for r in records if r.status == 429]
        admitted = [r for r in records if r.status == 200]
        assert len(admitted) == len(requests)
        # At most `concurrency` requests can leave before the first response teaches the limit,
        # and the server admits `plan` of them.
        assert 1 <= len(rejected) <= concurrency - plan
        learned_at = min(r.arrival for r in admitted) + server.min_latency
        assert all(r.arrival < learned_at for r in rejected)


def test_many_concurrent_requests_under_the_right_limit_draw_no_429() -> None:
    plan = 20
    with FakeCoinGlassServer(limit_per_minute=plan, window_seconds=1.0) as server:
        limiter = RateLimiter(plan, window_seconds=1.0, safety_seconds=0.5)
        requests = [
            HeatmapRequest("coin", coin, model, rng)
            for coin in DEFAULT_COINS
            for model in (1, 2, 3)
            for rng in ("12h", "24h", "3d", "7d")
        ]
        assert len(requests) == 60

        async def body() -> tuple[list[bytes], CoinGlassClient]:
            async with client_for(server, limiter=limiter, max_concurrency=16) as client:
                got = await asyncio.gather(*(client.fetch_heatmap(r) for r in requests))
                return list(got), client

        bodies, client = run(body)
        for request, got in zip(requests, bodies, strict=True):
            assert got == server.served_body(request.path, request.params)
        records = server.recorded()
        assert statuses(records) == [200] * 60
        assert max(r.used_in_window for r in records) <= plan
        assert client.stats.rate_limited == 0
        assert client.stats.requests_sent == 60


# -- non-retryable failures -------------------------------------------------------------------


def test_http_400_raises_request_error_without_retry() -> None:
    with FakeCoinGlassServer(validate_symbols=True) as server:
        unknown = HeatmapRequest("coin", "NOPE", 1, "3d")
        with pytest.raises(CoinGlassRequestError) as caught:
            run(lambda: fetch_with(server, unknown))
        assert type(caught.value) is CoinGlassRequestError
        assert caught.value.status == 400
        assert "NOPE" in str(caught.value)
        assert statuses(server.recorded()) == [400]


def test_error_code_in_a_200_heatmap_body_is_returned_raw(server: FakeCoinGlassServer) -> None:
    """The normalizer quarantines it with the code as the reason; the client must not raise."""
    server.inject("code:400")
    got = run(lambda: fetch_with(server, BTC_3D))
    assert got == server.served_body(BTC_3D.path, BTC_3D.params)
    assert orjson.loads(got)["code"] == "400"
    assert statuses(server.recorded()) == [200]


def test_error_code_in_a_200_body_raises_for_supported_coins(
    server: FakeCoinGlassServer,
) -> None:
    server.inject("code:400", path=SUPPORTED_COINS_PATH)

    async def body() -> list[str]:
        async with client_for(server) as client:
            return await client.supported_coins()

    with pytest.raises(CoinGlassRequestError) as caught:
        run(body)
    assert type(caught.value) is CoinGlassRequestError
    assert caught.value.code == "400"
    assert statuses(server.recorded()) == [200]


def test_auth_code_in_a_200_heatmap_body_still_raises(server: FakeCoinGlassServer) -> None:
    server.inject("code:401")
    with pytest.raises(CoinGlassAuthError):
        run(lambda: fetch_with(server, BTC_3D))
    assert len(server.recorded()) == 1


# -- secrets ----------------------------------------------------------------------------------


def _assert_secret_absent(
    secret: str, exc: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    assert secret not in str(exc)
    assert secret not in repr(exc)
    assert secret not in "".join(traceback.format_exception(exc))
    for record in caplog.records:
        assert secret not in record.getMessage()
    assert secret not in caplog.text


def test_wrong_key_raises_auth_error_and_never_leaks_the_key(
    server: FakeCoinGlassServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-key-7f3a9c21d4e8b605"

    async def body() -> list[str]:
        async with client_for(server, api_key=wrong) as client:
            return await client.supported_coins()

    with pytest.raises(CoinGlassAuthError) as caught:
        run(body)

    assert type(caught.value) is CoinGlassAuthError
    assert caught.value.status == 401
    assert "***" in str(caught.value)  # the fake echoed the key; the client scrubbed it
    records = server.recorded()
    assert [(r.status, r.key_valid) for r in records] == [(401, False)]
    _assert_secret_absent(wrong, caught.value, caplog)

    with pytest.raises(CoinGlassAuthError) as heatmap_error:
        run(lambda: fetch_with(server, BTC_3D, api_key=wrong))
    _assert_secret_absent(wrong, heatmap_error.value, caplog)


def test_retried_errors_echoing_the_key_are_redacted_in_logs(
    server: FakeCoinGlassServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.fail_symbol("BTC", "500")

    with pytest.raises(CoinGlassServerError) as caught:
        run(lambda: fetch_with(server, BTC_3D, max_attempts=3))

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # one per retry
    assert all("***" in r.getMessage() for r in warnings)
    _assert_secret_absent(DEFAULT_API_KEY, caught.value, caplog)


# -- the instrument itself --------------------------------------------------------------------


def test_fake_enforces_its_budget_and_reports_usage_in_headers() -> None:
    """The fake's own contract, checked with a bare httpx client, so client tests can trust it."""
    with (
        FakeCoinGlassServer(limit_per_minute=2, window_seconds=30.0) as server,
        httpx.Client(base_url=server.base_url, headers={"CG-API-KEY": DEFAULT_API_KEY}) as http,
    ):
        first = http.get(SUPPORTED_COINS_PATH)
        second = http.get(SUPPORTED_COINS_PATH)
        refused = http.get(SUPPORTED_COINS_PATH)
        assert [r.status_code for r in (first, second, refused)] == [200, 200, 429]
        assert [r.headers["API-KEY-USE-LIMIT"] for r in (first, second, refused)] == ["1", "2", "2"]
        assert {r.headers["API-KEY-MAX-LIMIT"] for r in (first, second, refused)} == {"2"}
        assert 29 <= int(refused.headers["Retry-After"]) <= 30
        assert orjson.loads(refused.content)["code"] == "429"
        assert server.used_in_window() == 2  # a refused request does not spend budget


def test_fake_rejects_bad_keys_params_and_paths(server: FakeCoinGlassServer) -> None:
    with httpx.Client(base_url=server.base_url) as http:
        missing_key = http.get(SUPPORTED_COINS_PATH)
        headers = {"CG-API-KEY": DEFAULT_API_KEY}
        no_range = http.get(BTC_3D.path, params={"symbol": "BTC"}, headers=headers)
        bad_range = http.get(BTC_3D.path, params={"symbol": "BTC", "range": "2d"}, headers=headers)
        no_exchange = http.get(
            BINANCE_BTC.path, params={"symbol": "X", "range": "3d"}, headers=headers
        )
        unknown = http.get("/api/futures/liquidation/aggregated-heatmap/model4", headers=headers)
    assert (missing_key.status_code, orjson.loads(missing_key.content)["code"]) == (401, "401")
    for response in (no_range, bad_range, no_exchange):
        assert (response.status_code, orjson.loads(response.content)["code"]) == (400, "400")
    assert (unknown.status_code, orjson.loads(unknown.content)["code"]) == (404, "404")
    assert server.served == {}
    with pytest.raises(ValueError, match="unknown fault"):
        server.inject("explode")
