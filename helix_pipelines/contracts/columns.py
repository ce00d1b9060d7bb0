"""Column types shared by every contract table, and the schema of a record type derived from its
fields, so a column has one definition (its field)."""

from __future__ import annotations

from dataclasses import fields

import polars as pl

UTC_TIME = pl.Datetime("us", "UTC")
"""Every timestamp: microseconds, UTC."""

Count = int
"""A count that may exceed a smallint (a plain `int` field is stored as one)."""

# Field types as written in the dataclasses (annotations are strings under
# `from __future__ import annotations`) -> the polars type that holds them.
_POLARS: dict[str, pl.DataType] = {
    "str": pl.String(), "str | None": pl.String(), "Side": pl.String(),
    "OrderStatus": pl.String(), "Tier | None": pl.String(), "Direction | None": pl.String(),
    "PriceSource | None": pl.String(), "Count | None": pl.Int64(),
    "float": pl.Float64(), "float | None": pl.Float64(),
    "int": pl.Int16(), "int | None": pl.Int16(), "bool": pl.Boolean(),
    "datetime": UTC_TIME, "datetime | None": UTC_TIME,
}  # fmt: skip


def schema_of(record: type) -> dict[str, pl.DataType]:
    """The table schema of a record type: its fields, in order, as polars types."""
    return {f.name: _POLARS[str(f.type)] for f in fields(record)}
