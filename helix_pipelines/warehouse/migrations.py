"""Numbered SQL migrations from `sql/`, one runner for both dialects, recorded in
`helix_migrations` (a file runs once per database).

- `NNN_name.sql` is portable SQL: PostgreSQL and DuckDB both run it, so the embedded warehouse
  has the same tables, columns and constraints as production (a test holds them to it).
- `NNN_name.postgres.sql` runs on PostgreSQL only (BRIN indexes, constraint changes DuckDB
  cannot make).
- `NNN_name.timescale.sql` runs only where TimescaleDB is usable (`timescale_support`); on plain
  PostgreSQL they are skipped with one log line and not recorded, so they apply later if
  TimescaleDB is installed and preloaded.
- A file whose first line contains `helix:no-transaction` runs statement by statement outside a
  transaction (continuous aggregates require it); every other file runs in one transaction.

Concurrent starts are safe: the target's lock (a PostgreSQL advisory lock, a lock file next to
a DuckDB file) admits one migrator at a time.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, Self

from helix_pipelines.warehouse.database import Connection, Dialect

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+(?:\.(postgres|timescale))?\.sql$")
Only = Literal["postgres", "timescale"]

CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS helix_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
SELECT_APPLIED = "SELECT version FROM helix_migrations"
INSERT_APPLIED = "INSERT INTO helix_migrations (version) VALUES (?)"
# What the server says about TimescaleDB, in one round trip: created in this database,
# installed on the server (creatable), and preloaded (CREATE EXTENSION needs that, and a server
# without it closes the connection instead of raising an ordinary error).
TIMESCALE_FACTS = """
SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'),
       EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'),
       coalesce(current_setting('shared_preload_libraries', true), '')
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: str  # file name without '.sql'
    path: Path
    only: Only | None  # None: portable, every dialect runs it
    transactional: bool

    @property
    def timescale_only(self) -> bool:
        return self.only == "timescale"

    def runs_on(self, dialect: Dialect) -> bool:
        return self.only is None or dialect == "postgres"

    @property
    def statements(self) -> list[str]:
        text = self.path.read_text()
        return [s.strip() for s in text.split(";\n") if _has_sql(s)]


def _has_sql(chunk: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in chunk.splitlines())


def sql_dir() -> Path:
    """`sql/` inside the installed package (wheel) or at the repository root (editable)."""
    packaged = Path(__file__).resolve().parents[1] / "sql"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "sql"


def discover(directory: Path | None = None) -> list[Migration]:
    directory = directory or sql_dir()
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise ValueError(
                f"migration file {path.name} is not named NNN_name[.postgres|.timescale].sql"
            )
        first_line = path.read_text().split("\n", 1)[0]
        migrations.append(
            Migration(
                version=path.name.removesuffix(".sql"),
                path=path,
                only=match.group(2),  # type: ignore[arg-type]
                transactional="helix:no-transaction" not in first_line,
            )
        )
    versions = [m.version[:3] for m in migrations]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration numbers in {directory}: {versions}")
    return migrations


@dataclass(frozen=True, slots=True)
class TimescaleSupport:
    """Whether the Timescale migrations can run here, decided from what the server reports.

    `created`: the extension exists in this database; `installed`: the server has its files
    (`pg_available_extensions`); `preloaded`: `timescaledb` is in `shared_preload_libraries`.
    TimescaleDB works only when preloaded, whether or not it was created yet.
    """

    created: bool
    installed: bool
    preloaded: bool

    @classmethod
    def from_answers(cls, created: bool, installed: bool, preload_libraries: str) -> Self:
        libraries = {lib.strip().strip('"') for lib in preload_libraries.split(",")}
        return cls(created, installed or created, "timescaledb" in libraries)

    @property
    def usable(self) -> bool:
        return self.installed and self.preloaded

    def explanation(self) -> str:
        """One line for the log: what was found and, when it is not usable, the fix."""
        if self.usable:
            state = "created" if self.created else "preloaded, created on first use"
            return f"TimescaleDB is available ({state})"
        if self.installed:
            return (
                "TimescaleDB is installed on the server but not preloaded: add timescaledb to "
                "shared_preload_libraries in postgresql.conf and restart PostgreSQL; "
                "continuing as plain PostgreSQL"
            )
        return "TimescaleDB is not installed on this server; continuing as plain PostgreSQL"


class MigrationTarget(Protocol):
    """What the runner needs of a database: an autocommit connection, transactions on it, a
    lock that serializes migrators, and (PostgreSQL) what the server says about TimescaleDB."""

    dialect: Dialect

    def connection(self) -> Connection: ...

    def transaction(self) -> AbstractContextManager[None]: ...

    def lock(self) -> AbstractContextManager[None]: ...

    def timescale(self) -> TimescaleSupport | None: ...


def timescale_support(conn: Connection) -> TimescaleSupport:
    row = conn.rows(TIMESCALE_FACTS)[0]
    return TimescaleSupport.from_answers(bool(row[0]), bool(row[1]), str(row[2]))


@dataclass(frozen=True, slots=True)
class MigrationResult:
    applied: list[str]
    skipped_timescale: list[str]
    timescale: bool


def apply_migrations(target: MigrationTarget, directory: Path | None = None) -> MigrationResult:
    """Apply the pending migrations this dialect runs, in number order."""
    migrations = [m for m in discover(directory) if m.runs_on(target.dialect)]
    conn = target.connection()
    with target.lock():
        conn.execute(CREATE_MIGRATIONS_TABLE)
        applied_before = {row[0] for row in conn.rows(SELECT_APPLIED)}
        support = target.timescale()
        timescale = support is not None and support.usable
        applied, skipped = [], []
        for migration in _pending(migrations, applied_before):
            if migration.timescale_only and not timescale:
                skipped.append(migration.version)
                continue
            _apply(target, conn, migration)
            applied.append(migration.version)
            log.info("applied migration %s", migration.version)
        if skipped and support is not None:
            level = logging.WARNING if support.installed else logging.INFO
            log.log(level, "%s (skipped %s)", support.explanation(), ", ".join(skipped))
        return MigrationResult(applied, skipped, timescale)


def _pending(migrations: list[Migration], applied: set[str]) -> Iterator[Migration]:
    return (m for m in migrations if m.version not in applied)


def _apply(target: MigrationTarget, conn: Connection, migration: Migration) -> None:
    if migration.transactional:
        with target.transaction():
            for statement in migration.statements:
                conn.execute(statement)
            conn.execute(INSERT_APPLIED, (migration.version,))
        return
    for statement in migration.statements:
        conn.execute(statement)
    conn.execute(INSERT_APPLIED, (migration.version,))
