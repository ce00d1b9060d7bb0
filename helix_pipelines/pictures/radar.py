"""The radar as a picture: the top coins by rank, their score coloured by tier, how far the
imbalance leans and which way, and the distance to the nearest major zone."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib as mpl

mpl.use("Agg")  # headless: no display on servers, nothing to pick up from the environment

from matplotlib.figure import Figure
from matplotlib.patches import Patch

from helix_pipelines.contracts.radar import TIERS, RadarEntry

TIER_COLOURS = {"HOT": "#d62728", "WATCH": "#ff7f0e", "WARM": "#bcbd22", "SAFE": "#7f7f7f"}
WIDTH_PX, DPI = 1100, 100


def radar_png(entries: Sequence[RadarEntry], *, top: int = 20, title: str = "") -> bytes:
    """PNG of the `top` ranked entries (rank 1 at the top); WIDTH_PX wide, 28 px per coin."""
    ranked = [e for e in entries if e.rank is not None][:top]
    rows = max(len(ranked), 1)
    height_px = 140 + 28 * rows
    figure = Figure(figsize=(WIDTH_PX / DPI, height_px / DPI), dpi=DPI)
    score_axes, lean_axes = figure.subplots(1, 2, sharey=True, width_ratios=(3, 2))
    labels = [f"{e.rank}. {e.symbol}" for e in ranked]
    positions = list(range(len(ranked)))
    score_axes.barh(
        positions,
        [e.score or 0.0 for e in ranked],
        color=[TIER_COLOURS[e.tier or "SAFE"] for e in ranked],
    )
    for y, e in zip(positions, ranked, strict=True):
        arrow = "\u2191" if e.direction == "up" else "\u2193"
        score_axes.text(
            (e.score or 0.0) + 0.01,
            y,
            f"{arrow} {e.nearest_distance_pct:.2f}% to {e.target_price:.6g}",
            va="center",
            fontsize=8,
        )
    score_axes.set_yticks(positions, labels)
    score_axes.invert_yaxis()
    score_axes.set_xlim(0, 1.25)
    score_axes.set_xlabel("radar score (0-1)")
    score_axes.legend(
        handles=[Patch(color=TIER_COLOURS[t], label=t) for t in TIERS],
        loc="lower right",
        fontsize=8,
        title="tier (nearest major zone)",
        title_fontsize=8,
    )
    leans = [0.0 if e.imbalance is None else e.imbalance - 0.5 for e in ranked]
    lean_axes.barh(positions, leans, color=["#d62728" if lean > 0 else "#2ca02c" for lean in leans])
    lean_axes.axvline(0, color="black", linewidth=0.8)
    lean_axes.set_xlim(-0.5, 0.5)
    lean_axes.set_xticks([-0.5, -0.25, 0, 0.25, 0.5], ["0", "0.25", "0.5", "0.75", "1"])
    lean_axes.set_xlabel("imbalance: share of liquidation USD above the price")
    lean_axes.set_title("green: more longs to liquidate below, red: more shorts above", fontsize=8)
    if not ranked:
        score_axes.text(0.5, 0, "no coin ranked", ha="center", va="center")
    figure.suptitle(title or "Liquidation radar", fontsize=11)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
