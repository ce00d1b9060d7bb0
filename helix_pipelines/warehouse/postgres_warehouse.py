"""The PostgreSQL / TimescaleDB warehouse: binary COPY loads, ledger first, pooled connections.

One transaction per batch. The ledger insert comes first and is `ON CONFLICT DO NOTHING
RETURNING`, so only snapshots this transaction actually added get their cells copied: a replay
costs one statement and adds nothing, and two loaders racing on one snapshot store it once.
Candles go through a temporary table and are upserted in key order, a lock order shared by every
loader, so concurrent loads of different partitions cannot deadlock on shared candles.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import polars as pl
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool

from helix_pipelines.heatmaps.contracts import CANDLES_SCHEMA, LEDGER_SCHEMA
from helix_pipelines.heatmaps.normalize import NormalizedSnapshot
from helix_pipelines.warehouse.base import (
    QualityReport,
    StoreResult,
    UniverseMember,
    unique_snapshots,
)
from helix_pipelines.warehouse.copy_binary import HEADER, TRAILER, candles_buffer, cells_buffer
from helix_pipelines.warehouse.migrations import MigrationResult, apply_migrations
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

log = logging.getLogger(__name__)

INSERT_LEDGER = """
INSERT INTO heatmap_snapshots (snapshot_id, fetched_at, scope, exchange, symbol, model, "range",
    schema_variant, n_levels, n_candles, n_cells, payload_sha256, source_update_time, status, reason,
    x_columns, x_axis, candle_ts_unit, first_candle_ts, last_candle_ts, source_extra)
SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::text[], %s::text[],
    %s::smallint[], %s::text[], %s::text[], %s::int[], %s::int[], %s::int[], %s::text[],
    %s::timestamptz[], %s::text[], %s::text[], %s::int[], %s::text[], %s::text[],
    %s::timestamptz[], %s::timestamptz[], %s::json[])
ON CONFLICT (snapshot_id) DO NOTHING
RETURNING snapshot_id
"""
COPY_CELLS = """
COPY liquidation_data_raw (snapshot_id, fetched_at, scope, exchange, symbol, model, "range",
    candle_ts, price, liq_usd, x_index) FROM STDIN (FORMAT BINARY)
"""
CREATE_CANDLES_STAGE = """
CREATE TEMPORARY TABLE candles_stage (LIKE heatmap_candles INCLUDING DEFAULTS) ON COMMIT DROP
"""
COPY_CANDLES_STAGE = """
COPY candles_stage (scope, exchange, symbol, "range", ts, open, high, low, close, volume_usd)
FROM STDIN (FORMAT BINARY)
"""
UPSERT_CANDLES = """
INSERT INTO heatmap_candles (scope, exchange, symbol, "range", ts, open, high, low, close, volume_usd)
SELECT DISTINCT ON (scope, exchange, symbol, "range", ts)
       scope, exchange, symbol, "range", ts, open, high, low, close, volume_usd
FROM candles_stage
ORDER BY scope, exchange, symbol, "range", ts
ON CONFLICT (scope, exchange, symbol, "range", ts) DO UPDATE SET
    open = excluded.open, high = excluded.high, low = excluded.low,
    close = excluded.close, volume_usd = excluded.volume_usd
"""
SELECT_KNOWN = "SELECT snapshot_id, status FROM heatmap_snapshots WHERE snapshot_id = ANY(%s)"
SELECT_UNIVERSE = "SELECT scope, exchange, symbol, rank FROM symbol_universe ORDER BY rank"
DELETE_UNIVERSE = "DELETE FROM symbol_universe"
INSERT_UNIVERSE = (
    "INSERT INTO symbol_universe (scope, exchange, symbol, rank) VALUES (%s, %s, %s, %s)"
)
QUALITY = """
WITH snaps AS (SELECT DISTINCT unnest(%s::text[]) AS snapshot_id),
ledger AS (
    SELECT s.snapshot_id, s.n_cells, s.fetched_at FROM heatmap_snapshots s
    JOIN snaps USING (snapshot_id) WHERE s.status = 'loaded'
),
cells AS (
    -- The fetched_at bounds let the BRIN index find the rows; snapshot_id then picks them.
    SELECT c.* FROM liquidation_data_raw c JOIN ledger USING (snapshot_id)
    WHERE c.fetched_at BETWEEN (SELECT min(fetched_at) FROM ledger)
                           AND (SELECT max(fetched_at) FROM ledger)
),
counted AS (SELECT snapshot_id, count(*) AS n FROM cells GROUP BY snapshot_id)
SELECT
    (SELECT count(*) FROM ledger),
    (SELECT count(*) FROM cells),
    (SELECT count(*) FROM ledger l LEFT JOIN counted c USING (snapshot_id)
      WHERE coalesce(c.n, 0) <> l.n_cells),
    (SELECT count(*) FROM cells
      WHERE price <= 0 OR price = 'NaN'::float8 OR price IN ('Infinity', '-Infinity')),
    (SELECT count(*) FROM cells
      WHERE liq_usd < 0 OR liq_usd = 'NaN'::float8 OR liq_usd IN ('Infinity', '-Infinity')),
    (SELECT count(*) FROM cells c LEFT JOIN heatmap_candles k
       ON k.scope = c.scope AND k.exchange = c.exchange AND k.symbol = c.symbol
      AND k."range" = c."range" AND k.ts = c.candle_ts
      WHERE c.candle_ts IS NOT NULL AND k.ts IS NULL)
"""
TIMESCALE_INSTALLED = "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')"
REMOVE_RETENTION = "SELECT remove_retention_policy(%s::regclass, if_exists => true)"
ADD_RETENTION = "SELECT add_retention_policy(%s::regclass, drop_after => make_interval(days => %s))"
REMOVE_COMPRESSION = "SELECT remove_compression_policy(%s::regclass, if_exists => true)"
ADD_COMPRESSION = (
    "SELECT add_compression_policy(%s::regclass, compress_after => make_interval(days => %s))"
)

# Chunks of COPY data sent at a time: bounded memory per write, and progress the server sees.
COPY_CHUNK_BYTES = 4 << 20

SNAPSHOT_CELLS = """
SELECT c.snapshot_id, c.x_index, c.candle_ts, c.price, c.liq_usd
FROM liquidation_data_raw c JOIN heatmap_snapshots s USING (snapshot_id)
WHERE s.snapshot_id = ANY(%s)
  AND c.fetched_at BETWEEN (SELECT min(fetched_at) FROM heatmap_snapshots WHERE snapshot_id = ANY(%s))
                       AND (SELECT max(fetched_at) FROM heatmap_snapshots WHERE snapshot_id = ANY(%s))
"""
ADVISORY_LOCK = "SELECT pg_advisory_lock(hashtextextended(%s, 0))"
ADVISORY_UNLOCK = "SELECT pg_advisory_unlock(hashtextextended(%s, 0))"
CREATE_INCOMING = "CREATE TEMPORARY TABLE incoming (LIKE {table}) ON COMMIT DROP"


def _pg(statement: str) -> str:
    """A shared `?`-placeholder statement in psycopg's `%s` style."""
    return statement.replace("?", "%s")


@dataclass(frozen=True, slots=True)
class TimescalePolicies:
    """Retention and compression ages in days (None: no such policy). TimescaleDB only."""

    cells_retention_days: int | None = 400
    candles_retention_days: int | None = None
    compress_after_days: int | None = 7


class WarehouseConnectionError(ConnectionError):
    """The configured PostgreSQL cannot be reached or refuses us; the message says why."""


# A probe connection fails in this many seconds at most when the host does not answer; a
# missing database or a refused login fails at once with the server's reason.
CONNECT_TIMEOUT_SECONDS = 10


def redacted_dsn(dsn: str) -> str:
    """The DSN without its password, for logs and metadata."""
    params = conninfo_to_dict(dsn)
    if "password" in params:
        params["password"] = "***"  # noqa: S105 - the mask, not a password
    return make_conninfo(**params)  # type: ignore[arg-type]


class PostgresWarehouse:
    """`Warehouse` on PostgreSQL (TimescaleDB features when the extension exists)."""

    kind = "postgres"

    def __init__(
        self,
        dsn: str,
        *,
        min_connections: int = 1,
        max_connections: int = 4,
        policies: TimescalePolicies | None = None,
    ) -> None:
        self.description = f"postgres: {redacted_dsn(dsn)}"
        self._dsn = dsn
        self._policies = policies or TimescalePolicies()
        self._probe()
        self._pool = ConnectionPool(
            dsn,
            min_size=min_connections,
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
            reason = str(exc).strip().replace(str(password), "***") if password else str(exc)
            raise WarehouseConnectionError(
                f"cannot use the warehouse {redacted_dsn(self._dsn)}: {reason.strip()}"
            ) from None

    def close(self) -> None:
        self._pool.close()

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

    def __enter__(self) -> PostgresWarehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ensure_schema(self) -> MigrationResult:
        with psycopg.connect(self._dsn, autocommit=True) as conn:
            result = apply_migrations(conn)
            if result.timescale:
                self._apply_policies(conn)
        return result

    def _apply_policies(self, conn: psycopg.Connection) -> None:
        row = conn.execute(TIMESCALE_INSTALLED).fetchone()
        if not (row and row[0]):
            return
        policies = self._policies
        for table, days in (
            ("liquidation_data_raw", policies.cells_retention_days),
            ("heatmap_candles", policies.candles_retention_days),
        ):
            conn.execute(REMOVE_RETENTION, (table,))
            if days is not None:
                conn.execute(ADD_RETENTION, (table, days))
        for table in ("liquidation_data_raw", "heatmap_candles"):
            conn.execute(REMOVE_COMPRESSION, (table,))
            if policies.compress_after_days is not None:
                conn.execute(ADD_COMPRESSION, (table, policies.compress_after_days))

    def known_snapshots(self, snapshot_ids: Sequence[str]) -> dict[str, str]:
        if not snapshot_ids:
            return {}
        with self._pool.connection() as conn:
            rows = conn.execute(SELECT_KNOWN, (list(snapshot_ids),)).fetchall()
        return {row[0]: row[1] for row in rows}

    def store_snapshots(self, snapshots: Sequence[NormalizedSnapshot]) -> StoreResult:
        if not snapshots:
            return StoreResult()
        unique = unique_snapshots(snapshots)
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(INSERT_LEDGER, _ledger_columns(unique))
            inserted = {row[0] for row in cur.fetchall()}
            fresh = [s for s in unique if s.ledger.snapshot_id in inserted]
            loaded = [s for s in fresh if s.loaded]
            with cur.copy(COPY_CELLS) as copy:
                for chunk in self._cell_chunks(loaded):
                    copy.write(chunk)
            candles = 0
            if loaded:
                cur.execute(CREATE_CANDLES_STAGE)
                with cur.copy(COPY_CANDLES_STAGE) as copy:
                    copy.write(
                        HEADER + b"".join(candles_buffer(s.candles) for s in loaded) + TRAILER
                    )
                cur.execute(UPSERT_CANDLES)
                candles = cur.rowcount
        return StoreResult(
            snapshots_added=len(loaded),
            quarantined_added=sum(s.quarantined for s in fresh),
            unavailable_added=sum(s.ledger.status == "unavailable" for s in fresh),
            cells_added=sum(s.cells.height for s in loaded),
            candles_upserted=candles,
            already_known=len(snapshots) - len(fresh),
        )

    def _cell_chunks(self, loaded: Sequence[NormalizedSnapshot]) -> Iterator[bytes]:
        """The binary COPY stream of these snapshots' cells, in chunks of ~COPY_CHUNK_BYTES."""
        pending = [HEADER]
        size = len(HEADER)
        for snapshot in loaded:
            buffer = cells_buffer(snapshot.cells)
            pending.append(buffer)
            size += len(buffer)
            if size >= COPY_CHUNK_BYTES:
                yield b"".join(pending)
                pending, size = [], 0
        pending.append(TRAILER)
        yield b"".join(pending)

    def replace_universe(self, members: Sequence[UniverseMember]) -> None:
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(DELETE_UNIVERSE)
            cur.executemany(
                INSERT_UNIVERSE, [(m.scope, m.exchange, m.symbol, m.rank) for m in members]
            )

    def load_universe(self) -> list[UniverseMember]:
        with self._pool.connection() as conn:
            return [UniverseMember(*row) for row in conn.execute(SELECT_UNIVERSE).fetchall()]

    def quality(self, snapshot_ids: Sequence[str]) -> QualityReport:
        with self._pool.connection() as conn:
            row = conn.execute(QUALITY, (list(snapshot_ids),)).fetchone()
        assert row is not None
        return QualityReport(*(int(v) for v in row))

    def recently_unavailable(self, range_: str, since: datetime) -> set[tuple[str, str, str]]:
        with self._pool.connection() as conn:
            rows = conn.execute(_pg(RECENTLY_UNAVAILABLE), (range_, since)).fetchall()
        return {(row[0], row[1], row[2]) for row in rows}

    def ledger_summary(self) -> list[dict[str, object]]:
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(LEDGER_SUMMARY)
            names = [d.name for d in cur.description or []]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    # -- analytics -----------------------------------------------------------------------------

    def _frame(
        self, statement: str, params: Sequence[object], schema: dict | None = None
    ) -> pl.DataFrame:
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(statement, params)  # type: ignore[arg-type]
            names = [d.name for d in cur.description or []]
            rows = cur.fetchall()
        frame = pl.DataFrame(rows, schema=names, orient="row")
        return frame.cast(schema) if schema else frame  # type: ignore[arg-type]

    def latest_snapshots(self, depth: int = 2) -> pl.DataFrame:
        return self._frame(_pg(LATEST_SNAPSHOTS), (depth,), LATEST_SNAPSHOTS_SCHEMA)

    def snapshot_cells(self, snapshot_ids: Sequence[str]) -> pl.DataFrame:
        ids = list(snapshot_ids)
        return self._frame(SNAPSHOT_CELLS, (ids, ids, ids), SNAPSHOT_CELLS_SCHEMA)

    def candles_since(self, since: datetime) -> pl.DataFrame:
        return self._frame(_pg(CANDLES_SINCE), (since,), CANDLES_SCHEMA)

    def upsert_frame(self, table: str, frame: pl.DataFrame) -> int:
        columns, _ = table_spec(table)
        delete, insert, _ = UPSERT_SQL[table]
        if frame.height == 0:
            return 0
        copy_incoming = sql.SQL("COPY incoming ({}) FROM STDIN").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in columns)
        )
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(sql.SQL(CREATE_INCOMING).format(table=sql.Identifier(table)))
            with cur.copy(copy_incoming) as copy:
                for row in frame.select(columns).iter_rows():
                    copy.write_row(row)
            cur.execute(delete)
            cur.execute(insert)
        return frame.height

    def read_table(self, table: str) -> pl.DataFrame:
        table_spec(table)
        return self._frame(UPSERT_SQL[table][2], (), FRAME_TABLES[table][0])


def _ledger_columns(snapshots: Sequence[NormalizedSnapshot]) -> tuple[list[object], ...]:
    rows = [s.ledger for s in snapshots]
    return tuple([getattr(r, f) for r in rows] for f in LEDGER_SCHEMA)
