"""The radar picture: ranked rows top down, bars coloured by tier with the tier written, and the
target prices written out (never in scientific notation) with their distance from the price."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from PIL import Image

from helix_pipelines.contracts.radar import RadarEntry, Tier
from helix_pipelines.pictures.radar import (
    FRAME_PX,
    ROW_PX,
    TIER_COLOURS,
    WIDTH_PX,
    _figure,
    radar_png,
)

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def entry(
    symbol: str, rank: int | None, tier: Tier, score: float, target: float, up: bool
) -> RadarEntry:
    return RadarEntry(
        refreshed_at=NOW,
        symbol=symbol,
        rank=rank,
        tier=tier,
        score=score,
        direction="up" if up else "down",
        target_price=target,
        imbalance=0.7 if up else 0.3,
        nearest_distance_pct=0.4,
        above_distance_pct=0.52 if up else 3.1,
        below_distance_pct=2.2 if up else 1.75,
    )


# Given out of rank order, with one excluded coin, at prices from 0.00002 to 100,000.
ENTRIES = [
    entry("XRPUSDT", 3, "WARM", 0.41, 2.301234, up=False),
    entry("PEPEUSDT", 1, "HOT", 0.88, 0.0000191234, up=True),
    RadarEntry(refreshed_at=NOW, symbol="ZZZUSDT", excluded_reason="no loaded heatmap"),
    entry("BTCUSDT", 2, "WATCH", 0.63, 101_234.7, up=True),
]


def texts(figure: Figure) -> list[str]:
    return [t.get_text() for axes in figure.axes for t in axes.texts]


def test_rows_are_ranked_top_down_and_coloured_and_named_by_tier() -> None:
    figure = _figure(ENTRIES, top=20, title="radar")
    score_axes = figure.axes[0]
    labels = [t.get_text() for t in score_axes.get_yticklabels()]
    assert labels == ["1. PEPEUSDT", "2. BTCUSDT", "3. XRPUSDT"]
    bottom, top = score_axes.get_ylim()
    assert top < bottom  # position 0, rank 1, is drawn at the top
    colours = [bar.get_facecolor() for bar in score_axes.patches]
    assert colours == [to_rgba(TIER_COLOURS[t]) for t in ("HOT", "WATCH", "WARM")]
    written = texts(figure)
    assert all(tier in written for tier in ("HOT", "WATCH", "WARM"))
    assert "ZZZUSDT" not in " ".join(written + labels)


@pytest.mark.parametrize(
    ("symbol", "shown"),
    [
        ("PEPEUSDT", "↑ 0.000019123 (+0.52%)"),
        ("BTCUSDT", "↑ 101,235 (+0.52%)"),
        ("XRPUSDT", "↓ 2.3012 (-1.75%)"),
    ],
)
def test_targets_are_written_out_with_their_distance(symbol: str, shown: str) -> None:
    written = texts(_figure(ENTRIES, top=20, title="radar"))
    assert shown in written
    assert not any("e-0" in t or "e+0" in t for t in written)


def test_a_price_inside_its_target_zone_says_so_instead_of_a_signed_zero() -> None:
    inside = replace(entry("DOGEUSDT", 1, "HOT", 0.5, 0.2482, up=False), below_distance_pct=0.0)
    written = texts(_figure([inside], top=20, title="radar"))
    assert "↓ 0.24820 (price inside the zone)" in written  # five significant digits
    assert not any("0.00%)" in t for t in written)


def test_the_png_is_one_row_per_coin_drawn() -> None:
    for top, rows in ((20, 3), (2, 2)):
        image = Image.open(io.BytesIO(radar_png(ENTRIES, top=top)))
        assert image.size == (WIDTH_PX, FRAME_PX + ROW_PX * rows)
    figure = _figure(ENTRIES, top=2, title="")
    assert len(figure.axes[0].patches) == 2


def test_nothing_ranked_says_so() -> None:
    figure = _figure(ENTRIES[2:3], top=20, title="")
    assert "no coin ranked" in texts(figure)
    assert Image.open(io.BytesIO(radar_png([], top=20))).size == (WIDTH_PX, FRAME_PX + ROW_PX)
