"""The analytics assets' pictures for the Dagster UI: heatmaps of the top symbols with their
agreed zones and signal levels labelled with their prices, and the radar as a ranked chart."""

import base64
from collections.abc import Sequence

import polars as pl

from helix_pipelines.analytics.views import SnapshotView
from helix_pipelines.contracts.radar import RadarEntry
from helix_pipelines.contracts.vocabulary import RANGES
from helix_pipelines.heatmaps.archive import ParquetArchive
from helix_pipelines.pictures.heatmap import PriceMark, heatmap_picture
from helix_pipelines.pictures.radar import radar_png
from helix_pipelines.services.signals import SignalsReport


def _image(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def radar_chart(entries: Sequence[RadarEntry], *, top: int, title: str) -> str:
    return _image(radar_png(entries, top=top, title=title), "radar")


def zone_and_signal_marks(
    report: SignalsReport, symbol: str, min_consensus: float
) -> list[PriceMark]:
    """A symbol's agreed zones (whose positions they would liquidate) and its signal's entry,
    stop and take profit, as labelled price levels."""
    result = report.result
    zones = result.zones.filter(
        (pl.col("symbol") == symbol) & (pl.col("consensus_score") >= min_consensus)
    )
    marks = [
        PriceMark(
            z["peak_price"],
            "shorts_liquidated" if z["liquidated_side"] == "short" else "longs_liquidated",
            f"consensus {z['consensus_score']:.2f}",
        )
        for z in zones.iter_rows(named=True)
    ]
    for s in result.signals:
        if s.symbol == symbol:
            marks += [
                PriceMark(s.entry, "entry", s.side),
                PriceMark(s.stop_loss, "stop_loss"),
                PriceMark(s.take_profit, "take_profit"),
            ]
    return marks


def _view_for(report: SignalsReport, symbol: str, risk_range: str) -> SnapshotView | None:
    """The symbol's view on the risk range, or, when it has a signal whose stop or take profit
    lies outside that grid's prices, the shortest range whose grid holds both (a trader wants
    the trade's levels on the picture)."""
    views = sorted(
        (v for v in report.result.views.values() if v.symbol == symbol),
        key=lambda v: (v.range != risk_range, RANGES.index(v.range), v.model),
    )
    levels = [
        price
        for s in report.result.signals
        if s.symbol == symbol
        for price in (s.stop_loss, s.take_profit)
    ]
    holding = [v for v in views if all(v.level_lo <= p <= v.level_hi for p in levels)]
    return next(iter(holding or views), None)


def previews(
    report: SignalsReport,
    archive: ParquetArchive,
    *,
    symbols: int,
    risk_range: str,
    min_consensus: float,
    source_kind: str,
) -> str:
    """The heatmap of each of the first `symbols` symbols (those with signals first, then by
    zone consensus), its grid read back from the archive."""
    result = report.result
    ranked = [s.symbol for s in result.signals] + list(
        result.zones.sort("consensus_score", descending=True)["symbol"]
    )
    parts = []
    for symbol in list(dict.fromkeys(ranked))[:symbols]:
        view = _view_for(report, symbol, risk_range)
        if view is None:
            continue
        cells = archive.read(view)
        if cells is None:
            parts.append(f"**{symbol}**: grid not in the archive at {archive.root}")
            continue
        candles = report.candles.filter(
            (pl.col("symbol") == symbol)
            & (pl.col("range") == view.range)
            & pl.col("ts").is_between(view.first_candle_ts, view.last_candle_ts)
        )
        picture = heatmap_picture(
            cells,
            candles,
            symbol=symbol,
            model=view.model,
            range_=view.range,
            fetched_at=view.fetched_at,
            source_kind=source_kind,
            marks=zone_and_signal_marks(report, symbol, min_consensus),
        )
        parts.append(
            f"**{symbol}** model {view.model} {view.range}\n\n{_image(picture.png, symbol)}\n\n"
            f"labelled: {'; '.join(picture.labels)}"
        )
    return "\n\n".join(parts) or "nothing to show"
