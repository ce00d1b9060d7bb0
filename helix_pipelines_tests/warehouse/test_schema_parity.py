"""One schema for both backends: after the migrations, DuckDB and PostgreSQL have the same
tables, the same columns (names, order, types, nullability) and the same constraints, and both
match the contracts' polars schemas."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from helix_pipelines.testing.warehouses import (
    SCHEMAS,
    duckdb_warehouse,
    postgres_warehouse,
    rows,
)
from helix_pipelines.warehouse import Warehouse

# The two dialects spell a few types differently.
TYPE_NAMES = {
    "character varying": "text", "varchar": "text", "text": "text",
    "double precision": "double", "double": "double",
    "timestamp with time zone": "timestamptz",
    "smallint": "smallint", "integer": "integer", "bigint": "bigint",
    "boolean": "boolean", "json": "json",
}  # fmt: skip
SQL_TYPE_OF = {
    pl.String: "text", pl.Float64: "double", pl.Datetime: "timestamptz", pl.Int16: "smallint",
    pl.Int32: "integer", pl.Int64: "bigint", pl.Boolean: "boolean",
}  # fmt: skip
COLUMNS = """
SELECT table_name, column_name, lower(data_type), is_nullable
FROM information_schema.columns
WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position
"""
CONSTRAINTS = """
SELECT tc.table_name, tc.constraint_type, kcu.column_name
FROM information_schema.table_constraints tc
JOIN information_schema.key_column_usage kcu
  ON kcu.constraint_name = tc.constraint_name AND kcu.table_name = tc.table_name
WHERE tc.table_schema = current_schema() AND tc.constraint_type IN ('PRIMARY KEY', 'UNIQUE')
"""
DUCKDB_CHECKS = """
SELECT table_name, unnest(constraint_column_names) FROM duckdb_constraints()
WHERE constraint_type = 'CHECK' AND schema_name = current_schema()
"""
POSTGRES_CHECKS = """
SELECT rel.relname, att.attname FROM pg_constraint con
JOIN pg_class rel ON rel.oid = con.conrelid
JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = ANY(con.conkey)
WHERE con.contype = 'c' AND rel.relnamespace = current_schema()::regnamespace
"""


def shape(warehouse: Warehouse) -> dict[str, object]:
    columns: dict[str, list[tuple[str, str, str]]] = {}
    for table, column, data_type, nullable in rows(warehouse, COLUMNS):
        if table != "helix_migrations":
            columns.setdefault(table, []).append((column, TYPE_NAMES[data_type], nullable))
    keys = sorted(rows(warehouse, CONSTRAINTS))
    checks_sql = DUCKDB_CHECKS if warehouse.database.dialect == "duckdb" else POSTGRES_CHECKS
    checks = sorted({(t, c) for t, c in rows(warehouse, checks_sql) if t != "helix_migrations"})
    return {"columns": columns, "keys": keys, "checks": checks}


def test_duckdb_and_postgres_end_with_the_same_schema(tmp_path: Path, pg_dsn: str) -> None:
    embedded = duckdb_warehouse(tmp_path / "helix.duckdb")
    production = postgres_warehouse(pg_dsn)
    try:
        duck, pg = shape(embedded), shape(production)
    finally:
        production.close()
    assert duck["columns"] == pg["columns"]
    assert duck["keys"] == pg["keys"]
    assert duck["checks"] == pg["checks"]
    # ... and the contracts name the same columns, in the same order and of the same types,
    # for every table (binary COPY depends on the types matching exactly).
    contracts = {
        table: [(c, SQL_TYPE_OF[type(t)]) for c, t in schema.items()]
        for table, schema in SCHEMAS.items()
    }
    contracts["symbol_universe"] = [
        ("scope", "text"),
        ("exchange", "text"),
        ("symbol", "text"),
        ("rank", "integer"),
        ("venue_symbol", "text"),
        ("multiplier", "integer"),
    ]
    # JSON columns are contract text (read as text, written as JSON).
    contracts["heatmap_snapshots"] = [
        (c, "json" if c == "source_extra" else t) for c, t in contracts["heatmap_snapshots"]
    ]
    assert {t: [(c, ty) for c, ty, _ in cols] for t, cols in duck["columns"].items()} == contracts
    assert ("heatmap_snapshots", "status") in duck["checks"]
    assert ("liquidation_clusters", "liquidated_side") in duck["checks"]
