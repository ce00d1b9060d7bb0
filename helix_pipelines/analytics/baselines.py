"""Historical baselines: how large and how far a (symbol, model, range)'s major clusters usually
are, so "the current clusters are near their historical averages" is a number.

Grain: one baseline per (scope, exchange, symbol, model, range), holding running statistics
(count, mean and sum of squared deviations, Welford's method) of two samples per snapshot, its
major clusters above and below the price (`imbalance.major_clusters`):

  size      log10 of the cluster's USD (sizes span orders of magnitude across coins and years;
            on a log scale a z-score of +1 means "about 10^std times the usual size")
  distance  how far the cluster is from the price, in %

Incremental: a snapshot is folded in once, when it is first analyzed, and never re-read; the
baseline remembers the newest snapshot time it holds (`folded_through`) so a re-run folds nothing
twice. A snapshot is compared with the baseline *before* it is folded in, so its z-scores use
only earlier snapshots.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from helix_pipelines.analytics.imbalance import MajorCluster
from helix_pipelines.contracts.vocabulary import LiquidatedSide

MIN_SAMPLES = 10
"""Samples a baseline needs before its z-scores are reported (fewer: None, not noise)."""

BaselineKey = tuple[str, str, str, int, str]
"""(scope, exchange, symbol, model, range)."""


@dataclass(frozen=True, slots=True)
class RunningStats:
    """Count, mean and sum of squared deviations of a stream of numbers (Welford)."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, value: float) -> RunningStats:
        count = self.count + 1
        delta = value - self.mean
        mean = self.mean + delta / count
        return RunningStats(count, mean, self.m2 + delta * (value - mean))

    @property
    def std(self) -> float:
        """Sample standard deviation (0 below two samples)."""
        return math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 0.0

    def z(self, value: float, min_samples: int = MIN_SAMPLES) -> float | None:
        """How many standard deviations `value` is from the mean; None while the baseline is too
        thin or flat to say."""
        if self.count < min_samples or self.std == 0:
            return None
        return (value - self.mean) / self.std


@dataclass(frozen=True, slots=True)
class Comparison:
    """One major cluster against its baseline: z-scores of its size and distance."""

    size_z: float | None
    distance_z: float | None


@dataclass(frozen=True, slots=True)
class Baseline:
    """The running statistics of one (scope, exchange, symbol, model, range)."""

    key: BaselineKey
    size: RunningStats = RunningStats()
    distance: RunningStats = RunningStats()
    folded_through: datetime | None = None

    @property
    def samples(self) -> int:
        return self.size.count

    def holds(self, fetched_at: datetime) -> bool:
        """Whether a snapshot fetched at `fetched_at` is already folded in (or older than one
        that is: the baseline moves forward only)."""
        return self.folded_through is not None and fetched_at <= self.folded_through

    def compare(self, major: MajorCluster, min_samples: int = MIN_SAMPLES) -> Comparison:
        return Comparison(
            size_z=self.size.z(math.log10(major.usd), min_samples),
            distance_z=self.distance.z(major.distance_pct, min_samples),
        )

    def fold(self, fetched_at: datetime, majors: Iterable[MajorCluster]) -> Baseline:
        """The baseline with one snapshot's major clusters added; unchanged if it holds it."""
        if self.holds(fetched_at):
            return self
        size, distance = self.size, self.distance
        for major in majors:
            size = size.add(math.log10(major.usd))
            distance = distance.add(major.distance_pct)
        return replace(self, size=size, distance=distance, folded_through=fetched_at)

    def as_row(self) -> dict[str, object]:
        scope, exchange, symbol, model, range_ = self.key
        return {
            "scope": scope,
            "exchange": exchange,
            "symbol": symbol,
            "model": model,
            "range": range_,
            "samples": self.size.count,
            "size_mean": self.size.mean,
            "size_m2": self.size.m2,
            "distance_mean": self.distance.mean,
            "distance_m2": self.distance.m2,
            "folded_through": self.folded_through,
        }

    @classmethod
    def from_row(cls, row: dict[str, object]) -> Baseline:
        """From a `cluster_baselines` row (size and distance always have the same count)."""
        count = int(row["samples"])  # type: ignore[call-overload]
        key = (
            str(row["scope"]),
            str(row["exchange"]),
            str(row["symbol"]),
            int(row["model"]),  # type: ignore[call-overload]
            str(row["range"]),
        )
        return cls(
            key,
            RunningStats(count, float(row["size_mean"]), float(row["size_m2"])),  # type: ignore[arg-type]
            RunningStats(count, float(row["distance_mean"]), float(row["distance_m2"])),  # type: ignore[arg-type]
            row["folded_through"],  # type: ignore[arg-type]
        )


def compare_sides(
    baseline: Baseline, majors: dict[LiquidatedSide, MajorCluster], min_samples: int = MIN_SAMPLES
) -> dict[LiquidatedSide, Comparison]:
    """Each side's major cluster against the baseline."""
    return {side: baseline.compare(major, min_samples) for side, major in majors.items()}
