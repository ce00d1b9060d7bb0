"""Sandbox source: synthetic CoinGlass heatmaps with no API key and no network.

Why it exists: a fresh machine can run the whole pipeline, and demos exercise the same code paths
as production. It serves `coinglass.synthetic` payloads (real sizes and key sets, young coins
answering "no data") through the same `HeatmapSource` interface as the HTTP client; `clock`
decides which candle period "now" falls in. Every consumer labels its output as sandbox.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from helix_pipelines.clock import utc_now
from helix_pipelines.coinglass.errors import CoinGlassUnavailableError, says_no_data
from helix_pipelines.coinglass.source import SourceKind, SourceStats
from helix_pipelines.coinglass.synthetic import (
    NO_DATA_BODY,
    SYNTHETIC_COINS,
    base_asset,
    has_history,
    heatmap_payload,
    period_end_at,
)
from helix_pipelines.contracts.heatmaps import HeatmapRequest

SANDBOX_EXCHANGES: tuple[str, ...] = ("Binance", "Bybit", "OKX")
SANDBOX_HISTORY_DAYS: dict[str, float] = {"HYPE": 330.0, "ENA": 150.0, "WLD": 60.0}
"""Young sandbox coins, like the real universe has: their longer ranges have no data."""


class SandboxHeatmaps:
    """Synthetic payloads as of `clock()`; coins in `history_days` lack the longer ranges."""

    def __init__(
        self,
        clock: Callable[[], datetime] = utc_now,
        *,
        cell_fraction: float = 1.0,
        history_days: Mapping[str, float] = SANDBOX_HISTORY_DAYS,
    ) -> None:
        self._clock = clock
        self._cell_fraction = cell_fraction
        self._history_days = dict(history_days)

    def payload(self, request: HeatmapRequest) -> bytes:
        """The body CoinGlass would send for `request` now (NO_DATA_BODY for a young coin)."""
        if not has_history(request.range, self._history_days.get(base_asset(request.symbol))):
            return NO_DATA_BODY
        end = period_end_at(request, int(self._clock().timestamp()))
        return heatmap_payload(request, end, cell_fraction=self._cell_fraction)


class SandboxSource:
    """`HeatmapSource` over `SandboxHeatmaps`: no network, no key, counts requests like the client,
    and answers a young coin's missing range the way the client does (CoinGlassUnavailableError)."""

    kind: SourceKind = "sandbox"

    def __init__(self, clock: Callable[[], datetime] = utc_now, **options: object) -> None:
        self._heatmaps = SandboxHeatmaps(clock, **options)  # type: ignore[arg-type]
        self.stats = SourceStats()

    async def fetch_heatmap(self, request: HeatmapRequest) -> bytes:
        self.stats.requests_sent += 1
        body = self._heatmaps.payload(request)
        if says_no_data(body):
            raise CoinGlassUnavailableError(
                f"{request.path}?symbol={request.symbol}&range={request.range}: "
                "no data for this range (the coin is younger than it)",
                body=body,
            )
        return body

    async def supported_coins(self) -> list[str]:
        self.stats.requests_sent += 1
        return list(SYNTHETIC_COINS)

    async def supported_exchange_pairs(self) -> dict[str, list[dict[str, str]]]:
        self.stats.requests_sent += 1
        return {
            exchange: [
                {"instrument_id": f"{coin}USDT", "base_asset": coin, "quote_asset": "USDT"}
                for coin in SYNTHETIC_COINS
            ]
            for exchange in SANDBOX_EXCHANGES
        }

    async def aclose(self) -> None:
        return None
