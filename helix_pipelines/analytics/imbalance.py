"""Imbalance: the liquidation USD resting above the price against the USD resting below it.

Per snapshot profile (pure, no Dagster), against the snapshot's last candle close:

    usd_above = USD of the levels strictly above the close  (short positions' liquidations)
    usd_below = USD of the levels strictly below the close  (long positions' liquidations)
    imbalance = usd_above / (usd_above + usd_below)         (0.5 balanced; None when both are 0)

A level exactly at the close belongs to neither side. Computed for the cumulative profile (what
stacked up over the range) and the live one (the latest column: what rests right now).

Each snapshot also names its **major clusters**: the cluster of the cumulative profile holding
the most USD on each side, the sample the historical baselines are built from (`baselines`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime

import numpy as np

from helix_pipelines.analytics.clusters import Cluster
from helix_pipelines.contracts.vocabulary import LiquidatedSide


@dataclass(frozen=True, slots=True)
class SideTotals:
    """Liquidation USD strictly above and strictly below the price."""

    usd_above: float
    usd_below: float

    @property
    def imbalance(self) -> float | None:
        """Share of the two sides' USD that is above the price; None with nothing on either."""
        total = self.usd_above + self.usd_below
        return self.usd_above / total if total > 0 else None


def side_totals(prices: np.ndarray, values: np.ndarray, last_close: float) -> SideTotals:
    """USD strictly above and strictly below `last_close` of one profile."""
    return SideTotals(
        usd_above=float(values[prices > last_close].sum()),
        usd_below=float(values[prices < last_close].sum()),
    )


@dataclass(frozen=True, slots=True)
class MajorCluster:
    """The largest cluster (by USD) on one side of the price, as a baseline sample."""

    liquidated_side: LiquidatedSide
    usd: float
    distance_pct: float  # unsigned: how far from the price, in %

    @classmethod
    def of(cls, cluster: Cluster) -> MajorCluster:
        return cls(cluster.liquidated_side, cluster.usd, abs(cluster.distance_pct))


def major_clusters(clusters: Sequence[Cluster]) -> dict[LiquidatedSide, MajorCluster]:
    """The largest-USD cluster per liquidated side; a side without clusters is absent."""
    majors: dict[LiquidatedSide, MajorCluster] = {}
    for cluster in clusters:
        best = majors.get(cluster.liquidated_side)
        if cluster.usd > 0 and (best is None or cluster.usd > best.usd):
            majors[cluster.liquidated_side] = MajorCluster.of(cluster)
    return majors


@dataclass(frozen=True, slots=True)
class SnapshotImbalance:
    """One `liquidation_imbalance` row: a snapshot's sides, its major clusters, and their
    z-scores against the key's baseline before this snapshot was folded in (None while the
    baseline is too thin)."""

    snapshot_id: str
    fetched_at: datetime
    scope: str
    exchange: str
    symbol: str
    model: int
    range: str
    last_close: float
    cumulative_usd_above: float
    cumulative_usd_below: float
    cumulative_imbalance: float | None
    live_usd_above: float
    live_usd_below: float
    live_imbalance: float | None
    major_above_usd: float | None
    major_above_distance_pct: float | None
    major_below_usd: float | None
    major_below_distance_pct: float | None
    size_z_above: float | None
    size_z_below: float | None
    distance_z_above: float | None
    distance_z_below: float | None
    baseline_samples: int

    def size_z(self, side: LiquidatedSide) -> float | None:
        return self.size_z_above if side == "short" else self.size_z_below

    @classmethod
    def from_row(cls, row: dict[str, object]) -> SnapshotImbalance:
        return cls(**{f.name: row[f.name] for f in fields(cls)})  # type: ignore[arg-type]

    def as_row(self) -> dict[str, object]:
        return asdict(self)
