"""The heatmap picture: its exact size, that the prices it labels are the snapshot's and the marks'
prices, its axes (real level prices, candle times or column index), the sandbox banner, crowded
and out-of-range marks, empty snapshots, and a real-size sandbox payload."""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from matplotlib import dates as mdates
from matplotlib.collections import QuadMesh
from matplotlib.figure import Figure
from matplotlib.text import Annotation
from PIL import Image

from helix_pipelines.coinglass.sandbox import SandboxHeatmaps
from helix_pipelines.contracts.heatmaps import (
    HeatmapRequest,
    NormalizedSnapshot,
    empty_candles,
    empty_cells,
)
from helix_pipelines.heatmaps.normalize import normalize_payload
from helix_pipelines.pictures.heatmap import (
    MAX_LABEL_CHARS,
    MAX_MARKS,
    HeatmapPicture,
    MarkKind,
    PriceMark,
    _figure,
    _spread,
    format_price,
    format_usd,
    heatmap_picture,
)
from helix_pipelines.testing.payloads import T0, encode, v4_document

NOW = datetime(2026, 3, 1, 12, 7, tzinfo=UTC)


def sandbox_snapshot(
    model: int, range_: str, *, symbol: str = "BTC", cell_fraction: float = 0.25
) -> NormalizedSnapshot:
    """A sandbox payload for `NOW`, through the real normalizer."""
    request = HeatmapRequest("coin", symbol, model, range_)
    raw = SandboxHeatmaps(lambda: NOW, cell_fraction=cell_fraction).payload(request)
    snapshot = normalize_payload(raw, request, NOW)
    assert snapshot.ledger.status == "loaded"
    return snapshot


def picture(
    snapshot: NormalizedSnapshot,
    marks: Sequence[PriceMark] = (),
    *,
    source_kind: str = "coinglass",
    **size: int,
) -> HeatmapPicture:
    return heatmap_picture(
        snapshot.cells,
        snapshot.candles,
        symbol=snapshot.ledger.symbol,
        model=snapshot.ledger.model,
        range_=snapshot.ledger.range,
        fetched_at=snapshot.ledger.fetched_at,
        source_kind=source_kind,
        marks=marks,
        **size,
    )


def figure_of(
    snapshot: NormalizedSnapshot,
    marks: Sequence[PriceMark] = (),
    *,
    source_kind: str = "coinglass",
    fetched_at: datetime = NOW,
) -> tuple[Figure, tuple[str, ...]]:
    return _figure(
        snapshot.cells,
        snapshot.candles,
        symbol=snapshot.ledger.symbol,
        model=snapshot.ledger.model,
        range_=snapshot.ledger.range,
        fetched_at=fetched_at,
        source_kind=source_kind,
        marks=marks,
    )


def last_close(snapshot: NormalizedSnapshot) -> float:
    return float(snapshot.candles.sort("ts")["close"][-1])


def peak_level(cells: pl.DataFrame) -> float:
    """The level holding the most USD over all columns: where a cluster would be found."""
    totals = cells.group_by("price").agg(pl.col("liq_usd").sum()).sort("liq_usd")
    return float(totals["price"][-1])


def labelled_price(label: str, words: str) -> tuple[float, float]:
    """The price a label written '<words> <price>[ · <note>]' shows, and half its last digit:
    the most a correctly rounded price can differ from the true one."""
    assert label.startswith(f"{words} "), label
    shown = label.removeprefix(f"{words} ").split(" · ")[0]
    digits = shown.replace(",", "").replace(".", "").lstrip("0")
    assert len(digits) >= 5, f"{label}: too few digits to trade on"
    decimals = len(shown.partition(".")[2])
    return float(shown.replace(",", "")), 0.5 * 10**-decimals


def assert_labels(price: float, label: str, words: str) -> None:
    shown, tolerance = labelled_price(label, words)
    assert abs(shown - price) <= tolerance * (1 + 1e-9), (label, price)


def decoded(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


@pytest.mark.parametrize(("width", "height"), [(960, 540), (1280, 720), (801, 451)])
def test_png_is_exactly_the_size_asked_for(width: int, height: int) -> None:
    snapshot = sandbox_snapshot(2, "24h")
    result = picture(snapshot, width_px=width, height_px=height)
    image = decoded(result.png)
    assert image.format == "PNG"
    assert image.size == (width, height) == (result.width_px, result.height_px)
    assert image.mode == "P"  # a 256-colour palette: a fifth of the bytes in the event log


def test_labels_show_the_last_close_and_each_mark_at_its_price() -> None:
    snapshot = sandbox_snapshot(2, "24h")
    last = last_close(snapshot)
    peak = peak_level(snapshot.cells)
    side: MarkKind = "shorts_liquidated" if peak > last else "longs_liquidated"
    marks = [
        PriceMark(peak, side, "largest level"),
        PriceMark(last * 1.002, "entry"),
        PriceMark(last * 0.99, "stop_loss"),
        PriceMark(peak, "take_profit"),
    ]
    result = picture(snapshot, marks)
    assert len(result.labels) == 5
    assert_labels(last, result.labels[0], "last")
    # Trade levels come first (they were given after the cluster), in the order given.
    assert_labels(last * 1.002, result.labels[1], "entry")
    assert_labels(last * 0.99, result.labels[2], "stop")
    assert_labels(peak, result.labels[3], "take profit")
    words = "shorts liquidated" if side == "shorts_liquidated" else "longs liquidated"
    assert_labels(peak, result.labels[4], words)
    assert result.labels[4].endswith(" · largest level")


def test_the_labels_returned_are_the_texts_drawn() -> None:
    snapshot = sandbox_snapshot(1, "12h", symbol="PEPE")
    marks = [PriceMark(peak_level(snapshot.cells), "cluster", "consensus 0.83")]
    figure, labels = figure_of(snapshot, marks)
    drawn = tuple(t.get_text() for t in figure.axes[0].texts if isinstance(t, Annotation))
    assert drawn == labels
    assert labels == picture(snapshot, marks).labels
    assert_labels(marks[0].price, labels[1], "cluster")
    assert "e-" not in labels[1]  # a price of 0.00002 is written out, never 2e-05


def test_sandbox_pictures_carry_the_banner_and_others_do_not() -> None:
    snapshot = sandbox_snapshot(1, "12h")
    banner = "SANDBOX DATA — synthetic, not market data"
    for kind, shown in (("sandbox", True), ("coinglass", False), ("replay", False)):
        figure, _ = figure_of(snapshot, source_kind=kind)
        texts = [t.get_text() for t in figure.texts]
        assert (banner in texts) is shown, kind
        assert any(f"source: {kind}" in t for t in texts)


def test_the_title_names_the_heatmap_and_the_fetch_time_in_utc() -> None:
    snapshot = sandbox_snapshot(3, "12h", symbol="ETH")
    two_hours_east = datetime(2026, 3, 1, 14, 7, tzinfo=timezone(timedelta(hours=2)))
    for fetched_at in (NOW, two_hours_east, NOW.replace(tzinfo=None)):
        figure, _ = figure_of(snapshot, fetched_at=fetched_at)
        title = " ".join(t.get_text() for t in figure.texts)
        assert "ETH" in title
        assert "model 3" in title
        assert "12h" in title
        assert "2026-03-01 12:07 UTC" in title


def test_the_price_axis_is_the_real_level_prices_however_they_are_spaced() -> None:
    request = HeatmapRequest("coin", "BTC", 1, "3d")
    snapshot = normalize_payload(encode(v4_document()), request, NOW)
    figure, _ = figure_of(snapshot)
    axes = figure.axes[0]
    (mesh,) = (c for c in axes.collections if isinstance(c, QuadMesh))
    # Levels 100, 101, 102.5, 104, 110: edges halfway between them, the outer ones mirrored.
    edges = mesh.get_coordinates()[:, 0, 1]
    assert list(edges) == [99.5, 100.5, 101.75, 103.25, 107.0, 113.0]
    assert axes.get_ylim() == (99.5, 113.0)
    values = np.asarray(mesh.get_array()).reshape(5, 4)
    row_of_110 = int(np.searchsorted(edges, 110.0)) - 1
    assert values[row_of_110, 0] == 250.0  # the payload's cell [x 0, level 110, 250 USD]
    assert values[3, 2] == 123456.78  # and [x 2, level 104, 123456.78 USD]


def test_price_ticks_are_written_out_at_their_exact_value() -> None:
    for symbol in ("PEPE", "XRP", "BTC"):
        figure, _ = figure_of(sandbox_snapshot(1, "24h", symbol=symbol))
        figure.canvas.draw()
        axes = figure.axes[0]
        low, high = axes.get_ylim()
        ticks = [(t.get_position()[1], t.get_text()) for t in axes.get_yticklabels()]
        shown = [(at, text) for at, text in ticks if low <= at <= high]
        assert len(shown) >= 4, symbol
        for at, text in shown:
            assert "e" not in text, text
            assert float(text.replace(",", "")) == pytest.approx(at, rel=1e-9), text


def test_time_axis_spans_the_candles_when_x_names_candles() -> None:
    snapshot = sandbox_snapshot(2, "24h")  # 288 candles of 5 minutes, one column each
    assert snapshot.ledger.x_axis == "candles"
    figure, labels = figure_of(snapshot)
    axes = figure.axes[0]
    start, end = (mdates.num2date(x, tz=UTC) for x in axes.get_xlim())
    first, last = snapshot.candles["ts"].min(), snapshot.candles["ts"].max()
    assert abs(start - first) < timedelta(seconds=1)  # type: ignore[operator]
    assert abs(end - (last + timedelta(minutes=5))) < timedelta(seconds=1)  # type: ignore[operator]
    assert axes.get_xlabel().startswith("time (UTC)")
    (close_line,) = axes.get_lines()[:1]
    assert list(close_line.get_ydata()) == list(snapshot.candles.sort("ts")["close"])
    assert_labels(last_close(snapshot), labels[0], "last")


def test_x_beyond_candles_is_drawn_by_column_index() -> None:
    snapshot = sandbox_snapshot(3, "24h")  # Model 3: x runs at twice the candle list
    assert snapshot.ledger.x_axis == "beyond_candles"
    assert snapshot.cells["candle_ts"].null_count() == snapshot.cells.height
    figure, labels = figure_of(snapshot)
    axes = figure.axes[0]
    columns = int(snapshot.cells["x_index"].max()) + 1
    assert axes.get_xlim() == (-0.5, columns - 0.5)
    assert "column" in axes.get_xlabel()
    assert "beyond candles" in axes.get_xlabel()
    assert_labels(last_close(snapshot), labels[0], "last")  # still the snapshot's last close
    assert decoded(picture(snapshot).png).size == (960, 540)


def test_crowded_marks_are_capped_and_their_labels_neither_overlap_nor_leave_the_picture() -> None:
    snapshot = sandbox_snapshot(1, "12h")
    last = last_close(snapshot)
    clusters = [PriceMark(last * (1 + i / 5000), "cluster", f"zone {i}") for i in range(30)]
    trade = [PriceMark(last, "entry"), PriceMark(last * 0.999, "stop_loss")]
    figure, labels = figure_of(snapshot, [*clusters, *trade])
    assert len(labels) == 1 + MAX_MARKS
    assert labels[1].startswith("entry ")
    assert labels[2].startswith("stop ")
    # The clusters that made it are the first ones given.
    assert [label.split(" · ")[1] for label in labels[3:]] == [
        f"zone {i}" for i in range(MAX_MARKS - 2)
    ]
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    boxes = []
    for text in figure.axes[0].texts:
        patch = text.get_bbox_patch()
        assert patch is not None
        boxes.append(patch.get_window_extent(renderer))
    picture_box = figure.bbox
    assert all(picture_box.x0 <= box.x0 and box.x1 <= picture_box.x1 for box in boxes)
    assert all(picture_box.y0 <= box.y0 and box.y1 <= picture_box.y1 for box in boxes)
    for one, other in itertools.combinations(boxes, 2):
        assert one.y1 <= other.y0 + 0.5 or other.y1 <= one.y0 + 0.5, (one, other)
    # And the colour bar, drawn right of the labels, is not covered by them.
    colour_bar = figure.axes[1].get_window_extent(renderer)
    assert all(box.x1 <= colour_bar.x0 for box in boxes)


def test_marks_off_the_price_axis_are_skipped_and_not_listed() -> None:
    snapshot = sandbox_snapshot(1, "12h")
    top = float(snapshot.cells["price"].max())
    bottom = float(snapshot.cells["price"].min())
    marks = [
        PriceMark(top * 10, "take_profit"),
        PriceMark(bottom / 10, "stop_loss"),
        PriceMark(math.nan, "entry"),
        PriceMark(top, "cluster"),
    ]
    result = picture(snapshot, marks)
    assert len(result.labels) == 2
    assert_labels(top, result.labels[1], "cluster")


def test_a_long_note_is_cut_so_the_label_stays_short() -> None:
    snapshot = sandbox_snapshot(1, "12h")
    price = peak_level(snapshot.cells)
    (_, label) = picture(
        snapshot, [PriceMark(price, "cluster", "seen by " + "every model " * 9)]
    ).labels
    assert len(label) == MAX_LABEL_CHARS
    assert label.endswith("…")
    assert_labels(price, label, "cluster")


def test_a_snapshot_without_cells_is_a_picture_saying_so() -> None:
    quarantined = normalize_payload(b"not json", HeatmapRequest("coin", "BTC", 1, "12h"), NOW)
    assert quarantined.ledger.status == "quarantined"
    for cells, candles in (
        (quarantined.cells, quarantined.candles),
        (empty_cells(), empty_candles()),
    ):
        snapshot = NormalizedSnapshot(quarantined.ledger, cells, quarantined.levels, candles)
        result = picture(snapshot)
        assert decoded(result.png).size == (960, 540)
        assert result.labels == ()
        figure, _ = figure_of(snapshot)
        assert [t.get_text() for t in figure.axes[0].texts] == ["no cells"]


def test_a_one_candle_snapshot_still_draws() -> None:
    cells = [[0, 0, 5000.0], [0, 1, 120.0]]
    document = v4_document(n_candles=1, levels=[100.0, 104.0], cells=cells)
    snapshot = normalize_payload(encode(document), HeatmapRequest("coin", "BTC", 1, "12h"), NOW)
    figure, labels = figure_of(snapshot)
    start, end = figure.axes[0].get_xlim()
    assert mdates.num2date(start, tz=UTC) == datetime.fromtimestamp(T0, UTC)
    assert end > start  # its one column has a width
    assert_labels(102.0, labels[0], "last")  # the payload's one close


def test_a_real_size_sandbox_payload_renders_with_its_largest_level_labelled() -> None:
    snapshot = sandbox_snapshot(3, "3d", cell_fraction=1.0)
    assert snapshot.cells.height > 190_000  # the largest payload CoinGlass serves
    peak = peak_level(snapshot.cells)
    result = picture(snapshot, [PriceMark(peak, "cluster")], source_kind="sandbox")
    assert decoded(result.png).size == (960, 540)
    assert_labels(peak, result.labels[1], "cluster")


def test_more_columns_than_pixels_merge_by_their_maximum_and_keep_every_level() -> None:
    snapshot = sandbox_snapshot(3, "1y")  # 1,460 columns
    figure, _ = figure_of(snapshot)
    axes = figure.axes[0]
    (mesh,) = (c for c in axes.collections if isinstance(c, QuadMesh))
    levels = np.sort(snapshot.cells["price"].unique().to_numpy())
    values = np.asarray(mesh.get_array()).reshape(len(levels), -1)
    pixels = axes.get_window_extent().width
    assert pixels <= values.shape[1] < 2 * pixels < 1_460
    assert values.max() == snapshot.cells["liq_usd"].max()
    edges = mesh.get_coordinates()[:, 0, 1]
    assert np.all((edges[:-1] < levels) & (levels < edges[1:]))  # every level in its own row


@pytest.mark.parametrize(
    ("price", "step", "digits", "text"),
    [
        (100_097.31, None, 5, "100,097"),
        (100_097.31, 0.5, 5, "100,097.3"),
        (2.301234, None, 5, "2.3012"),
        (0.0000191234, None, 5, "0.000019123"),
        (0.0000191234, 1e-10, 5, "0.0000191234"),
        (96_000.0, 2_000.0, 1, "96,000"),
        (12.3, 0.1, 1, "12.3"),
    ],
)
def test_prices_are_written_out_with_the_decimals_they_need(
    price: float, step: float | None, digits: int, text: str
) -> None:
    assert format_price(price, step, digits=digits) == text


@pytest.mark.parametrize(
    ("usd", "text"), [(950.0, "$950"), (1_000.0, "$1k"), (2.5e6, "$2.5M"), (3e9, "$3B")]
)
def test_usd_ticks_are_short(usd: float, text: str) -> None:
    assert format_usd(usd) == text


@given(
    st.lists(st.floats(0, 400), max_size=20),
    st.floats(5, 20),
)
def test_spread_keeps_order_and_gaps_inside_the_bounds(wanted: list[float], gap: float) -> None:
    low, high = 0.0, 400.0
    wanted = wanted[: int((high - low) // gap) + 1]
    placed = _spread(wanted, gap, low, high)
    order = sorted(range(len(wanted)), key=lambda i: (wanted[i], i))
    ranked = [placed[i] for i in order]
    assert all(low - 1e-6 <= p <= high + 1e-6 for p in placed)
    assert all(b - a >= gap - 1e-6 for a, b in itertools.pairwise(ranked))
    if all(b - a >= gap for a, b in itertools.pairwise(sorted(wanted))):
        assert placed == pytest.approx(wanted)  # nothing crowded: nothing moves
