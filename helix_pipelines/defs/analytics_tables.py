"""Markdown tables for the analytics assets' metadata (what the Dagster UI shows)."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from helix_pipelines.contracts.radar import RadarEntry
from helix_pipelines.contracts.signals import TradeSignal
from helix_pipelines.contracts.units import duration_text


def zones_table(zones: pl.DataFrame) -> str:
    lines = [
        "| symbol | liquidated | band | models | ranges | score |",
        "|---|---|---|---|---|---|",
    ]
    for z in zones.sort("consensus_score", descending=True).head(15).iter_rows(named=True):
        lines.append(
            f"| {z['symbol']} | {z['liquidated_side']} | {z['price_lo']:.6g}-{z['price_hi']:.6g} | "
            f"{z['models']} | {z['ranges']} | {z['consensus_score']:.2f} |"
        )
    return "\n".join(lines)


def signals_table(signals: list[TradeSignal]) -> str:
    lines = [
        "| symbol | side | entry | stop | take profit | R:R | qty | leverage |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {s.symbol} | {s.side} | {s.entry:.6g} | {s.stop_loss:.6g} | {s.take_profit:.6g} "
        f"| {s.reward_to_risk:.2f} | {s.qty:.6g} | {s.leverage}x |"
        for s in signals
    ]
    return "\n".join(lines) if signals else "no signal this time"


def rates_table(rates: pl.DataFrame) -> str:
    lines = [
        "| subject | model | range | consensus | n | hit rate | median h to touch |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rates.iter_rows(named=True):
        median = r["median_hours_to_touch"]
        lines.append(
            f"| {r['subject_kind']} | {r['model'] or '-'} | {r['range'] or '-'} | {r['consensus_bucket']} | "
            f"{r['n']} | {r['hit_rate']:.0%} | {'-' if median is None else f'{median:.1f}'} |"
        )
    return "\n".join(lines) if len(lines) > 2 else "nothing scored yet: horizons still open"


def _pct(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}%"


def radar_table(entries: Sequence[RadarEntry], top: int) -> str:
    """The top `top` ranked entries with their components and data age."""
    lines = [
        "| rank | symbol | tier | score | direction | target | nearest | above | below "
        "| imbalance | size z | consensus | data age |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in [e for e in entries if e.rank is not None][:top]:
        size_z = "-" if e.size_z is None else f"{e.size_z:+.2f}"
        imbalance = "-" if e.imbalance is None else f"{e.imbalance:.2f}"
        lines.append(
            f"| {e.rank} | {e.symbol} | {e.tier} | {e.score:.3f} | {e.direction} "
            f"| {e.target_price:.6g} | {_pct(e.nearest_distance_pct)} "
            f"| {_pct(e.above_distance_pct)} | {_pct(e.below_distance_pct)} | {imbalance} "
            f"| {size_z} | {e.consensus_component:.2f} | {duration_text(e.data_age_seconds)} |"
        )
    return "\n".join(lines) if len(lines) > 2 else "no coin ranked this time"


def radar_rates_table(rates: pl.DataFrame) -> str:
    lines = [
        "| subject | decile | tier | n | hit rate | median h to touch | median adverse |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rates.iter_rows(named=True):
        median = r["median_hours_to_touch"]
        lines.append(
            f"| {r['subject_kind']} | {r['radar_decile']} | {r['radar_tier']} | {r['n']} "
            f"| {r['hit_rate']:.0%} | {'-' if median is None else f'{median:.1f}'} "
            f"| {_pct(r['median_max_adverse_pct'])} |"
        )
    return "\n".join(lines) if len(lines) > 2 else "no radar entry scored yet: horizons still open"
