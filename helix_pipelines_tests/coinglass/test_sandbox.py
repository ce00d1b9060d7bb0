from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import orjson
import polars as pl
import pytest

from helix_pipelines.coinglass.sandbox import RANGE_SHAPES, SandboxHeatmaps, SandboxSource
from helix_pipelines.contracts.heatmaps import HeatmapRequest
from helix_pipelines.contracts.vocabulary import MODELS, RANGES
from helix_pipelines.heatmaps.normalize import normalize_payload

NOW = datetime(2026, 11, 25, 12, 7, 30, tzinfo=UTC)


def at(moment: datetime) -> SandboxHeatmaps:
    return SandboxHeatmaps(clock=lambda: moment)


@pytest.mark.parametrize("range_", RANGES)
def test_every_range_is_schema_faithful_and_realistically_sized(range_: str) -> None:
    for model in MODELS:
        request = HeatmapRequest("coin", "ETH", model, range_)
        snapshot = normalize_payload(at(NOW).payload(request), request, NOW)
        shape = RANGE_SHAPES[range_]
        assert snapshot.ledger.status == "loaded", snapshot.ledger.reason
        assert snapshot.ledger.n_candles == shape.n_candles
        assert snapshot.ledger.n_levels == shape.n_levels
        expected_variant = "v3" if model == 2 and range_ in ("180d", "1y") else "v4"
        assert snapshot.ledger.schema_variant == expected_variant
        # Candles end at the last full candle period before now.
        last = snapshot.candles["ts"].max()
        assert NOW - timedelta(seconds=2 * shape.candle_seconds) <= last <= NOW


def test_long_ranges_have_tens_of_thousands_of_cells() -> None:
    request = HeatmapRequest("coin", "BTC", 1, "1y")
    snapshot = normalize_payload(at(NOW).payload(request), request, NOW)
    assert snapshot.ledger.n_cells is not None
    assert snapshot.ledger.n_cells > 50_000


def test_same_candle_period_gives_identical_bytes_and_next_period_differs() -> None:
    request = HeatmapRequest("coin", "SOL", 3, "12h")
    first = at(NOW).payload(request)
    same_period = at(NOW + timedelta(seconds=60)).payload(request)
    next_period = at(NOW + timedelta(seconds=300)).payload(request)
    assert first == same_period
    assert first != next_period


def test_candles_of_overlapping_snapshots_agree() -> None:
    request = HeatmapRequest("coin", "BTC", 1, "24h")
    earlier = normalize_payload(at(NOW).payload(request), request, NOW).candles
    later_time = NOW + timedelta(hours=1)
    later = normalize_payload(at(later_time).payload(request), request, later_time).candles
    overlap = earlier.join(later, on="ts", suffix="_later")
    assert overlap.height > 200
    assert (overlap["open"] == overlap["open_later"]).all()
    assert (overlap["close"] == overlap["close_later"]).all()


def test_clusters_persist_between_snapshots() -> None:
    """The strongest price levels an hour later sit where they were (within half a percent)."""
    request = HeatmapRequest("coin", "BTC", 1, "7d")

    def strongest_levels(moment: datetime, n: int) -> list[float]:
        cells = normalize_payload(at(moment).payload(request), request, moment).cells
        profile = (
            cells.group_by("price").agg(pl.col("liq_usd").sum()).sort("liq_usd", descending=True)
        )
        return profile["price"].head(n).to_list()

    before = strongest_levels(NOW, 10)
    after = strongest_levels(NOW + timedelta(hours=1), 20)
    distances = [min(abs(p - q) / p for q in after) for p in before]
    assert max(distances) < 0.005


def test_pair_scope_uses_the_instrument_and_base_asset_prices() -> None:
    request = HeatmapRequest("pair", "BTCUSDT", 1, "3d", exchange="Binance")
    snapshot = normalize_payload(at(NOW).payload(request), request, NOW)
    assert snapshot.ledger.status == "loaded"
    assert 30_000 < snapshot.candles["close"].mean() < 300_000  # priced like BTC


def test_sandbox_source_counts_requests_and_lists_coins() -> None:
    source = SandboxSource(clock=lambda: NOW)

    async def run() -> tuple[bytes, list[str], dict]:
        raw = await source.fetch_heatmap(HeatmapRequest("coin", "BTC", 1, "12h"))
        return raw, await source.supported_coins(), await source.supported_exchange_pairs()

    raw, coins, pairs = asyncio.run(run())
    assert orjson.loads(raw)["code"] == "0"
    assert coins[:5] == ["BTC", "ETH", "SOL", "XRP", "DOGE"]
    assert {"instrument_id": "BTCUSDT", "base_asset": "BTC", "quote_asset": "USDT"} in pairs[
        "Binance"
    ]
    assert source.stats.requests_sent == 3
    assert source.kind == "sandbox"
