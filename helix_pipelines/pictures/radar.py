"""The radar as a picture: the top coins by rank (rank 1 at the top), their score as a bar
coloured by tier, a table of tier, distance to the nearest major zone and target price, and how
far the imbalance leans and which way.

The words sit next to the colours (the tier is written, not only coloured), so the picture reads
without telling colours apart, and prices use the heatmap picture's format (`format_price`),
which reads for 0.00001 as for 100,000 and is never in scientific notation.
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from helix_pipelines.contracts.radar import TIERS, RadarEntry
from helix_pipelines.pictures.heatmap import format_price
from helix_pipelines.pictures.png import figure_png

TIER_COLOURS = {"HOT": "#d62728", "WATCH": "#ff7f0e", "WARM": "#bcbd22", "SAFE": "#7f7f7f"}
SHORTS_ABOVE, LONGS_BELOW = "#d62728", "#2ca02c"
WIDTH_PX, DPI = 1100, 100
ROW_PX, FRAME_PX = 28, 140
"""A picture of n coins is FRAME_PX + ROW_PX x n pixels high (one row's worth for none)."""
# Pixels, left to right: rank labels, score bars, the table, the lean bars; _GAP between.
_LEFT, _SCORE, _TABLE, _LEAN, _GAP = 120, 380, 320, 220, 10
_TOP, _BOTTOM = 78, 48  # title and tier legend; axis labels
_TABLE_COLUMNS = ((0.0, "tier"), (0.17, "nearest zone"), (0.5, "target (from the price)"))
_FONT = 8.5


def radar_png(entries: Sequence[RadarEntry], *, top: int = 20, title: str = "") -> bytes:
    """PNG of the `top` ranked entries (excluded ones are not drawn), WIDTH_PX wide and
    FRAME_PX + ROW_PX per coin high."""
    return figure_png(_figure(entries, top=top, title=title), DPI)


def _figure(entries: Sequence[RadarEntry], *, top: int, title: str) -> Figure:
    """The picture as a figure, so tests can read what it says."""
    ranked = sorted((e for e in entries if e.rank is not None), key=lambda e: e.rank or 0)[:top]
    rows = max(len(ranked), 1)
    height_px = FRAME_PX + ROW_PX * rows
    figure = Figure(figsize=(WIDTH_PX / DPI, height_px / DPI), dpi=DPI)
    FigureCanvasAgg(figure)  # its own headless canvas: no pyplot, no global backend state
    figure.suptitle(title or "Liquidation radar", fontsize=11, y=1 - 6 / height_px, va="top")
    bottom, height = _BOTTOM / height_px, (height_px - _TOP - _BOTTOM) / height_px
    # The table sits close to the bars it explains; the lean bars are a panel of their own.
    lefts = [_LEFT, _LEFT + _SCORE + _GAP, _LEFT + _SCORE + _GAP + _TABLE + 2 * _GAP]
    score_axes, table_axes, lean_axes = (
        figure.add_axes((left / WIDTH_PX, bottom, width / WIDTH_PX, height))
        for left, width in zip(lefts, (_SCORE, _TABLE, _LEAN), strict=True)
    )
    for axes in (score_axes, table_axes, lean_axes):
        axes.set_ylim(rows - 0.5, -0.5)  # rank 1 at the top
    _scores(score_axes, ranked)
    _table(table_axes, ranked)
    _leans(lean_axes, ranked)
    if not ranked:
        score_axes.text(0.5, 0, "no coin ranked", ha="center", va="center")
    return figure


def _scores(axes: Axes, ranked: Sequence[RadarEntry]) -> None:
    positions = range(len(ranked))
    scores = [e.score or 0.0 for e in ranked]
    axes.barh(positions, scores, color=[TIER_COLOURS[e.tier or "SAFE"] for e in ranked])
    for y, score in zip(positions, scores, strict=True):
        axes.text(score + 0.01, y, f"{score:.2f}", va="center", fontsize=_FONT)
    axes.set_yticks(list(positions), [f"{e.rank}. {e.symbol}" for e in ranked])
    axes.set_xlim(0, 1.08)  # room for the score written after a full bar
    axes.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    axes.set_xlabel("radar score (0-1)", fontsize=_FONT + 0.5)
    axes.legend(
        handles=[Patch(color=TIER_COLOURS[t], label=t) for t in TIERS],
        loc="lower left",
        bbox_to_anchor=(0, 1.01),
        ncols=len(TIERS),
        fontsize=_FONT,
        title="tier: how near the nearest major zone is",
        title_fontsize=_FONT,
        alignment="left",
        frameon=False,
    )


def _table(axes: Axes, ranked: Sequence[RadarEntry]) -> None:
    """Per coin: the tier in words, the distance that set it, and the price the radar expects
    to be drawn to (the near edge of the major zone that way) with its distance from the price."""
    axes.set_axis_off()
    for x, heading in _TABLE_COLUMNS:
        axes.text(x, -0.7, heading, fontsize=_FONT, fontweight="bold", va="bottom")
    tier_x, nearest_x, target_x = (x for x, _ in _TABLE_COLUMNS)
    for y, entry in enumerate(ranked):
        tier = entry.tier or "SAFE"
        row = {"va": "center", "fontsize": _FONT + 0.5}
        axes.text(tier_x, y, tier, color=TIER_COLOURS[tier], fontweight="bold", **row)
        if entry.nearest_distance_pct is not None:
            axes.text(nearest_x, y, f"{entry.nearest_distance_pct:.2f}%", **row)
        if entry.target_price is not None:
            axes.text(target_x, y, _target_text(entry, entry.target_price), **row)


def _target_text(entry: RadarEntry, target: float) -> str:
    """'↑ 100,123 (+0.52%)': which way, the target price, and how far it is from the price."""
    up = entry.direction == "up"
    distance = entry.above_distance_pct if up else entry.below_distance_pct
    text = f"{'↑' if up else '↓'} {format_price(target)}"
    if distance is None:
        return text
    if round(distance, 2) == 0:
        # The price is inside the zone: a signed 0.00% (and '-0.00%') says nothing.
        return f"{text} (price inside the zone)"
    return f"{text} ({'+' if up else '-'}{distance:.2f}%)"


def _leans(axes: Axes, ranked: Sequence[RadarEntry]) -> None:
    leans = [0.0 if e.imbalance is None else e.imbalance - 0.5 for e in ranked]
    axes.barh(
        range(len(ranked)),
        leans,
        color=[SHORTS_ABOVE if lean > 0 else LONGS_BELOW for lean in leans],
    )
    axes.axvline(0, color="black", linewidth=0.8)
    axes.set_xlim(-0.5, 0.5)
    axes.set_xticks([-0.5, -0.25, 0, 0.25, 0.5], ["0", "0.25", "0.5", "0.75", "1"])
    axes.set_yticks([])
    axes.set_xlabel("imbalance: USD share above the price", fontsize=_FONT + 0.5)
    axes.legend(
        handles=[
            Patch(color=SHORTS_ABOVE, label="more shorts to liquidate above"),
            Patch(color=LONGS_BELOW, label="more longs to liquidate below"),
        ],
        loc="lower left",
        bbox_to_anchor=(0, 1.01),
        fontsize=_FONT,
        frameon=False,
    )
