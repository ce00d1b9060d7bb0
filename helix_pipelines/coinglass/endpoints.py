"""CoinGlass v4 vocabulary: models, ranges, scopes, and the request that names one heatmap.

A `HeatmapRequest` is the key of one snapshot (scope, exchange, symbol, model, range); it knows
its URL path and query so the HTTP client, the sandbox and the replay source agree on one naming.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DEFAULT_BASE_URL = "https://open-api-v4.coinglass.com"

MODELS: tuple[int, ...] = (1, 2, 3)
RANGES: tuple[str, ...] = ("12h", "24h", "3d", "7d", "30d", "90d", "180d", "1y")

Scope = Literal["coin", "pair"]

SUPPORTED_COINS_PATH = "/api/futures/supported-coins"
SUPPORTED_EXCHANGE_PAIRS_PATH = "/api/futures/supported-exchange-pairs"


@dataclass(frozen=True, slots=True)
class HeatmapRequest:
    """One heatmap: coin scope aggregates all exchanges (exchange is ''), pair scope is one venue."""

    scope: Scope
    symbol: str
    model: int
    range: str
    exchange: str = ""

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.range not in RANGES:
            raise ValueError(f"range must be one of {RANGES}, got {self.range!r}")
        if self.scope not in ("coin", "pair"):
            raise ValueError(f"scope must be 'coin' or 'pair', got {self.scope!r}")
        if not self.symbol:
            raise ValueError("symbol must not be empty")
        if self.scope == "pair" and not self.exchange:
            raise ValueError(f"pair-scope heatmap for {self.symbol} needs an exchange")
        if self.scope == "coin" and self.exchange:
            raise ValueError(f"coin-scope heatmap for {self.symbol} must not name an exchange")

    @property
    def path(self) -> str:
        kind = "aggregated-heatmap" if self.scope == "coin" else "heatmap"
        return f"/api/futures/liquidation/{kind}/model{self.model}"

    @property
    def params(self) -> dict[str, str]:
        params = {"symbol": self.symbol, "range": self.range}
        if self.scope == "pair":
            params["exchange"] = self.exchange
        return params

    @property
    def label(self) -> str:
        """Short human name used in logs and metadata, e.g. 'BTC m2 3d' or 'Binance:BTCUSDT m1 1y'."""
        who = f"{self.exchange}:{self.symbol}" if self.scope == "pair" else self.symbol
        return f"{who} m{self.model} {self.range}"

    @property
    def capture_name(self) -> str:
        """File name of this request in a capture/replay directory (one JSON file per request)."""
        kind = "aggregated-heatmap" if self.scope == "coin" else f"heatmap_{self.exchange}"
        return f"{kind}_model{self.model}_{self.symbol}_{self.range}.json"
