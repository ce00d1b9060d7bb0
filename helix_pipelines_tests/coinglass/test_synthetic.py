"""The one synthetic generator (sandbox, fake server, benches) behaves like the recorded live API."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import orjson
import polars as pl
import pytest

from helix_pipelines.coinglass.errors import CoinGlassUnavailableError
from helix_pipelines.coinglass.sandbox import SandboxHeatmaps, SandboxSource
from helix_pipelines.coinglass.synthetic import (
    LEGACY_FIRST_COLUMN,
    NO_DATA_BODY,
    RECORDED_CELLS,
    SHAPES,
    heatmap_payload,
    period_end_at,
)
from helix_pipelines.contracts.heatmaps import HeatmapRequest, NormalizedSnapshot
from helix_pipelines.contracts.vocabulary import MODELS, RANGES
from helix_pipelines.heatmaps.normalize import normalize_payload

NOW = datetime(2026, 11, 25, 12, 7, 30, tzinfo=UTC)


def at(moment: datetime, **options: object) -> SandboxHeatmaps:
    return SandboxHeatmaps(clock=lambda: moment, **options)  # type: ignore[arg-type]


def snapshot(
    request: HeatmapRequest, moment: datetime = NOW, **options: object
) -> NormalizedSnapshot:
    return normalize_payload(at(moment, **options).payload(request), request, moment)


@pytest.mark.parametrize("range_", RANGES)
def test_every_payload_has_the_recorded_shape_and_size(range_: str) -> None:
    for model in MODELS:
        request = HeatmapRequest("coin", "BTC", model, range_)
        shape = SHAPES[model, range_]
        snap = snapshot(request)
        ledger = snap.ledger
        assert ledger.status == "loaded", ledger.reason
        assert (ledger.n_candles, ledger.n_levels) == (shape.n_candles, shape.n_levels)
        assert ledger.n_cells is not None
        assert abs(ledger.n_cells / RECORDED_CELLS[model, range_] - 1) <= 0.03
        assert snap.cells["x_index"].max() < shape.n_columns
        legacy = model == 2 and range_ in ("180d", "1y")
        assert ledger.schema_variant == ("v3" if legacy else "v4")
        assert ledger.x_axis == ("beyond_candles" if model == 3 else "candles")
        # Candles end at the last full candle period before now.
        last = snap.candles["ts"].max()
        assert NOW - timedelta(seconds=2 * shape.candle_seconds) <= last <= NOW


def test_one_coin_is_about_the_recorded_1_7_million_cells() -> None:
    cells = sum(
        snapshot(HeatmapRequest("coin", "ETH", m, r)).ledger.n_cells or 0
        for m in MODELS
        for r in RANGES
    )
    assert 1_650_000 <= cells <= 1_750_000


@pytest.mark.parametrize(
    ("model", "levels", "half_span"), [(1, 127, 0.045), (2, 79, 0.09), (3, 396, 0.21)]
)
def test_12h_price_axes_are_the_recorded_ones(model: int, levels: int, half_span: float) -> None:
    snap = snapshot(HeatmapRequest("coin", "BTC", model, "12h"))
    prices = snap.cells["price"]
    last_close = snap.candles.sort("ts")["close"][-1]
    assert snap.ledger.n_levels == levels
    assert (prices.max() - prices.min()) / 2 / last_close == pytest.approx(half_span, rel=0.05)


def test_legacy_model_2_carries_the_recorded_keys_and_millisecond_times() -> None:
    request = HeatmapRequest("coin", "BTC", 2, "1y")
    raw = at(NOW).payload(request)
    data = orjson.loads(raw)["data"]
    assert set(data) == {"y", "liq", "prices", "precision", "rangeLow", "rangeHigh", "instrument"}
    assert min(x for x, _, _ in data["liq"]) == LEGACY_FIRST_COLUMN
    snap = normalize_payload(raw, request, NOW)
    assert snap.ledger.candle_ts_unit == "ms"
    extra = orjson.loads(snap.ledger.source_extra or "{}")
    assert extra["precision"] == 2
    assert extra["rangeLow"] == data["y"][0]


def test_counts_change_between_periods_and_bytes_repeat_within_one() -> None:
    request = HeatmapRequest("coin", "SOL", 3, "12h")
    first = at(NOW).payload(request)
    assert at(NOW + timedelta(seconds=60)).payload(request) == first
    later = NOW + timedelta(seconds=300)
    assert at(later).payload(request) != first
    counts = {snapshot(request, NOW + timedelta(minutes=5 * k)).ledger.n_cells for k in range(4)}
    assert len(counts) > 1


def test_cell_fraction_thins_the_cells_and_keeps_the_grid() -> None:
    request = HeatmapRequest("coin", "BTC", 3, "3d")
    full, thin = snapshot(request), snapshot(request, cell_fraction=0.05)
    assert (thin.ledger.n_levels, thin.ledger.n_candles) == (
        full.ledger.n_levels,
        full.ledger.n_candles,
    )
    assert thin.ledger.n_cells == pytest.approx(full.ledger.n_cells * 0.05, rel=0.1)
    # The strongest cells survive: the thin map's total is a large share of the full one's.
    assert thin.cells["liq_usd"].sum() > 0.1 * full.cells["liq_usd"].sum()
    with pytest.raises(ValueError, match="cell_fraction"):
        heatmap_payload(request, period_end_at(request, 1_750_000_000), cell_fraction=0)


def test_candles_of_overlapping_snapshots_agree() -> None:
    request = HeatmapRequest("coin", "BTC", 1, "24h")
    earlier = snapshot(request).candles
    later = snapshot(request, NOW + timedelta(hours=1)).candles
    overlap = earlier.join(later, on="ts", suffix="_later")
    assert overlap.height > 200
    assert (overlap["open"] == overlap["open_later"]).all()
    assert (overlap["close"] == overlap["close_later"]).all()


def test_clusters_persist_between_snapshots() -> None:
    """The strongest price levels an hour later sit where they were (within half a percent)."""
    request = HeatmapRequest("coin", "BTC", 1, "7d")

    def strongest_levels(moment: datetime, n: int) -> list[float]:
        cells = snapshot(request, moment).cells
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
    snap = snapshot(request)
    assert snap.ledger.status == "loaded"
    assert 30_000 < snap.candles["close"].mean() < 300_000  # priced like BTC


def test_young_coins_have_no_data_on_ranges_longer_than_their_history() -> None:
    sandbox = at(NOW, history_days={"NEWCOIN": 2.0})
    assert sandbox.payload(HeatmapRequest("coin", "NEWCOIN", 1, "3d")) == NO_DATA_BODY
    assert sandbox.payload(HeatmapRequest("coin", "NEWCOIN", 1, "24h")) != NO_DATA_BODY
    # The default sandbox has young coins too, as the real universe does.
    assert at(NOW).payload(HeatmapRequest("coin", "HYPE", 2, "1y")) == NO_DATA_BODY
    assert at(NOW).payload(HeatmapRequest("coin", "HYPE", 2, "180d")) != NO_DATA_BODY


def test_sandbox_source_answers_like_the_client() -> None:
    source = SandboxSource(clock=lambda: NOW)

    async def run() -> tuple[bytes, list[str], dict]:
        raw = await source.fetch_heatmap(HeatmapRequest("coin", "BTC", 1, "12h"))
        with pytest.raises(CoinGlassUnavailableError, match=r"HYPE.*1y"):
            await source.fetch_heatmap(HeatmapRequest("coin", "HYPE", 1, "1y"))
        return raw, await source.supported_coins(), await source.supported_exchange_pairs()

    raw, coins, pairs = asyncio.run(run())
    assert orjson.loads(raw)["code"] == "0"
    assert coins[:5] == ["BTC", "ETH", "SOL", "XRP", "DOGE"]
    assert {"instrument_id": "BTCUSDT", "base_asset": "BTC", "quote_asset": "USDT"} in pairs[
        "Binance"
    ]
    assert source.stats.requests_sent == 4
    assert source.kind == "sandbox"
