"""Which heatmap series keep their full grid in the warehouse, and for how long.

Every loaded snapshot's ledger row, candles and price-level profile go to the warehouse, and its
full grid to the Parquet archive. The grid's cells also go to `liquidation_data_raw` only for
the (model, range) pairs named here: at real sizes a full sweep is about half a billion cells,
which no warehouse on one machine should hold row by row, while a few series kept for ad-hoc
SQL (say Model 3 on 12h and 24h for a week) are cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

from helix_pipelines.contracts.vocabulary import MODELS, RANGES, parse_series, series_order


@dataclass(frozen=True, slots=True)
class CellsPolicy:
    """`series`: the (model, range) pairs whose cells the warehouse keeps; `retention_days`: how
    long (None: for ever). Parsed from text like `none`, `all`, `3/12h,3/24h` or `3/*`."""

    series: frozenset[tuple[int, str]] = frozenset()
    retention_days: int | None = 30

    def __post_init__(self) -> None:
        if self.retention_days is not None and self.retention_days < 1:
            raise ValueError(f"cells retention must be at least 1 day, got {self.retention_days}")

    def keeps(self, model: int, range_: str) -> bool:
        return (model, range_) in self.series

    @classmethod
    def parse(cls, text: str | None, retention_days: int | None = 30) -> CellsPolicy:
        """`none` or empty: no cells; `all`: every series; else comma-separated `model/range`
        items where either side may be `*` (`3/*` is every range of Model 3)."""
        return cls(frozenset(parse_series(text, "warehouse cells")), retention_days)

    def describe(self) -> str:
        if not self.series:
            return "none"
        if len(self.series) == len(MODELS) * len(RANGES):
            return "all"
        return ",".join(f"{m}/{r}" for m, r in sorted(self.series, key=series_order))
