"""Score past clusters, radar entries and signals against the candles that followed them.

Grain: one outcome per subject, recorded once it is decided (touched, or its horizon passed);
only subjects still without an outcome are read, so the work follows what is open, not history.
Idempotent: outcomes are upserted per subject. A touched subject also records the realized
liquidations near its level (`analytics.sweeps`: the sweep confirmation).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from helix_pipelines.analytics.outcomes import (
    hit_rates,
    radar_hit_rates,
    score_clusters,
    score_radar,
    score_signals,
)
from helix_pipelines.analytics.sweeps import confirm_sweeps, confirmable
from helix_pipelines.warehouse import Warehouse

# Touched outcomes older than this are not confirmed any more (a refresh that did not run for
# days does not read every old outcome again).
CONFIRM_LOOKBACK = timedelta(days=2)


@dataclass(frozen=True)
class OutcomesReport:
    scored: int
    still_open: int
    rates: pl.DataFrame
    radar_rates: pl.DataFrame  # by the radar decile and tier subjects had when they were made


def refresh_outcomes(
    warehouse: Warehouse, *, horizon_hours: float, now: datetime
) -> OutcomesReport | None:
    """None when there is no cluster, radar entry or signal yet."""
    clusters = warehouse.analytics.unscored_clusters()
    radar = warehouse.analytics.unscored_radar()
    signals = warehouse.analytics.unscored_signals()
    if clusters.height == 0 and radar.height == 0 and signals.height == 0:
        return None
    starts = [
        f.min()
        for f in (clusters["fetched_at"], radar["refreshed_at"], signals["as_of"])
        if f.len()
    ]
    candles = warehouse.heatmaps.candles_since(min(starts))  # type: ignore[type-var]
    scored = pl.concat(
        [
            score_clusters(clusters, candles, horizon_hours=horizon_hours, now=now),
            score_radar(radar, candles, horizon_hours=horizon_hours, now=now),
            score_signals(signals, candles, horizon_hours=horizon_hours, now=now),
        ]
    )
    warehouse.analytics.save_outcomes(scored)
    _confirm_sweeps(warehouse, now)
    outcomes = warehouse.analytics.outcomes()
    return OutcomesReport(
        scored=scored.height,
        still_open=clusters.height + radar.height + signals.height - scored.height,
        rates=hit_rates(outcomes.filter(pl.col("subject_kind") != "radar")),
        radar_rates=radar_hit_rates(outcomes),
    )


def _confirm_sweeps(warehouse: Warehouse, now: datetime) -> int:
    """Confirm the touched outcomes whose window has closed with the realized liquidations
    stored for it (bounded: outcomes touched in the last `CONFIRM_LOOKBACK`)."""
    pending = confirmable(warehouse.analytics.touched_outcomes_since(now - CONFIRM_LOOKBACK), now)
    if pending.height == 0:
        return 0
    events = warehouse.live.events(
        pending["symbol"].unique().to_list(),
        pending["observed_from"].min(),  # type: ignore[arg-type]
        now,
    )
    warehouse.analytics.save_outcomes(confirm_sweeps(pending, events))
    return pending.height
