"""The embedded warehouse: one DuckDB file, the same tables and columns as PostgreSQL.

DuckDB lets one process write a file at a time, so a connection is opened per operation and a
lock held by another run is waited out with backoff instead of failing the run.
"""

from __future__ import annotations

import fcntl
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from helix_pipelines.heatmaps.contracts import CANDLES_SCHEMA
from helix_pipelines.heatmaps.normalize import NormalizedSnapshot
from helix_pipelines.warehouse.base import (
    QualityReport,
    StoreResult,
    UniverseMember,
    unique_snapshots,
)
from helix_pipelines.warehouse.migrations import sql_dir
from helix_pipelines.warehouse.shared_sql import (
    CANDLES_SINCE,
    FRAME_TABLES,
    LATEST_SNAPSHOTS,
    LATEST_SNAPSHOTS_SCHEMA,
    LEDGER_SUMMARY,
    RECENTLY_UNAVAILABLE,
    SNAPSHOT_CELLS_SCHEMA,
    UPSERT_SQL,
    table_spec,
)

SCHEMA_DDL = """
CREATE TABLE IF NOT EXISTS heatmap_snapshots (
    snapshot_id        VARCHAR PRIMARY KEY,
    fetched_at         TIMESTAMPTZ NOT NULL,
    scope              VARCHAR NOT NULL,
    exchange           VARCHAR NOT NULL,
    symbol             VARCHAR NOT NULL,
    model              SMALLINT NOT NULL,
    "range"            VARCHAR NOT NULL,
    schema_variant     VARCHAR,
    n_levels           INTEGER,
    n_candles          INTEGER,
    n_cells            INTEGER,
    payload_sha256     VARCHAR NOT NULL,
    source_update_time TIMESTAMPTZ,
    status             VARCHAR NOT NULL,
    reason             VARCHAR,
    x_columns          INTEGER,
    x_axis             VARCHAR,
    candle_ts_unit     VARCHAR,
    first_candle_ts    TIMESTAMPTZ,
    last_candle_ts     TIMESTAMPTZ,
    source_extra       JSON
);
CREATE TABLE IF NOT EXISTS liquidation_data_raw (
    snapshot_id VARCHAR NOT NULL,
    fetched_at  TIMESTAMPTZ NOT NULL,
    scope       VARCHAR NOT NULL,
    exchange    VARCHAR NOT NULL,
    symbol      VARCHAR NOT NULL,
    model       SMALLINT NOT NULL,
    "range"     VARCHAR NOT NULL,
    candle_ts   TIMESTAMPTZ,
    price       DOUBLE NOT NULL,
    liq_usd     DOUBLE NOT NULL,
    x_index     INTEGER
);
CREATE TABLE IF NOT EXISTS heatmap_candles (
    scope      VARCHAR NOT NULL,
    exchange   VARCHAR NOT NULL,
    symbol     VARCHAR NOT NULL,
    "range"    VARCHAR NOT NULL,
    ts         TIMESTAMPTZ NOT NULL,
    open       DOUBLE NOT NULL,
    high       DOUBLE NOT NULL,
    low        DOUBLE NOT NULL,
    close      DOUBLE NOT NULL,
    volume_usd DOUBLE NOT NULL,
    PRIMARY KEY (scope, exchange, symbol, "range", ts)
);
CREATE TABLE IF NOT EXISTS symbol_universe (
    scope    VARCHAR NOT NULL,
    exchange VARCHAR NOT NULL,
    symbol   VARCHAR NOT NULL,
    rank     INTEGER NOT NULL,
    PRIMARY KEY (scope, exchange, symbol)
);
-- Files written before sql/006: the same columns, added in place.
ALTER TABLE heatmap_snapshots ADD COLUMN IF NOT EXISTS x_columns INTEGER;
ALTER TABLE heatmap_snapshots ADD COLUMN IF NOT EXISTS x_axis VARCHAR;
ALTER TABLE heatmap_snapshots ADD COLUMN IF NOT EXISTS candle_ts_unit VARCHAR;
ALTER TABLE heatmap_snapshots ADD COLUMN IF NOT EXISTS first_candle_ts TIMESTAMPTZ;
ALTER TABLE heatmap_snapshots ADD COLUMN IF NOT EXISTS last_candle_ts TIMESTAMPTZ;
ALTER TABLE heatmap_snapshots ADD COLUMN IF NOT EXISTS source_extra JSON;
ALTER TABLE liquidation_data_raw ADD COLUMN IF NOT EXISTS x_index INTEGER;
ALTER TABLE liquidation_data_raw ALTER COLUMN candle_ts DROP NOT NULL;
"""


# Column lists are spelled out (not generated) so every statement is a plain constant; the
# contract test checks them against the polars schemas.
INSERT_LEDGER = """
INSERT INTO heatmap_snapshots (snapshot_id, fetched_at, scope, exchange, symbol, model, "range",
    schema_variant, n_levels, n_candles, n_cells, payload_sha256, source_update_time, status, reason,
    x_columns, x_axis, candle_ts_unit, first_candle_ts, last_candle_ts, source_extra)
SELECT snapshot_id, fetched_at, scope, exchange, symbol, model, "range",
    schema_variant, n_levels, n_candles, n_cells, payload_sha256, source_update_time, status, reason,
    x_columns, x_axis, candle_ts_unit, first_candle_ts, last_candle_ts, source_extra
FROM new_ledger
"""
INSERT_CELLS = """
INSERT INTO liquidation_data_raw (snapshot_id, fetched_at, scope, exchange, symbol, model, "range",
    candle_ts, price, liq_usd, x_index)
SELECT snapshot_id, fetched_at, scope, exchange, symbol, model, "range", candle_ts, price, liq_usd,
    x_index
FROM new_cells
"""
UPSERT_CANDLES = """
INSERT INTO heatmap_candles (scope, exchange, symbol, "range", ts, open, high, low, close, volume_usd)
SELECT scope, exchange, symbol, "range", ts, open, high, low, close, volume_usd FROM new_candles
ON CONFLICT (scope, exchange, symbol, "range", ts) DO UPDATE SET
    open = excluded.open, high = excluded.high, low = excluded.low,
    close = excluded.close, volume_usd = excluded.volume_usd
"""
SELECT_KNOWN = (
    "SELECT snapshot_id, status FROM heatmap_snapshots WHERE snapshot_id IN (SELECT unnest(?))"
)
SNAPSHOT_CELLS = """
SELECT snapshot_id, x_index, candle_ts, price, liq_usd FROM liquidation_data_raw
WHERE snapshot_id IN (SELECT unnest(?))
"""
SELECT_UNIVERSE = "SELECT scope, exchange, symbol, rank FROM symbol_universe ORDER BY rank"
INSERT_UNIVERSE = "INSERT INTO symbol_universe (scope, exchange, symbol, rank) VALUES (?, ?, ?, ?)"
QUALITY = """
WITH snaps AS (SELECT DISTINCT unnest(?) AS snapshot_id),
ledger AS (
    SELECT s.snapshot_id, s.n_cells FROM heatmap_snapshots s JOIN snaps USING (snapshot_id)
    WHERE s.status = 'loaded'
),
cells AS (SELECT c.* FROM liquidation_data_raw c JOIN ledger USING (snapshot_id)),
counted AS (SELECT snapshot_id, count(*) AS n FROM cells GROUP BY snapshot_id)
SELECT
    (SELECT count(*) FROM ledger),
    (SELECT count(*) FROM cells),
    (SELECT count(*) FROM ledger l LEFT JOIN counted c USING (snapshot_id)
      WHERE coalesce(c.n, 0) <> l.n_cells),
    (SELECT count(*) FROM cells WHERE price <= 0 OR isnan(price) OR isinf(price)),
    (SELECT count(*) FROM cells WHERE liq_usd < 0 OR isnan(liq_usd) OR isinf(liq_usd)),
    (SELECT count(*) FROM cells c LEFT JOIN heatmap_candles k
       ON k.scope = c.scope AND k.exchange = c.exchange AND k.symbol = c.symbol
      AND k."range" = c."range" AND k.ts = c.candle_ts
      WHERE c.candle_ts IS NOT NULL AND k.ts IS NULL)
"""

_LOCK_WAIT_SECONDS = 60.0
_WRITE_LOCKS: dict[Path, threading.RLock] = {}
_THREAD_LOCKS: dict[Path, threading.RLock] = {}
# The analytics and executor tables use portable SQL: those PostgreSQL migrations run here as is.
PORTABLE_DDL_FILES = (
    "004_analytics_tables.sql",
    "005_executor_tables.sql",
    "007_executor_fills.sql",
)


class DuckDBWarehouse:
    """`Warehouse` on a DuckDB file (created with its parent folders on first use)."""

    kind = "duckdb"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"duckdb: {path}"
        self._held = threading.local()
        # DuckDB has one writer per file; concurrent write transactions from threads of this
        # process would only meet in optimistic-concurrency conflicts, so they queue instead.
        self._write_lock = _WRITE_LOCKS.setdefault(path.resolve(), threading.RLock())

    @contextmanager
    def session(self) -> Iterator[None]:
        """Keep one connection open for this thread until the block ends (opening one costs ~10 ms;
        a burst of small operations, like one executor decision, shares it). Nests."""
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
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """This thread's session connection, or a fresh one for this operation."""
        held = getattr(self._held, "connection", None)
        if held is not None:
            yield held
            return
        with self._open() as con:
            yield con

    @contextmanager
    def _open(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to the file, waiting (with backoff) while another process holds its lock."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + _LOCK_WAIT_SECONDS
        delay = 0.05
        while True:
            try:
                con = duckdb.connect(str(self.path))
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

    def close(self) -> None:
        """Nothing to release: a connection is opened per operation."""

    def ensure_schema(self) -> None:
        with self.connect() as con:
            con.execute(SCHEMA_DDL)
            for name in PORTABLE_DDL_FILES:
                con.execute((sql_dir() / name).read_text())

    def known_snapshots(self, snapshot_ids: Sequence[str]) -> dict[str, str]:
        if not snapshot_ids:
            return {}
        with self.connect() as con:
            rows = con.execute(SELECT_KNOWN, [list(snapshot_ids)]).fetchall()
        return {row[0]: row[1] for row in rows}

    def store_snapshots(self, snapshots: Sequence[NormalizedSnapshot]) -> StoreResult:
        if not snapshots:
            return StoreResult()
        with self._write_lock, self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                known = {
                    row[0]
                    for row in con.execute(
                        SELECT_KNOWN, [[s.ledger.snapshot_id for s in snapshots]]
                    ).fetchall()
                }
                fresh = [
                    s for s in unique_snapshots(snapshots) if s.ledger.snapshot_id not in known
                ]
                result = StoreResult(already_known=len(snapshots) - len(fresh))
                if fresh:
                    result = result + self._insert(con, fresh)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return result

    def _insert(
        self, con: duckdb.DuckDBPyConnection, fresh: list[NormalizedSnapshot]
    ) -> StoreResult:
        new_ledger = pl.concat([s.ledger.to_frame() for s in fresh])
        loaded = [s for s in fresh if s.loaded]
        new_cells = pl.concat([s.cells for s in loaded]) if loaded else None
        new_candles = (
            pl.concat([s.candles for s in loaded]).unique(
                ["scope", "exchange", "symbol", "range", "ts"], keep="last", maintain_order=True
            )
            if loaded
            else None
        )
        con.register("new_ledger", new_ledger)
        con.execute(INSERT_LEDGER)
        if new_cells is not None and new_cells.height:
            con.register("new_cells", new_cells)
            con.execute(INSERT_CELLS)
        if new_candles is not None and new_candles.height:
            con.register("new_candles", new_candles)
            con.execute(UPSERT_CANDLES)
        return StoreResult(
            snapshots_added=len(loaded),
            quarantined_added=sum(s.quarantined for s in fresh),
            unavailable_added=sum(s.ledger.status == "unavailable" for s in fresh),
            cells_added=new_cells.height if new_cells is not None else 0,
            candles_upserted=new_candles.height if new_candles is not None else 0,
        )

    def replace_universe(self, members: Sequence[UniverseMember]) -> None:
        with self._write_lock, self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            con.execute("DELETE FROM symbol_universe")
            con.executemany(
                INSERT_UNIVERSE, [(m.scope, m.exchange, m.symbol, m.rank) for m in members]
            )
            con.execute("COMMIT")

    def load_universe(self) -> list[UniverseMember]:
        with self.connect() as con:
            return [UniverseMember(*row) for row in con.execute(SELECT_UNIVERSE).fetchall()]

    def quality(self, snapshot_ids: Sequence[str]) -> QualityReport:
        with self.connect() as con:
            row = con.execute(QUALITY, [list(snapshot_ids)]).fetchone()
        assert row is not None
        return QualityReport(*(int(v) for v in row))

    def recently_unavailable(self, range_: str, since: datetime) -> set[tuple[str, str, str]]:
        with self.connect() as con:
            rows = con.execute(RECENTLY_UNAVAILABLE, [range_, since]).fetchall()
        return {(row[0], row[1], row[2]) for row in rows}

    def ledger_summary(self) -> list[dict[str, object]]:
        with self.connect() as con:
            cursor = con.execute(LEDGER_SUMMARY)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    # -- analytics -----------------------------------------------------------------------------

    def latest_snapshots(self, depth: int = 2) -> pl.DataFrame:
        with self.connect() as con:
            frame = _frame(con.sql(LATEST_SNAPSHOTS, params=[depth]))
        return frame.cast(LATEST_SNAPSHOTS_SCHEMA)  # type: ignore[arg-type]

    def snapshot_cells(self, snapshot_ids: Sequence[str]) -> pl.DataFrame:
        with self.connect() as con:
            frame = _frame(con.sql(SNAPSHOT_CELLS, params=[list(snapshot_ids)]))
        return frame.cast(SNAPSHOT_CELLS_SCHEMA)  # type: ignore[arg-type]

    def candles_since(self, since: datetime) -> pl.DataFrame:
        with self.connect() as con:
            frame = _frame(con.sql(CANDLES_SINCE, params=[since]))
        return frame.cast(CANDLES_SCHEMA)  # type: ignore[arg-type]

    def upsert_frame(self, table: str, frame: pl.DataFrame) -> int:
        columns, _ = table_spec(table)
        delete, insert, _ = UPSERT_SQL[table]
        if frame.height == 0:
            return 0
        with self._write_lock, self.connect() as con:
            con.register("incoming", frame.select(columns))
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(delete)
                con.execute(insert)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return frame.height

    def read_table(self, table: str) -> pl.DataFrame:
        table_spec(table)
        with self.connect() as con:
            frame = _frame(con.sql(UPSERT_SQL[table][2]))
        return frame.cast(FRAME_TABLES[table][0])  # type: ignore[arg-type]


def _frame(result: duckdb.DuckDBPyRelation) -> pl.DataFrame:
    """A query result as a polars frame (through Arrow, without copying row by row)."""
    return pl.DataFrame(pl.from_arrow(result.to_arrow_table()))
