"""PostgreSQL / TimescaleDB through the port of `warehouse.database`: pooled connections, binary
COPY for bulk writes, advisory locks, and the TimescaleDB policies where the server has it.

A DSN that names a missing database, a refused login or a server that is down fails at once
with the server's reason (one probe connection before the pool, which would otherwise retry in
the background and raise a PoolTimeout 30 s later). The password is never shown.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from helix_pipelines.secrets import redacted_dsn
from helix_pipelines.warehouse.copy_binary import HEADER, TRAILER, NotFixedWidth, rows_buffer
from helix_pipelines.warehouse.database import Dialect
from helix_pipelines.warehouse.migrations import (
    MigrationResult,
    TimescaleSupport,
    apply_migrations,
    timescale_support,
)

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 10
# Bulk writes go to the server in pieces of about this size: bounded memory per write.
COPY_CHUNK_BYTES = 4 << 20
_MIGRATION_LOCK_KEY = 7_436_201_113  # arbitrary constant: the advisory lock of Helix migrations
ADVISORY_LOCK = "SELECT pg_advisory_lock(hashtextextended(%s, 0))"
ADVISORY_UNLOCK = "SELECT pg_advisory_unlock(hashtextextended(%s, 0))"
TIMESCALE_INSTALLED = "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"
REMOVE_RETENTION = "SELECT remove_retention_policy(%s::regclass, if_exists => true)"
ADD_RETENTION = "SELECT add_retention_policy(%s::regclass, drop_after => make_interval(days => %s))"
REMOVE_COMPRESSION = "SELECT remove_compression_policy(%s::regclass, if_exists => true)"
ADD_COMPRESSION = (
    "SELECT add_compression_policy(%s::regclass, compress_after => make_interval(days => %s))"
)


class WarehouseConnectionError(ConnectionError):
    """The configured PostgreSQL cannot be reached or refuses us; the message says why."""


@dataclass(frozen=True, slots=True)
class TimescalePolicies:
    """Retention and compression ages in days (None: no such policy). TimescaleDB only. The
    cells' retention is the `CellsPolicy`'s (one number for every backend): the database gets
    it as `cells_retention_days`."""

    levels_retention_days: int | None = None
    candles_retention_days: int | None = None
    compress_after_days: int | None = 7


def _pg(statement: str, params: Sequence[object]) -> tuple[str, list[object] | None]:
    """The port's `?` placeholders in psycopg's `%s` style; a statement without parameters is
    sent as it is (so a `%` in it, as in `LIKE 'exit-%'`, is no placeholder)."""
    if not params:
        return statement, None
    return statement.replace("?", "%s"), list(params)


class PostgresConnection:
    """`Connection` over one psycopg connection."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def execute(self, sql_text: str, params: Sequence[object] = ()) -> int:
        with self.conn.cursor() as cur:
            cur.execute(*_pg(sql_text, params))  # type: ignore[arg-type]
            return max(cur.rowcount, 0)

    def rows(self, sql_text: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(*_pg(sql_text, params))  # type: ignore[arg-type]
            return cur.fetchall()

    def frame(
        self,
        sql_text: str,
        params: Sequence[object] = (),
        schema: Mapping[str, pl.DataType] | None = None,
    ) -> pl.DataFrame:
        with self.conn.cursor() as cur:
            cur.execute(*_pg(sql_text, params))  # type: ignore[arg-type]
            names = [d.name for d in cur.description or []]
            rows = cur.fetchall()
        if schema is None:
            # Every row decides the types: a column null for the first thousand rows is no
            # reason to call it null.
            return pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)
        return pl.DataFrame(rows, schema={n: schema[n] for n in names}, orient="row")

    def stage(self, name: str, frame: pl.DataFrame, *, like: str) -> None:
        self.conn.execute(
            sql.SQL("CREATE TEMPORARY TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP").format(
                sql.Identifier(name), sql.Identifier(like)
            )
        )
        self.append(name, frame)

    def append(self, table: str, frame: pl.DataFrame) -> None:
        if frame.height == 0:
            return
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in frame.columns)
        try:
            buffer = HEADER + rows_buffer(frame) + TRAILER
        except NotFixedWidth:
            buffer = None
        with self.conn.cursor() as cur:
            if buffer is not None:
                statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)")
                with cur.copy(statement.format(sql.Identifier(table), columns)) as copy:
                    for start in range(0, len(buffer), COPY_CHUNK_BYTES):
                        copy.write(buffer[start : start + COPY_CHUNK_BYTES])
                return
            statement = sql.SQL("COPY {} ({}) FROM STDIN")
            with cur.copy(statement.format(sql.Identifier(table), columns)) as copy:
                for row in frame.iter_rows():
                    copy.write_row(row)


class PostgresDatabase:
    """`Database` on PostgreSQL (TimescaleDB features when the server has them)."""

    dialect: Dialect = "postgres"

    def __init__(
        self,
        dsn: str,
        *,
        max_connections: int = 4,
        policies: TimescalePolicies | None = None,
        cells_retention_days: int | None = None,
    ) -> None:
        self.description = f"postgres: {redacted_dsn(dsn)}"
        self._dsn = dsn
        self._policies = policies or TimescalePolicies()
        self._cells_retention_days = cells_retention_days
        self._probe()
        self._pool = ConnectionPool(
            dsn,
            min_size=1,
            max_size=max_connections + 1,  # one more for an `exclusive` lock holder
            open=False,
            name="helix-warehouse",
        )
        self._pool.open(wait=True, timeout=30)

    def _probe(self) -> None:
        """Connect once before building the pool: the pool retries in the background and would
        turn "database does not exist" or a wrong password into a PoolTimeout 30 s later."""
        try:
            psycopg.connect(self._dsn, connect_timeout=CONNECT_TIMEOUT_SECONDS).close()
        except psycopg.OperationalError as exc:
            password = conninfo_to_dict(self._dsn).get("password")
            reason = str(exc).strip()
            if password:
                reason = reason.replace(str(password), "***")
            raise WarehouseConnectionError(
                f"cannot use the warehouse {redacted_dsn(self._dsn)}: {' '.join(reason.split())}"
            ) from None

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def connect(self) -> Iterator[PostgresConnection]:
        with self._pool.connection() as conn:
            yield PostgresConnection(conn)

    @contextmanager
    def transaction(self) -> Iterator[PostgresConnection]:
        with self._pool.connection() as conn, conn.transaction():
            yield PostgresConnection(conn)

    @contextmanager
    def session(self) -> Iterator[None]:
        """Nothing to hold: the pool already keeps connections open."""
        yield

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """A session-level advisory lock on a dedicated pooled connection, held for the block:
        every process on this database that asks for `name` waits its turn."""
        with self._pool.connection() as conn:
            conn.execute(ADVISORY_LOCK, (name,))
            try:
                yield
            finally:
                conn.execute(ADVISORY_UNLOCK, (name,))

    def migrate(self, directory: Path | None = None) -> MigrationResult:
        with psycopg.connect(self._dsn, autocommit=True) as conn:
            result = apply_migrations(PostgresMigrationTarget(conn), directory)
            if result.timescale:
                self._apply_policies(conn)
        return result

    def _apply_policies(self, conn: psycopg.Connection) -> None:
        row = conn.execute(TIMESCALE_INSTALLED).fetchone()
        if not (row and row[0]):
            return
        policies = self._policies
        retention = {
            "liquidation_data_raw": self._cells_retention_days,
            "liquidation_price_levels": policies.levels_retention_days,
            "heatmap_candles": policies.candles_retention_days,
        }
        for table, days in retention.items():
            conn.execute(REMOVE_RETENTION, (table,))
            if days is not None:
                conn.execute(ADD_RETENTION, (table, days))
        for table in retention:
            conn.execute(REMOVE_COMPRESSION, (table,))
            if policies.compress_after_days is not None:
                conn.execute(ADD_COMPRESSION, (table, policies.compress_after_days))

    def __enter__(self) -> PostgresDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PostgresMigrationTarget:
    dialect: Dialect = "postgres"

    def __init__(self, conn: psycopg.Connection) -> None:
        if not conn.autocommit:
            raise ValueError("migrations need an autocommit connection")
        self._conn = conn
        self._port = PostgresConnection(conn)

    def connection(self) -> PostgresConnection:
        return self._port

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._conn.transaction():
            yield

    @contextmanager
    def lock(self) -> Iterator[None]:
        self._conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK_KEY,))
        try:
            yield
        finally:
            self._conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK_KEY,))

    def timescale(self) -> TimescaleSupport:
        return timescale_support(self._port)
