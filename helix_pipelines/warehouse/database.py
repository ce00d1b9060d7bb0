"""The small port the repositories write their SQL against, and where the two dialects differ.

Repositories hold the SQL (portable, `?` placeholders, list parameters as `= ANY(?)`); a
`Database` gives them connections and transactions; a `Connection` runs statements, returns
rows or polars frames, and moves frames in bulk: `stage` makes a frame readable as a relation
for the rest of the transaction (DuckDB registers it; PostgreSQL copies it into a temporary
table shaped like a real one), `append` adds a frame's rows to a table (PostgreSQL: binary COPY,
vectorized when the frame allows). Every dialect difference the repositories need is in this
module (`non_finite`), in the two adapters, or in a migration file's suffix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Literal, Protocol

import polars as pl

Dialect = Literal["duckdb", "postgres"]


class Connection(Protocol):
    def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run one statement; the number of rows it touched."""
        ...

    def rows(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]: ...

    def frame(
        self,
        sql: str,
        params: Sequence[object] = (),
        schema: Mapping[str, pl.DataType] | None = None,
    ) -> pl.DataFrame:
        """The result as a polars frame, cast to `schema` when given (the contract types)."""
        ...

    def stage(self, name: str, frame: pl.DataFrame, *, like: str) -> None:
        """Make `frame` readable as relation `name` until the transaction ends; its columns are
        a subset of table `like`'s."""
        ...

    def append(self, table: str, frame: pl.DataFrame) -> None:
        """Add the frame's rows to `table` (columns by name)."""
        ...


class Database(Protocol):
    dialect: Dialect
    description: str  # where the data lives, safe to show (no password)

    def connect(self) -> AbstractContextManager[Connection]:
        """A connection for reads and single statements."""
        ...

    def transaction(self) -> AbstractContextManager[Connection]:
        """A connection inside one transaction: committed when the block ends, rolled back
        when it raises."""
        ...

    def session(self) -> AbstractContextManager[None]:
        """Keep one connection for a burst of small operations where that saves time."""
        ...

    def exclusive(self, name: str) -> AbstractContextManager[None]:
        """Hold a named lock across threads and processes that share this database."""
        ...

    def migrate(self, directory: Path | None = None) -> object:
        """Apply the migrations this dialect runs (of `sql/` unless told); safe on every start."""
        ...

    def close(self) -> None: ...


def quoted(names: Sequence[str]) -> str:
    """Comma-separated double-quoted identifiers (names from the contracts only, never input)."""
    return ", ".join(f'"{n}"' for n in names)


def non_finite(dialect: Dialect, column: str) -> str:
    """SQL that is true where a double column is NaN or infinite."""
    if dialect == "duckdb":
        return f"(isnan({column}) OR isinf({column}))"
    return f"({column} = 'NaN'::float8 OR {column} IN ('Infinity'::float8, '-Infinity'::float8))"
