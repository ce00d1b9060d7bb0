"""The analytics repository: clusters, consensus zones, trade signals and their outcomes.

Grain and keys (contracts.tables): one cluster per (snapshot, profile, peak), one zone per
computation, one imbalance row per snapshot, one baseline per (symbol, model, range), one radar
entry per (refresh, symbol), one signal per deterministic signal id, one outcome per (subject
kind, subject id).
Writes are keyed upserts, so recomputing from the same heatmaps is idempotent; reads are keyed
or bounded (signals since a time, subjects still without an outcome), never whole tables on a
hot path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from helix_pipelines.contracts.signals import (
    SIGNALS_SCHEMA,
    TradeSignal,
    signals_frame,
    signals_from_frame,
)
from helix_pipelines.contracts.tables import (
    BASELINES_SCHEMA,
    CLUSTERS_SCHEMA,
    IMBALANCE_SCHEMA,
    OUTCOMES_SCHEMA,
    RADAR_SCHEMA,
)
from helix_pipelines.warehouse.database import Database, quoted
from helix_pipelines.warehouse.rows import upsert

_SIGNALS = quoted(list(SIGNALS_SCHEMA))
_CLUSTERS = ", ".join(f'c."{c}"' for c in CLUSTERS_SCHEMA)
EXISTING_SIGNALS = "SELECT signal_id FROM trade_signals WHERE signal_id = ANY(?)"
SIGNALS_SINCE = f"SELECT {_SIGNALS} FROM trade_signals WHERE created_at >= ? ORDER BY created_at"  # noqa: S608
UNSCORED_CLUSTERS = f"""
SELECT {_CLUSTERS} FROM liquidation_clusters c
LEFT JOIN cluster_outcomes o ON o.subject_kind = 'cluster' AND o.subject_id = c.cluster_id
WHERE o.subject_id IS NULL
"""  # noqa: S608
UNSCORED_SIGNALS = f"""
SELECT {", ".join(f's."{c}"' for c in SIGNALS_SCHEMA)} FROM trade_signals s
LEFT JOIN cluster_outcomes o ON o.subject_kind = 'signal' AND o.subject_id = s.signal_id
WHERE o.subject_id IS NULL
"""  # noqa: S608
OUTCOMES = f"SELECT {quoted(list(OUTCOMES_SCHEMA))} FROM cluster_outcomes"  # noqa: S608
SIGNAL_OUTCOMES_BEFORE = f"{OUTCOMES} WHERE subject_kind = 'signal' AND evaluated_at <= ?"
TOUCHED_SINCE = f"{OUTCOMES} WHERE touched AND confirmed_liq_usd IS NULL AND observed_from >= ?"
IMBALANCES = (
    f"SELECT {quoted(list(IMBALANCE_SCHEMA))} FROM liquidation_imbalance "  # noqa: S608
    "WHERE snapshot_id = ANY(?)"
)
BASELINES = f"SELECT {quoted(list(BASELINES_SCHEMA))} FROM cluster_baselines"  # noqa: S608
_RADAR = quoted(list(RADAR_SCHEMA))
LATEST_RADAR = f"""
SELECT {_RADAR} FROM liquidation_radar
WHERE refreshed_at = (SELECT max(refreshed_at) FROM liquidation_radar)
ORDER BY rank NULLS LAST, symbol
"""  # noqa: S608
# A radar entry's outcome is the radar outcome of its symbol observed from its refresh time.
UNSCORED_RADAR = f"""
SELECT {", ".join(f'r."{c}"' for c in RADAR_SCHEMA)} FROM liquidation_radar r
LEFT JOIN cluster_outcomes o ON o.subject_kind = 'radar' AND o.symbol = r.symbol
    AND o.observed_from = r.refreshed_at
WHERE r.rank IS NOT NULL AND r.target_price IS NOT NULL AND o.subject_id IS NULL
"""  # noqa: S608


@dataclass(frozen=True)
class RefreshFrames:
    """What one analytics refresh writes, as contract frames."""

    clusters: pl.DataFrame
    zones: pl.DataFrame
    imbalances: pl.DataFrame
    baselines: pl.DataFrame
    radar: pl.DataFrame


class AnalyticsStore:
    def __init__(self, database: Database) -> None:
        self.db = database

    def save_refresh(self, refresh: RefreshFrames) -> None:
        """One refresh's clusters, zones, imbalances, advanced baselines and radar, in one
        transaction: a baseline never holds a snapshot whose imbalance row was not stored."""
        with self.db.transaction() as tx:
            upsert(tx, "liquidation_clusters", refresh.clusters)
            upsert(tx, "consensus_zones", refresh.zones)
            upsert(tx, "liquidation_imbalance", refresh.imbalances)
            upsert(tx, "cluster_baselines", refresh.baselines)
            upsert(tx, "liquidation_radar", refresh.radar)

    def save_radar(self, radar: pl.DataFrame) -> None:
        """One live ranking (`liquidation_radar` rows of one refresh time), upserted."""
        with self.db.transaction() as tx:
            upsert(tx, "liquidation_radar", radar)

    def imbalances(self, snapshot_ids: Sequence[str]) -> pl.DataFrame:
        """The stored imbalance rows of these snapshots (those analyzed before)."""
        with self.db.connect() as conn:
            return conn.frame(IMBALANCES, [list(snapshot_ids)], IMBALANCE_SCHEMA)

    def baselines(self) -> pl.DataFrame:
        """Every baseline: one row per (symbol, model, range), some 10k for the universe."""
        with self.db.connect() as conn:
            return conn.frame(BASELINES, (), BASELINES_SCHEMA)

    def latest_radar(self) -> pl.DataFrame:
        """The newest radar refresh, ranked entries first."""
        with self.db.connect() as conn:
            return conn.frame(LATEST_RADAR, (), RADAR_SCHEMA)

    def unscored_radar(self) -> pl.DataFrame:
        """Ranked radar entries with a target and no outcome yet."""
        with self.db.connect() as conn:
            return conn.frame(UNSCORED_RADAR, (), RADAR_SCHEMA)

    def touched_outcomes_since(self, moment: datetime) -> pl.DataFrame:
        """Touched outcomes without a sweep confirmation whose subject is from `moment` on."""
        with self.db.connect() as conn:
            return conn.frame(TOUCHED_SINCE, [moment], OUTCOMES_SCHEMA)

    def signal_outcomes_before(self, moment: datetime) -> pl.DataFrame:
        """Signal outcomes decided at or before `moment` (what a refresh then could know)."""
        with self.db.connect() as conn:
            return conn.frame(SIGNAL_OUTCOMES_BEFORE, [moment], OUTCOMES_SCHEMA)

    def existing_signal_ids(self, signal_ids: Sequence[str]) -> set[str]:
        if not signal_ids:
            return set()
        with self.db.connect() as conn:
            return {row[0] for row in conn.rows(EXISTING_SIGNALS, [list(signal_ids)])}

    def save_signals(self, signals: Sequence[TradeSignal]) -> int:
        with self.db.transaction() as tx:
            return upsert(tx, "trade_signals", signals_frame(list(signals)))

    def signals_since(self, since: datetime) -> tuple[list[TradeSignal], dict[str, str]]:
        """Signals created at or after `since`, and the rows that are no valid signal (id ->
        why), which the caller reports instead of failing on."""
        with self.db.connect() as conn:
            return signals_from_frame(conn.frame(SIGNALS_SINCE, [since], SIGNALS_SCHEMA))

    def unscored_clusters(self) -> pl.DataFrame:
        """Clusters no outcome has been recorded for yet (the open subjects)."""
        with self.db.connect() as conn:
            return conn.frame(UNSCORED_CLUSTERS, (), CLUSTERS_SCHEMA)

    def unscored_signals(self) -> pl.DataFrame:
        with self.db.connect() as conn:
            return conn.frame(UNSCORED_SIGNALS, (), SIGNALS_SCHEMA)

    def save_outcomes(self, outcomes: pl.DataFrame) -> int:
        with self.db.transaction() as tx:
            return upsert(tx, "cluster_outcomes", outcomes)

    def outcomes(self) -> pl.DataFrame:
        """Every scored subject (what the hit-rate tables summarize)."""
        with self.db.connect() as conn:
            return conn.frame(OUTCOMES, (), OUTCOMES_SCHEMA)
