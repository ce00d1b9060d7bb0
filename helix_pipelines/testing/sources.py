"""An in-memory `HeatmapSource` for tests: serves scripted bytes (or errors) per symbol."""

from __future__ import annotations

from collections.abc import Callable

from helix_pipelines.coinglass.errors import CoinGlassError
from helix_pipelines.coinglass.source import SourceKind, SourceStats
from helix_pipelines.contracts.heatmaps import HeatmapRequest

Served = bytes | CoinGlassError | Callable[[HeatmapRequest], bytes]


class ScriptedSource:
    kind: SourceKind = "replay"

    def __init__(
        self,
        by_symbol: dict[str, Served],
        coins: list[str] | None = None,
        exchange_pairs: dict[str, list[dict[str, str]]] | None = None,
    ) -> None:
        self.by_symbol = by_symbol
        self.coins = coins if coins is not None else list(by_symbol)
        self.exchange_pairs = exchange_pairs
        self.stats = SourceStats()
        self.served: dict[str, bytes] = {}

    async def fetch_heatmap(self, request: HeatmapRequest) -> bytes:
        self.stats.requests_sent += 1
        item = self.by_symbol[request.symbol]
        if isinstance(item, CoinGlassError):
            raise item
        raw = item(request) if callable(item) else item
        self.served[request.symbol] = raw
        return raw

    async def supported_coins(self) -> list[str]:
        return self.coins

    async def supported_exchange_pairs(self) -> dict[str, list[dict[str, str]]]:
        """The pairs given, else every coin on Binance (and only there)."""
        if self.exchange_pairs is not None:
            return self.exchange_pairs
        return {
            "Binance": [
                {"instrument_id": f"{c}USDT", "base_asset": c, "quote_asset": "USDT"}
                for c in self.coins
            ]
        }

    async def aclose(self) -> None:
        return None
