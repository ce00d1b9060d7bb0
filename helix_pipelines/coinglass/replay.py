"""Replay source: serve payloads recorded earlier, one JSON file per request.

A capture directory written by `CoinGlassClient(capture_dir=...)` (or by hand) is replayed as is:
file names follow `HeatmapRequest.capture_name`, plus `supported-coins.json` and
`supported-exchange-pairs.json`. Bytes are served untouched, so a recorded bad payload is
quarantined on replay exactly as it would have been live, and a recorded "no data" answer raises
CoinGlassUnavailableError as the live client does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from helix_pipelines.coinglass.errors import (
    CoinGlassPayloadError,
    CoinGlassRequestError,
    CoinGlassUnavailableError,
    says_no_data,
)
from helix_pipelines.coinglass.source import SourceKind, SourceStats
from helix_pipelines.contracts.heatmaps import HeatmapRequest


class ReplaySource:
    """`HeatmapSource` over a directory of recorded responses."""

    kind: SourceKind = "replay"

    def __init__(self, directory: Path) -> None:
        if not directory.is_dir():
            raise FileNotFoundError(f"replay directory {directory} does not exist")
        self.directory = directory
        self.stats = SourceStats()

    def _read(self, name: str) -> bytes:
        path = self.directory / name
        if not path.is_file():
            raise CoinGlassRequestError(
                f"replay directory {self.directory} has no recording {name}"
            )
        self.stats.requests_sent += 1
        return path.read_bytes()

    async def fetch_heatmap(self, request: HeatmapRequest) -> bytes:
        body = self._read(request.capture_name)
        if says_no_data(body):
            raise CoinGlassUnavailableError(
                f"recording {request.capture_name}: CoinGlass had no data for it", body=body
            )
        return body

    def _data(self, name: str) -> Any:
        try:
            return orjson.loads(self._read(name))["data"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise CoinGlassPayloadError(
                f"recording {self.directory / name} is not a CoinGlass envelope"
            ) from None

    async def supported_coins(self) -> list[str]:
        coins = self._data("supported-coins.json")
        if not isinstance(coins, list):
            raise CoinGlassPayloadError(
                f"recording supported-coins.json in {self.directory} is not a list"
            )
        return [str(c) for c in coins]

    async def supported_exchange_pairs(self) -> dict[str, list[dict[str, str]]]:
        pairs = self._data("supported-exchange-pairs.json")
        if not isinstance(pairs, dict):
            raise CoinGlassPayloadError(
                f"recording supported-exchange-pairs.json in {self.directory} is not a mapping"
            )
        return pairs

    async def aclose(self) -> None:
        return None

    def recorded_requests(self) -> list[str]:
        """Names of the heatmap recordings present, for status output."""
        return sorted(p.name for p in self.directory.glob("*heatmap*_model*.json"))
