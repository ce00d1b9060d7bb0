"""Throwaway PostgreSQL databases for benchmarks (same server and rules as the tests)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ADMIN_DSN = os.environ.get(
    "HELIX_BENCH_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@contextmanager
def scratch_database() -> Iterator[str]:
    """DSN of a fresh database, dropped on exit."""
    name = f"helix_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(**{**conninfo_to_dict(ADMIN_DSN), "dbname": name})
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
