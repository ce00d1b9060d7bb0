"""Checks on analytics outputs, as counts of violations (zero when sound)."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from helix_pipelines.analytics.caps import plan_violations, portfolio_violations
from helix_pipelines.analytics.pipeline import AnalyticsResult
from helix_pipelines.analytics.risk import RiskLimits


def cluster_violations(result: AnalyticsResult) -> dict[str, int]:
    """Prices outside the snapshot's price levels, shares outside [0, 1], NaN anywhere."""
    clusters = result.clusters
    if clusters.height == 0:
        return {"outside_levels": 0, "share_out_of_range": 0, "nan_values": 0}
    bounds = pl.DataFrame(
        {
            "snapshot_id": list(result.views),
            "level_lo": [v.level_lo for v in result.views.values()],
            "level_hi": [v.level_hi for v in result.views.values()],
        }
    )
    joined = clusters.join(bounds, on="snapshot_id", how="left")
    numeric = [
        "price_lo",
        "price_hi",
        "peak_price",
        "share",
        "z_score",
        "distance_pct",
        "last_close",
    ]
    return {
        "outside_levels": joined.filter(
            (pl.col("price_lo") < pl.col("level_lo"))
            | (pl.col("price_hi") > pl.col("level_hi"))
            | pl.col("level_lo").is_null()
            | (pl.col("peak_price") < pl.col("price_lo"))
            | (pl.col("peak_price") > pl.col("price_hi"))
        ).height,
        "share_out_of_range": clusters.filter(~pl.col("share").is_between(0, 1)).height,
        "nan_values": clusters.select(
            pl.sum_horizontal(pl.col(c).is_nan() | pl.col(c).is_null() for c in numeric)
        )
        .to_series()
        .sum(),
    }


def signal_violations(result: AnalyticsResult, limits: RiskLimits) -> list[str]:
    """Every risk cap or geometry rule the signals break, each plan with the ATR it was sized
    with (so the liquidation buffer is checked too); `[]` when all are sound."""
    found = portfolio_violations(result.plans, limits)
    for plan in result.plans:
        found += [
            f"{plan.symbol}: {v}"
            for v in plan_violations(plan, limits, atr_value=result.plan_atr[plan.symbol])
        ]
    return list(dict.fromkeys(found))


def radar_violations(result: AnalyticsResult, universe: Sequence[str]) -> dict[str, int]:
    """Universe symbols missing from the radar, ranks that are not exactly 1..n, ranked entries
    without a score in [0, 1], a tier or a direction, and excluded entries without a reason."""
    entries = result.radar
    ranked = [e for e in entries if e.rank is not None]
    listed = {e.symbol for e in entries}
    return {
        "universe_symbols_missing": len(set(universe) - listed),
        "ranks_not_contiguous": int(
            sorted(e.rank for e in ranked if e.rank is not None) != list(range(1, len(ranked) + 1))
        ),
        "ranked_without_components": sum(
            1
            for e in ranked
            if e.score is None
            or not 0 <= e.score <= 1
            or e.tier is None
            or e.direction is None
            or e.target_price is None
        ),
        "excluded_without_reason": sum(
            1 for e in entries if e.rank is None and not e.excluded_reason
        ),
    }
