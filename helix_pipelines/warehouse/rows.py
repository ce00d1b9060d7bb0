"""Keyed writes of contract frames: upsert (replace the rows with the same key) and delete by key.

Tables and their keys come from `contracts.tables.TABLES`, never from input, so every statement
here is a constant built once per table.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from helix_pipelines.contracts.tables import TABLES
from helix_pipelines.warehouse.database import Connection, quoted


def _statements(table: str) -> tuple[str, str]:
    schema, key = TABLES[table]
    columns, keys, staged = quoted(list(schema)), quoted(key), f"incoming_{table}"
    delete = f"DELETE FROM {table} WHERE ({keys}) IN (SELECT {keys} FROM {staged})"  # noqa: S608
    insert = f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {staged}"  # noqa: S608
    return delete, insert


_UPSERTS = {table: _statements(table) for table in TABLES}


def as_contract(table: str, frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with exactly the table's columns, in order, in the contract types."""
    schema, _ = TABLES[table]
    return frame.select(list(schema)).cast(schema)  # type: ignore[arg-type]


def upsert(conn: Connection, table: str, frame: pl.DataFrame) -> int:
    """Replace the rows whose key is in `frame` by the frame's rows; returns how many."""
    if frame.height == 0:
        return 0
    delete, insert = _UPSERTS[table]
    conn.stage(f"incoming_{table}", as_contract(table, frame), like=table)
    conn.execute(delete)
    conn.execute(insert)
    return frame.height


def delete_keys(conn: Connection, table: str, keys: Sequence[str]) -> int:
    """Delete rows of a single-column-key table by key."""
    _, key = TABLES[table]
    (column,) = key
    if not keys:
        return 0
    return conn.execute(f'DELETE FROM {table} WHERE "{column}" = ANY(?)', [list(keys)])  # noqa: S608
