"""Which source serves heatmaps, decided in one place for every entry point.

Precedence: an API key means the real CoinGlass client (always: demo, `dagster dev`, schedules);
otherwise a replay directory means replay; otherwise the synthetic sandbox. Values arrive as
explicit arguments (Dagster resources resolve them from the environment at run time), never
read at import time.

With a Redis URL, every CoinGlass client draws from one request budget per API key shared by all
processes on that Redis (`shared_window`), instead of each process counting only its own sends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from helix_pipelines.clock import utc_now
from helix_pipelines.coinglass.client import CoinGlassClient
from helix_pipelines.coinglass.endpoints import DEFAULT_BASE_URL
from helix_pipelines.coinglass.ratelimit import RateLimiter
from helix_pipelines.coinglass.replay import ReplaySource
from helix_pipelines.coinglass.sandbox import SandboxSource
from helix_pipelines.coinglass.shared_window import SharedWindow
from helix_pipelines.coinglass.source import HeatmapSource, SourceKind


@dataclass(frozen=True)
class SourceSettings:
    api_key: str | None = field(default=None, repr=False)  # a secret: never in a repr
    base_url: str = DEFAULT_BASE_URL
    replay_dir: Path | None = None
    capture_dir: Path | None = None
    rate_limit_per_minute: int = 30
    max_concurrency: int = 16
    timeout_seconds: float = 30.0
    max_attempts: int = 5
    unavailable_retries: int = 1
    # Redis holding the request budget shared by every process using the key; may hold a password.
    redis_url: str | None = field(default=None, repr=False)

    @property
    def kind(self) -> SourceKind:
        if self.api_key:
            return "coinglass"
        return "replay" if self.replay_dir else "sandbox"

    def describe(self) -> str:
        """One line for logs and CLI output; never includes the key."""
        if self.kind == "coinglass":
            shared = ", budget shared through Redis" if self.redis_url else ""
            return f"CoinGlass API at {self.base_url} (key configured{shared})"
        if self.kind == "replay":
            return f"replay of recorded payloads in {self.replay_dir}"
        return "SANDBOX (synthetic heatmaps, not market data; set COINGLASS_API_KEY for real data)"


def open_source(settings: SourceSettings, clock: Callable[[], datetime] = utc_now) -> HeatmapSource:
    """Build the source the settings select. The caller closes it with `aclose()`."""
    if settings.api_key:
        limiter = (
            RateLimiter(
                settings.rate_limit_per_minute,
                shared=SharedWindow(settings.redis_url, settings.api_key),
            )
            if settings.redis_url
            else None
        )
        return CoinGlassClient(
            settings.api_key,
            settings.base_url,
            rate_limit_per_minute=settings.rate_limit_per_minute,
            max_concurrency=settings.max_concurrency,
            timeout_seconds=settings.timeout_seconds,
            max_attempts=settings.max_attempts,
            unavailable_retries=settings.unavailable_retries,
            capture_dir=settings.capture_dir,
            limiter=limiter,
        )
    if settings.replay_dir:
        return ReplaySource(settings.replay_dir)
    return SandboxSource(clock)
