"""Score past clusters and signals against the candles that followed them.

Grain: one outcome per subject, recorded once it is decided (touched, or its horizon passed);
only subjects still without an outcome are read, so the work follows what is open, not history.
Idempotent: outcomes are upserted per subject.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from helix_pipelines.analytics.outcomes import hit_rates, score_clusters, score_signals
from helix_pipelines.warehouse import Warehouse


@dataclass(frozen=True)
class OutcomesReport:
    scored: int
    still_open: int
    rates: pl.DataFrame


def refresh_outcomes(
    warehouse: Warehouse, *, horizon_hours: float, now: datetime
) -> OutcomesReport | None:
    """None when there is no cluster and no signal yet."""
    clusters = warehouse.analytics.unscored_clusters()
    signals = warehouse.analytics.unscored_signals()
    if clusters.height == 0 and signals.height == 0:
        return None
    starts = [f.min() for f in (clusters["fetched_at"], signals["as_of"]) if f.len()]
    candles = warehouse.heatmaps.candles_since(min(starts))  # type: ignore[type-var]
    scored = pl.concat(
        [
            score_clusters(clusters, candles, horizon_hours=horizon_hours, now=now),
            score_signals(signals, candles, horizon_hours=horizon_hours, now=now),
        ]
    )
    warehouse.analytics.save_outcomes(scored)
    return OutcomesReport(
        scored=scored.height,
        still_open=clusters.height + signals.height - scored.height,
        rates=hit_rates(warehouse.analytics.outcomes()),
    )
