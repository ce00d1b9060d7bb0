"""The embedded database: one DuckDB file, run through the port of `warehouse.database`.

DuckDB lets one process write a file at a time, so a connection is opened per operation (or
held for a `session`) and a lock held by another process is waited out with backoff instead of
failing the run. Writes of this process queue on one lock per file: concurrent write
transactions from threads would only meet in DuckDB's optimistic-concurrency conflicts.
"""

from __future__ import annotations

import fcntl
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from helix_pipelines.warehouse.database import Dialect, quoted
from helix_pipelines.warehouse.migrations import MigrationResult, apply_migrations

_LOCK_WAIT_SECONDS = 60.0
DEFAULT_MEMORY_LIMIT = "1GB"
"""DuckDB's own cap (its default is 80 % of RAM): the embedded warehouse shares the machine with
the pipeline, and past the cap DuckDB spills to disk instead of growing."""
_WRITE_LOCKS: dict[Path, threading.RLock] = {}
_THREAD_LOCKS: dict[Path, threading.RLock] = {}


class DuckDBConnection:
    """`Connection` over one DuckDB connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        result = self.con.execute(sql, list(params))
        fetched = result.fetchone() if result.description else None
        # DuckDB answers DML with one row holding the count of rows it touched.
        return int(fetched[0]) if fetched and result.description[0][0] == "Count" else 0

    def rows(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, list(params)).fetchall()

    def frame(
        self,
        sql: str,
        params: Sequence[object] = (),
        schema: Mapping[str, pl.DataType] | None = None,
    ) -> pl.DataFrame:
        frame = pl.DataFrame(pl.from_arrow(self.con.sql(sql, params=list(params)).to_arrow_table()))
        return frame.cast(dict(schema)) if schema else frame  # type: ignore[arg-type]

    def stage(self, name: str, frame: pl.DataFrame, *, like: str) -> None:
        self.con.register(name, frame)

    def append(self, table: str, frame: pl.DataFrame) -> None:
        if frame.height == 0:
            return
        self.con.register("appended", frame)
        columns = quoted(frame.columns)
        # Names come from the contracts (never from input): a constant statement per table.
        self.con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM appended")  # noqa: S608
        self.con.unregister("appended")


class DuckDBDatabase:
    """`Database` on a DuckDB file (created with its parent folders on first use)."""

    dialect: Dialect = "duckdb"

    def __init__(self, path: Path, *, memory_limit: str | None = None) -> None:
        self.path = path
        self.description = f"duckdb: {path}"
        # One configuration per file and process: DuckDB refuses a second one.
        self._config = {"memory_limit": memory_limit or DEFAULT_MEMORY_LIMIT}
        self._held = threading.local()
        self._write_lock = _WRITE_LOCKS.setdefault(path.resolve(), threading.RLock())

    @contextmanager
    def session(self) -> Iterator[None]:
        """Keep one connection open for this thread until the block ends (opening one costs
        ~10 ms; a burst of small operations, like one executor decision, shares it). Nests."""
        if getattr(self._held, "connection", None) is not None:
            yield
            return
        with self._open() as con:
            self._held.connection = con
            try:
                yield
            finally:
                self._held.connection = None

    @contextmanager
    def connect(self) -> Iterator[DuckDBConnection]:
        held = getattr(self._held, "connection", None)
        if held is not None:
            yield DuckDBConnection(held)
            return
        with self._open() as con:
            yield DuckDBConnection(con)

    @contextmanager
    def transaction(self) -> Iterator[DuckDBConnection]:
        with self._write_lock, self.connect() as conn:
            conn.con.execute("BEGIN TRANSACTION")
            try:
                yield conn
            except BaseException:
                conn.con.execute("ROLLBACK")
                raise
            conn.con.execute("COMMIT")

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """A lock file next to the database (flock: released by the OS if the process dies),
        plus a thread lock, for the block."""
        lock_path = self.path.with_name(f"{self.path.name}.{name.replace(':', '-')}.lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with _THREAD_LOCKS.setdefault(lock_path, threading.RLock()), lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def _open(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to the file, waiting (with backoff) while another process holds its lock."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + _LOCK_WAIT_SECONDS
        delay = 0.05
        while True:
            try:
                con = duckdb.connect(str(self.path), config=self._config)
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        try:
            yield con
        finally:
            con.close()

    def migrate(self, directory: Path | None = None) -> MigrationResult:
        with self.session(), self.connect() as conn:
            return apply_migrations(_DuckDBMigrationTarget(self, conn), directory)

    def close(self) -> None:
        """Nothing to release: a connection is opened per operation."""


class _DuckDBMigrationTarget:
    dialect: Dialect = "duckdb"

    def __init__(self, database: DuckDBDatabase, conn: DuckDBConnection) -> None:
        self._database = database
        self._conn = conn

    def connection(self) -> DuckDBConnection:
        return self._conn

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._database.transaction():
            yield

    def lock(self) -> Any:
        return self._database.exclusive("migrations")

    def timescale(self) -> None:
        return None
