"""CoinGlass v4 addresses beyond the heatmaps (whose paths `contracts.heatmaps.HeatmapRequest`
knows, so the client, replay and the fake server agree on one naming)."""

from __future__ import annotations

DEFAULT_BASE_URL = "https://open-api-v4.coinglass.com"

SUPPORTED_COINS_PATH = "/api/futures/supported-coins"
SUPPORTED_EXCHANGE_PAIRS_PATH = "/api/futures/supported-exchange-pairs"
