"""A liquidation heatmap as a picture a trader can read levels off: the grid (time left to right,
real level prices bottom to top, USD on a log colour scale with a labelled colour bar), the
candle closes, the last price, and marked price levels (clusters, a signal's entry, stop and
take profit), each labelled with its price.

Why matplotlib: axes, ticks and a colour bar are what make a price readable off the picture, and
placing them by hand in pixels is what a plotting library is for. Drawn on a `Figure` with its own
Agg canvas (no pyplot, no global backend state), so rendering is headless and thread-safe.

Marks outside the grid's price span are skipped (not drawn, not in `labels`): widening the axis
for a far-away level would squash the map the picture is for, and the levels the analytics mark
come from a grid, so in practice only a far stop or target is ever left out. The layout is made
for the Dagster UI's ~960 x 540; below ~700 px wide long labels leave the map narrow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import polars as pl
from matplotlib import colormaps
from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.collections import QuadMesh
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import ConnectionPatch
from matplotlib.patheffects import withStroke
from matplotlib.ticker import Formatter, FuncFormatter, LogLocator, MaxNLocator, NullFormatter
from matplotlib.transforms import offset_copy

from helix_pipelines.pictures.png import figure_png

MarkKind = Literal[
    "shorts_liquidated", "longs_liquidated", "cluster", "entry", "stop_loss", "take_profit"
]


@dataclass(frozen=True, slots=True)
class PriceMark:
    """One price level drawn across the map, labelled '<kind in words> <price>[ · <note>]'."""

    price: float
    kind: MarkKind
    note: str = ""  # e.g. "consensus 0.83", "model 2 24h"


@dataclass(frozen=True, slots=True)
class HeatmapPicture:
    png: bytes
    width_px: int
    height_px: int
    labels: tuple[str, ...]  # every price label drawn, in drawing order (the last price first)


_LineStyle = str | tuple[int, tuple[int, int]]


@dataclass(frozen=True, slots=True)
class _Style:
    words: str
    colour: str
    linestyle: _LineStyle


# Colours keep clear of the colormap's black-red-yellow and every line has a black outline, so a
# line reads over any cell; trade levels are solid, liquidation levels dashed, the last price
# dotted white. Labels are boxes of the line's colour, so they double as the legend.
_DASHED: _LineStyle = (0, (7, 4))
_STYLES: dict[MarkKind, _Style] = {
    "shorts_liquidated": _Style("shorts liquidated", "#ff5c93", _DASHED),
    "longs_liquidated": _Style("longs liquidated", "#3ddc84", _DASHED),
    "cluster": _Style("cluster", "#c9a0ff", _DASHED),
    "entry": _Style("entry", "#4da3ff", "-"),
    "stop_loss": _Style("stop", "#ff9a1f", "-"),
    "take_profit": _Style("take profit", "#2de2e6", "-"),
}
_TRADE_KINDS: frozenset[MarkKind] = frozenset({"entry", "stop_loss", "take_profit"})
_LAST = _Style("last", "#ffffff", (0, (2, 2)))
_OUTLINE = [withStroke(linewidth=2.6, foreground="black")]

COLORMAP = "inferno"
COLOUR_DECADES = 3
"""The colour scale spans the top three decades of USD; smaller cells draw as empty, so the
clusters that matter stand out, as on CoinGlass's own map."""
MAX_MARKS = 12
"""Marks drawn at most (trade levels first, then the others in the order given): more labels
than this do not read, whatever the room."""
MAX_LABEL_CHARS = 48
"""A longer label (a long note) is cut with an ellipsis, so the map keeps most of the width."""

DPI = 100
_FONT = 7.5  # points: labels and ticks
_LEFT, _TOP, _BOTTOM = 80, 64, 44  # margins in pixels: price ticks, title, time ticks
_BAR_WIDTH, _BAR_ROOM, _BAR_GAP = 14, 66, 10  # colour bar, room right of it for its ticks, gap
_LABEL_PAD = 8  # pixels between the map's right edge and the labels
_LABEL_GAP = 17  # pixels from one label's centre to the next: a boxed label's height
_DAY_US = 86_400e6  # matplotlib dates count days since 1970; cells carry epoch microseconds


def format_price(price: float, step: float | None = None, *, digits: int = 5) -> str:
    """`price` with thousands separators, at least `digits` significant digits and enough
    decimals to tell apart prices `step` apart; never in scientific notation, so one format
    reads for a coin at 0.00001 and one at 100,000 ('100,097', '2.3012', '0.000019123')."""
    magnitude = math.floor(math.log10(abs(price))) if price else 0
    decimals = max(0, digits - 1 - magnitude)
    if step is not None and step > 0:
        # Rounded first so a step of exactly 0.1 (0.09999... in binary) asks for one decimal.
        decimals = max(decimals, math.ceil(round(-math.log10(step), 9)))
    return f"{price:,.{decimals}f}"


def _whole(value: float) -> bool:
    """A positive value that is a whole number but for float noise."""
    return round(value) >= 1 and abs(value - round(value)) < 1e-6 * value


def format_usd(value: float) -> str:
    """'$950', '$12k', '$3.5M': the colour bar's ticks."""
    for suffix, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"${value / size:.3g}{suffix}"
    return f"${value:.3g}"


class _PriceFormatter(Formatter):
    """Price ticks written exactly, with as many decimals as their spacing needs and no more."""

    def __init__(self) -> None:
        self._step: float | None = None

    def set_locs(self, locs: Sequence[float]) -> None:
        super().set_locs(locs)
        if len(locs) > 1:
            # Ticks are multiples of their spacing, so the decimals that write the spacing
            # exactly write every tick: 0.025 takes 3 (the 2 that tell ticks apart would
            # print 1.625 as 1.62).
            spacing = float(np.min(np.diff(locs)))
            exact = next((d for d in range(12) if _whole(spacing * 10**d)), 12)
            self._step = 10.0**-exact
        else:
            self._step = None

    def __call__(self, x: float, pos: int | None = None) -> str:
        return format_price(x, self._step, digits=1)


def heatmap_grid(cells: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(grid[level, column] of USD, ascending level prices) of one snapshot's cells; columns
    are the cells' `x_index`, levels the prices that hold at least one cell."""
    levels = np.sort(cells["price"].unique().to_numpy())
    grid = np.zeros((len(levels), int(cells["x_index"].max()) + 1))
    rows = np.searchsorted(levels, cells["price"].to_numpy())
    np.add.at(grid, (rows, cells["x_index"].to_numpy()), cells["liq_usd"].to_numpy())
    return grid, levels


def heatmap_picture(
    cells: pl.DataFrame,
    candles: pl.DataFrame,
    *,
    symbol: str,
    model: int,
    range_: str,
    fetched_at: datetime,
    source_kind: str,
    marks: Sequence[PriceMark] = (),
    width_px: int = 960,
    height_px: int = 540,
) -> HeatmapPicture:
    """PNG of one snapshot, exactly `width_px` x `height_px`, and the price labels it draws.

    `cells` and `candles` are the snapshot's frames (`GRID_SCHEMA`, `CANDLES_SCHEMA`: only
    `ts` and `close` are read from the candles); `source_kind` is 'sandbox', 'replay' or
    'coinglass', and sandbox pictures carry a banner saying the data is synthetic. A naive
    `fetched_at` is taken as UTC. No cells draws a picture saying so.
    """
    figure, labels = _figure(
        cells,
        candles,
        symbol=symbol,
        model=model,
        range_=range_,
        fetched_at=fetched_at,
        source_kind=source_kind,
        marks=marks,
        width_px=width_px,
        height_px=height_px,
    )
    return HeatmapPicture(figure_png(figure, DPI), width_px, height_px, labels)


def _figure(
    cells: pl.DataFrame,
    candles: pl.DataFrame,
    *,
    symbol: str,
    model: int,
    range_: str,
    fetched_at: datetime,
    source_kind: str,
    marks: Sequence[PriceMark] = (),
    width_px: int = 960,
    height_px: int = 540,
) -> tuple[Figure, tuple[str, ...]]:
    """The picture as a figure (tests read its text artists) and the price labels drawn on it."""
    figure = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
    # Its own headless canvas; labels are measured by the same renderer that draws them.
    renderer = FigureCanvasAgg(figure).get_renderer()
    _header(figure, symbol, model, range_, fetched_at, source_kind)
    bottom, height = _BOTTOM / height_px, (height_px - _TOP - _BOTTOM) / height_px
    bar_left = (width_px - _BAR_WIDTH - _BAR_ROOM) / width_px
    left = _LEFT / width_px
    axes = figure.add_axes((left, bottom, bar_left - _BAR_GAP / width_px - left, height))
    if cells.is_empty():
        axes.set_axis_off()
        axes.text(0.5, 0.5, "no cells", ha="center", va="center", fontsize=14, color="#555555")
        return figure, ()
    grid, levels = heatmap_grid(cells)
    price_edges = _level_edges(levels)
    x_edges, times_known = _column_edges(cells, candles, grid.shape[1])
    axes.set_ylim(price_edges[0], price_edges[-1])
    axes.set_xlim(x_edges[0], x_edges[-1])
    _price_axis(axes)
    _time_axis(axes, times_known)
    last = _close_line(axes, candles, x_edges, times_known)
    step = float(np.median(np.diff(levels))) if len(levels) > 1 else None
    plan = _label_plan(last, marks, price_edges, step)
    labels = _draw_labels(figure, axes, plan, price_edges, renderer)
    # Pooled to the map's width once the labels have taken theirs (pooling keeps the outer edges).
    grid, x_edges = _pool_columns(grid, x_edges, pixels=axes.bbox.width)
    vmax = float(grid.max()) or 1.0  # all-zero cells still draw, as an empty map
    cmap = colormaps[COLORMAP]
    cmap = cmap.with_extremes(bad=cmap(0.0), under=cmap(0.0))  # zero and tiny cells: empty
    mesh = axes.pcolormesh(
        x_edges,
        price_edges,
        grid,
        cmap=cmap,
        norm=LogNorm(vmin=vmax / 10**COLOUR_DECADES, vmax=vmax),
        shading="flat",
        antialiased=False,
    )
    _colour_bar(figure, mesh, figure.add_axes((bar_left, bottom, _BAR_WIDTH / width_px, height)))
    return figure, labels


def _header(
    figure: Figure, symbol: str, model: int, range_: str, fetched_at: datetime, source_kind: str
) -> None:
    """Title (what and when), and for sandbox data a banner no one can miss."""
    at = fetched_at.replace(tzinfo=UTC) if fetched_at.tzinfo is None else fetched_at
    width, height = figure.bbox.width, figure.bbox.height
    figure.text(
        _LEFT / width,
        1 - 8 / height,
        f"{symbol} liquidation heatmap · model {model} · {range_}",
        fontsize=11,
        fontweight="bold",
        va="top",
        parse_math=False,
    )
    figure.text(
        _LEFT / width,
        1 - 28 / height,
        f"fetched {at.astimezone(UTC):%Y-%m-%d %H:%M} UTC · source: {source_kind}",
        fontsize=8.5,
        va="top",
        color="#333333",
        parse_math=False,
    )
    if source_kind == "sandbox":
        figure.text(
            1 - 12 / width,
            1 - 10 / height,
            "SANDBOX DATA — synthetic, not market data",
            fontsize=10,
            fontweight="bold",
            color="white",
            ha="right",
            va="top",
            bbox={"boxstyle": "round,pad=0.4", "facecolor": "#c62828", "edgecolor": "none"},
        )


def _level_edges(levels: np.ndarray) -> np.ndarray:
    """Row edges halfway between neighbouring levels (an outer row reaches as far past its level
    as its inner edge is before it): a row holds its level's price and the prices nearer to that
    level than to any other, so a price read off the axis is in the row of its nearest level,
    however the levels are spaced."""
    if len(levels) == 1:
        half = levels[0] * 1e-3  # a lone level: a thin band around its price
        return np.array([levels[0] - half, levels[0] + half])
    middles = (levels[1:] + levels[:-1]) / 2
    return np.concatenate([[2 * levels[0] - middles[0]], middles, [2 * levels[-1] - middles[-1]]])


def _column_edges(
    cells: pl.DataFrame, candles: pl.DataFrame, n_columns: int
) -> tuple[np.ndarray, bool]:
    """x edges of the columns: candle start times (matplotlib dates) when x names candles, else
    the column index; and whether they are times.

    A column starts at the time its cells carry (the start of the candle its x names); a column
    without cells gets the time between its neighbours, so an empty column shifts nothing.
    """
    if cells["candle_ts"].null_count():
        return np.arange(n_columns + 1, dtype=np.float64) - 0.5, False
    known = (
        cells.select("x_index", pl.col("candle_ts").dt.epoch("us"))
        .unique("x_index")
        .sort("x_index")
    )
    xs = known["x_index"].to_numpy().astype(np.float64)
    starts = known["candle_ts"].to_numpy().astype(np.float64)
    period = _candle_period_us(starts, xs, candles)
    columns = np.arange(n_columns + 1, dtype=np.float64)
    # np.interp holds its end values outside the known columns: extend those by the period.
    edges = np.interp(columns, xs, starts)
    edges = np.where(columns < xs[0], starts[0] - (xs[0] - columns) * period, edges)
    edges = np.where(columns > xs[-1], starts[-1] + (columns - xs[-1]) * period, edges)
    return edges / _DAY_US, True


def _candle_period_us(starts: np.ndarray, xs: np.ndarray, candles: pl.DataFrame) -> float:
    """The candle length: from the cells' own columns, else from the candles, else one minute
    (a one-candle snapshot: its one column needs some width)."""
    if len(xs) > 1:
        return float(np.median(np.diff(starts) / np.diff(xs)))
    times = np.unique(candles["ts"].dt.epoch("us").to_numpy())
    return float(np.median(np.diff(times))) if len(times) > 1 else 60e6


def _pool_columns(
    grid: np.ndarray, x_edges: np.ndarray, *, pixels: float
) -> tuple[np.ndarray, np.ndarray]:
    """Fewer than two columns per pixel of the map: more cannot be seen, only slow the drawing
    (and merging fewer would leave columns wider than a pixel where none needed to be).

    Neighbouring columns merge by their maximum, so a cluster keeps its USD and its colour; rows
    never merge, so no price moves.
    """
    factor = int(grid.shape[1] // max(pixels, 1))
    if factor <= 1:
        return grid, x_edges
    groups = math.ceil(grid.shape[1] / factor)
    padded = np.zeros((grid.shape[0], groups * factor))
    padded[:, : grid.shape[1]] = grid
    pooled = padded.reshape(grid.shape[0], groups, factor).max(axis=2)
    return pooled, np.append(x_edges[:-1:factor], x_edges[-1])


def _price_axis(axes: Axes) -> None:
    axes.yaxis.set_major_locator(MaxNLocator(nbins=10, steps=[1, 2, 2.5, 5, 10]))
    axes.yaxis.set_major_formatter(_PriceFormatter())
    axes.tick_params(labelsize=_FONT)
    axes.set_ylabel("price", fontsize=_FONT + 0.5)


def _time_axis(axes: Axes, times_known: bool) -> None:
    if times_known:
        locator = mdates.AutoDateLocator(tz=UTC, minticks=4, maxticks=9)
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))
        axes.xaxis.get_offset_text().set_fontsize(_FONT)
        axes.set_xlabel("time (UTC) · white line: candle close", fontsize=_FONT + 0.5)
    else:
        axes.xaxis.set_major_locator(MaxNLocator(nbins=10, integer=True))
        axes.set_xlabel("column (x beyond candles: no time known)", fontsize=_FONT + 0.5)


def _close_line(
    axes: Axes, candles: pl.DataFrame, x_edges: np.ndarray, times_known: bool
) -> float | None:
    """Draw the closes of the candles inside the map's time span; return the last price.

    A close is drawn at its candle's end, which is when price was there. When x is no time, no
    candle can be placed on the map; the last price is then the snapshot's last close.
    """
    if candles.is_empty():
        return None
    ordered = candles.sort("ts")
    closes = ordered["close"].to_numpy()
    if not times_known:
        return float(closes[-1])
    starts = ordered["ts"].dt.epoch("us").to_numpy() / _DAY_US
    inside = (starts >= x_edges[0]) & (starts < x_edges[-1])
    if not inside.any():
        return None
    period = float(np.median(np.diff(starts))) if len(starts) > 1 else 0.0
    axes.plot(
        np.minimum(starts[inside] + period, x_edges[-1]),
        closes[inside],
        color="#f0f0f0",
        linewidth=1.1,
        path_effects=[withStroke(linewidth=2.4, foreground="black")],
    )
    return float(closes[inside][-1])


@dataclass(frozen=True, slots=True)
class _Label:
    price: float
    text: str
    style: _Style


def _label_plan(
    last: float | None, marks: Sequence[PriceMark], price_edges: np.ndarray, step: float | None
) -> list[_Label]:
    """What gets a line and a label, in drawing order, which is importance order: the last
    price, then trade levels, then the other marks in the order given; at most MAX_MARKS marks,
    none off the price axis."""
    low, high = price_edges[0], price_edges[-1]
    plan = []
    if last is not None and low <= last <= high:
        plan.append(_Label(last, f"last {format_price(last, step)}", _LAST))
    by_importance = sorted(marks, key=lambda m: m.kind not in _TRADE_KINDS)  # stable sort
    shown = [m for m in by_importance if math.isfinite(m.price) and low <= m.price <= high]
    for mark in shown[:MAX_MARKS]:
        style = _STYLES[mark.kind]
        text = f"{style.words} {format_price(mark.price, step)}"
        if mark.note:
            text = f"{text} · {mark.note}"
        if len(text) > MAX_LABEL_CHARS:
            text = text[: MAX_LABEL_CHARS - 1] + "…"
        plan.append(_Label(mark.price, text, style))
    return plan


def _draw_labels(
    figure: Figure,
    axes: Axes,
    plan: list[_Label],
    price_edges: np.ndarray,
    renderer: RendererAgg,
) -> tuple[str, ...]:
    """Lines across the map and boxed labels right of it, nudged apart where prices crowd, with
    a leader to the line; the map then narrows until the longest label fits. Returns the label
    texts drawn."""
    if not plan:
        return ()
    map_box = axes.get_window_extent(renderer)
    plan = plan[: max(1, int(map_box.height // _LABEL_GAP))]  # the least important go
    low, high = price_edges[0], price_edges[-1]
    wanted = [(label.price - low) / (high - low) * map_box.height for label in plan]
    placed = _spread(wanted, _LABEL_GAP, _LABEL_GAP / 2, map_box.height - _LABEL_GAP / 2)
    right = map_box.x1
    for label, y_wanted, y_placed in zip(plan, wanted, placed, strict=True):
        style = label.style
        axes.axhline(
            label.price,
            color=style.colour,
            linestyle=style.linestyle,
            linewidth=1.3,
            path_effects=_OUTLINE,
        )
        offset = (_LABEL_PAD * 72 / DPI, (y_placed - y_wanted) * 72 / DPI)  # points
        text = axes.annotate(
            label.text,
            xy=(1, label.price),
            xycoords=axes.get_yaxis_transform(),
            xytext=offset,
            textcoords="offset points",
            va="center",
            fontsize=_FONT,
            parse_math=False,
            annotation_clip=False,
            zorder=5,
            bbox={"boxstyle": "square,pad=0.25", "facecolor": style.colour, "linewidth": 0.6},
        )
        # The leader from the line's end to its label is an artist of its own, drawn under
        # every label: a nudged label's leader never crosses another label's text.
        at_line = axes.get_yaxis_transform()
        at_label = offset_copy(at_line, figure, *offset, units="points")
        leader = ConnectionPatch(
            (1, label.price), (1, label.price), at_line, at_label, color="#444444", linewidth=0.7
        )
        leader.set_zorder(4)
        axes.add_artist(leader)
        right = max(right, text.get_tightbbox(renderer).x1)
    # The colour bar keeps its place; the map gives up the width the labels need. The labels
    # hang off the map's right edge, so they move with it.
    box = axes.get_position()
    axes.set_position(
        (box.x0, box.y0, box.width - (right - map_box.x1) / figure.bbox.width, box.height)
    )
    return tuple(label.text for label in plan)


def _spread(wanted: Sequence[float], gap: float, low: float, high: float) -> list[float]:
    """Positions as near `wanted` as they can be while at least `gap` apart inside [low, high],
    in the same order as `wanted`. Crowded labels form a run centred on their wanted positions
    (pushed inside the bounds), and runs that then touch merge and centre again, so a crowd
    spreads evenly about where it wants to be instead of piling up on one side. Callers cap the
    count so that len(wanted) * gap fits the bounds."""

    def run_bottom(members: list[int]) -> float:
        centred = sum(wanted[m] - k * gap for k, m in enumerate(members)) / len(members)
        return min(max(centred, low), high - (len(members) - 1) * gap)

    runs: list[tuple[list[int], float]] = []  # (members bottom to top, bottom position)
    for index in sorted(range(len(wanted)), key=lambda i: wanted[i]):
        members = [index]
        bottom = run_bottom(members)
        while runs and runs[-1][1] + len(runs[-1][0]) * gap > bottom:
            members = runs.pop()[0] + members
            bottom = run_bottom(members)
        runs.append((members, bottom))
    placed = [0.0] * len(wanted)
    for members, bottom in runs:
        for k, m in enumerate(members):
            placed[m] = bottom + k * gap
    return placed


def _colour_bar(figure: Figure, mesh: QuadMesh, bar_axes: Axes) -> None:
    bar = figure.colorbar(mesh, cax=bar_axes, extend="min")
    bar.ax.yaxis.set_major_locator(LogLocator(base=10))
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: format_usd(value)))
    bar.ax.yaxis.set_minor_formatter(NullFormatter())
    bar.ax.tick_params(labelsize=_FONT)
    bar.set_label("liquidation USD per cell (log)", fontsize=_FONT + 0.5)
