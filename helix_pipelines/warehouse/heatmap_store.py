"""The heatmap repository: the snapshot ledger, price-level profiles, cells, candles and the
symbol universe.

Grain: one ledger row per fetched payload (its id is the key and the payload's hash, so an
unchanged payload is stored once), one profile row per price level that holds cells, one row
per cell only for the series the `CellsPolicy` keeps (the archive has every grid), one candle
per key and time (upserted: candles are the market's, shared by the three models). A batch of
snapshots is one transaction: the ledger insert decides (`ON CONFLICT DO NOTHING RETURNING`), so
only snapshots this transaction added get profiles and cells, a replay adds nothing, and two
loaders racing on one snapshot store it once. Candles are upserted in key order, a lock order
every loader shares, so concurrent loads of different partitions cannot deadlock on shared
candles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields, replace
from datetime import datetime, timedelta

import polars as pl

from helix_pipelines.contracts.heatmaps import (
    CANDLES_SCHEMA,
    LEDGER_SCHEMA,
    PROFILE_SCHEMA,
    NormalizedSnapshot,
    UniverseMember,
)
from helix_pipelines.warehouse.cells_policy import CellsPolicy
from helix_pipelines.warehouse.database import Database, non_finite, quoted
from helix_pipelines.warehouse.fetch_log import FetchLogStore, FetchRecord, record_in

_LEDGER = quoted(list(LEDGER_SCHEMA))
_CANDLES = quoted(list(CANDLES_SCHEMA))
_CANDLE_KEY = ("scope", "exchange", "symbol", "range", "ts")
INSERT_LEDGER = f"""
INSERT INTO heatmap_snapshots ({_LEDGER}) SELECT {_LEDGER} FROM new_ledger
ON CONFLICT (snapshot_id) DO NOTHING RETURNING snapshot_id
"""  # noqa: S608 - column names from the contract
UPSERT_CANDLES = f"""
INSERT INTO heatmap_candles ({_CANDLES})
SELECT {_CANDLES} FROM new_candles ORDER BY {quoted(_CANDLE_KEY)}
ON CONFLICT ({quoted(_CANDLE_KEY)}) DO UPDATE SET
    open = excluded.open, high = excluded.high, low = excluded.low,
    close = excluded.close, volume_usd = excluded.volume_usd
"""  # noqa: S608
SELECT_KNOWN = "SELECT snapshot_id, status FROM heatmap_snapshots WHERE snapshot_id = ANY(?)"
RECENTLY_UNAVAILABLE = """
SELECT scope, exchange, symbol FROM (
    SELECT scope, exchange, symbol, status,
           row_number() OVER (PARTITION BY scope, exchange, symbol ORDER BY fetched_at DESC) AS r
    FROM heatmap_snapshots
    WHERE "range" = ? AND fetched_at >= ? AND status IN ('loaded', 'unavailable')
) newest
WHERE r = 1 AND status = 'unavailable'
"""
SELECT_UNIVERSE = (
    "SELECT scope, exchange, symbol, rank, venue_symbol, multiplier FROM symbol_universe "
    "ORDER BY rank"
)
LEDGER_SUMMARY = """
SELECT model, "range",
       count(*) FILTER (WHERE status = 'loaded') AS loaded,
       count(*) FILTER (WHERE status = 'quarantined') AS quarantined,
       count(*) FILTER (WHERE status = 'unavailable') AS unavailable,
       coalesce(sum(n_cells), 0) AS cells,
       max(fetched_at) AS latest_fetch
FROM heatmap_snapshots GROUP BY model, "range" ORDER BY model, "range"
"""
LATEST_SNAPSHOTS = """
SELECT snapshot_id, fetched_at, scope, exchange, symbol, model, "range", x_axis,
       first_candle_ts, last_candle_ts, recency
FROM (
    SELECT snapshot_id, fetched_at, scope, exchange, symbol, model, "range", x_axis,
           first_candle_ts, last_candle_ts,
           row_number() OVER (PARTITION BY scope, exchange, symbol, model, "range"
                              ORDER BY fetched_at DESC) AS recency
    FROM heatmap_snapshots WHERE status = 'loaded' AND fetched_at <= ?
) ranked
WHERE recency <= ?
ORDER BY symbol, model, "range", recency
"""
# The fetched_at bounds let PostgreSQL's BRIN index find a snapshot's rows; snapshot_id then
# picks them (DuckDB skips row groups by the same bounds).
SNAPSHOT_LEVELS = """
SELECT l.snapshot_id, l.price, l.cells, l.cumulative_usd, l.live_usd
FROM liquidation_price_levels l
WHERE l.snapshot_id = ANY(?)
  AND l.fetched_at BETWEEN (SELECT min(fetched_at) FROM heatmap_snapshots WHERE snapshot_id = ANY(?))
                       AND (SELECT max(fetched_at) FROM heatmap_snapshots WHERE snapshot_id = ANY(?))
ORDER BY l.snapshot_id, l.price
"""
PRUNE_CELLS = "DELETE FROM liquidation_data_raw WHERE fetched_at < ?"
CANDLES_SINCE = f"""
SELECT {_CANDLES} FROM heatmap_candles WHERE ts >= ?
ORDER BY scope, exchange, symbol, "range", ts
"""  # noqa: S608
CANDLES_OF_SINCE = f"""
SELECT {_CANDLES} FROM heatmap_candles WHERE ts >= ? AND symbol = ANY(?)
ORDER BY scope, exchange, symbol, "range", ts
"""  # noqa: S608
# The close of the finest range that has candles for a symbol since a time (the paper broker's
# price): one row, keyed by symbol.
LATEST_CLOSE = """
SELECT close FROM heatmap_candles WHERE symbol = ? AND ts >= ?
ORDER BY array_position(?, "range"), ts DESC LIMIT 1
"""

_LATEST = (
    "snapshot_id fetched_at scope exchange symbol model range x_axis first_candle_ts last_candle_ts"
)
LATEST_SNAPSHOTS_SCHEMA: dict[str, pl.DataType] = {
    **{c: LEDGER_SCHEMA[c] for c in _LATEST.split()},
    "recency": pl.Int64(),
}
SNAPSHOT_LEVELS_SCHEMA: dict[str, pl.DataType] = {"snapshot_id": pl.String(), **PROFILE_SCHEMA}


@dataclass(frozen=True, slots=True)
class StoreResult:
    """What one batch added; replays of known snapshots add nothing."""

    snapshots_added: int = 0
    quarantined_added: int = 0
    unavailable_added: int = 0
    cells_ingested: int = 0  # cells of the snapshots added (archived, profiled)
    cells_added: int = 0  # of those, rows added to liquidation_data_raw (`CellsPolicy`)
    levels_added: int = 0
    candles_upserted: int = 0
    already_known: int = 0

    def __add__(self, other: StoreResult) -> StoreResult:
        return StoreResult(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


@dataclass(frozen=True, slots=True)
class QualityReport:
    """Integrity of the stored cells of the given loaded snapshots (all zero when sound)."""

    snapshots: int
    cells: int  # the cells the checked snapshots' profiles account for
    cell_count_mismatch: int  # snapshots whose profile (or kept cells) disagree with n_cells
    non_positive_price: int
    negative_or_nan_usd: int
    candle_ts_without_candle: int  # a candle the span or a kept cell names is not stored

    @property
    def violations(self) -> int:
        return (
            self.cell_count_mismatch
            + self.non_positive_price
            + self.negative_or_nan_usd
            + self.candle_ts_without_candle
        )


def unique_snapshots(snapshots: Sequence[NormalizedSnapshot]) -> list[NormalizedSnapshot]:
    """First of each snapshot id, in order (one payload fetched twice in a batch stores once)."""
    seen: dict[str, NormalizedSnapshot] = {}
    for snapshot in snapshots:
        seen.setdefault(snapshot.ledger.snapshot_id, snapshot)
    return list(seen.values())


class HeatmapStore:
    def __init__(self, database: Database, cells: CellsPolicy | None = None) -> None:
        self.db = database
        self.cells = cells or CellsPolicy()
        self.fetch_log = FetchLogStore(database)

    def store_snapshots(
        self, snapshots: Sequence[NormalizedSnapshot], fetches: Sequence[FetchRecord] = ()
    ) -> StoreResult:
        """Store a batch in one transaction: ledger rows, profiles, the cells the policy keeps,
        candles (upserted), and the batch's `fetches` in the fetch log (in the same transaction:
        a commit of its own cost DuckDB ~30 ms a batch).

        Snapshots already in the ledger are skipped, so re-storing a batch adds no rows.
        """
        if not snapshots:
            self.fetch_log.record(fetches)
            return StoreResult()
        unique = [self._with_cells_flag(s) for s in unique_snapshots(snapshots)]
        with self.db.transaction() as tx:
            record_in(tx, fetches)
            tx.stage(
                "new_ledger",
                pl.concat([s.ledger.to_frame() for s in unique]),
                like="heatmap_snapshots",
            )
            inserted = {row[0] for row in tx.rows(INSERT_LEDGER)}
            fresh = [s for s in unique if s.ledger.snapshot_id in inserted]
            loaded = [s for s in fresh if s.loaded]
            if loaded:
                tx.append("liquidation_price_levels", pl.concat(s.keyed(s.levels) for s in loaded))
            kept = [s for s in loaded if s.ledger.cells_in_warehouse]
            for snapshot in kept:
                tx.append("liquidation_data_raw", snapshot.keyed(snapshot.cells))
            candles = 0
            if loaded:
                new_candles = pl.concat([s.candles for s in loaded]).unique(
                    list(_CANDLE_KEY), keep="last", maintain_order=True
                )
                tx.stage("new_candles", new_candles, like="heatmap_candles")
                candles = tx.execute(UPSERT_CANDLES)
        return StoreResult(
            snapshots_added=len(loaded),
            quarantined_added=sum(s.quarantined for s in fresh),
            unavailable_added=sum(s.ledger.status == "unavailable" for s in fresh),
            cells_ingested=sum(s.cells.height for s in loaded),
            cells_added=sum(s.cells.height for s in kept),
            levels_added=sum(s.levels.height for s in loaded),
            candles_upserted=candles,
            already_known=len(snapshots) - len(fresh),
        )

    def _with_cells_flag(self, snapshot: NormalizedSnapshot) -> NormalizedSnapshot:
        if not snapshot.loaded:
            return snapshot
        keeps = self.cells.keeps(snapshot.ledger.model, snapshot.ledger.range)
        return replace(snapshot, ledger=replace(snapshot.ledger, cells_in_warehouse=keeps))

    def prune_cells(self, now: datetime) -> int:
        """Delete kept cells older than the policy's retention; the rows deleted. (TimescaleDB
        drops whole chunks by its own retention policy, so this finds nothing there.)"""
        if self.cells.retention_days is None:
            return 0
        with self.db.transaction() as tx:
            return tx.execute(PRUNE_CELLS, [now - timedelta(days=self.cells.retention_days)])

    def known_snapshots(self, snapshot_ids: Sequence[str]) -> dict[str, str]:
        """Status ('loaded'/'quarantined'/'unavailable') of those ids the ledger already holds."""
        if not snapshot_ids:
            return {}
        with self.db.connect() as conn:
            return {row[0]: row[1] for row in conn.rows(SELECT_KNOWN, [list(snapshot_ids)])}

    def recently_unavailable(self, range_: str, since: datetime) -> set[tuple[str, str, str]]:
        """(scope, exchange, symbol) of keys of `range_` whose newest answer since `since` was
        'unavailable' (CoinGlass has no data for them), in one lookup."""
        with self.db.connect() as conn:
            return {(r[0], r[1], r[2]) for r in conn.rows(RECENTLY_UNAVAILABLE, [range_, since])}

    def replace_universe(self, members: Sequence[UniverseMember]) -> None:
        frame = pl.DataFrame(
            [astuple(m) for m in members],
            schema={
                "scope": pl.String,
                "exchange": pl.String,
                "symbol": pl.String,
                "rank": pl.Int32,
                "venue_symbol": pl.String,
                "multiplier": pl.Int32,
            },
            orient="row",
        )
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM symbol_universe")
            tx.append("symbol_universe", frame)

    def load_universe(self) -> list[UniverseMember]:
        with self.db.connect() as conn:
            return [UniverseMember(*row) for row in conn.rows(SELECT_UNIVERSE)]

    def quality(self, snapshot_ids: Sequence[str]) -> QualityReport:
        with self.db.connect() as conn:
            row = conn.rows(_quality_sql(self.db), [list(snapshot_ids)])[0]
        return QualityReport(*(int(v) for v in row))

    def ledger_summary(self) -> list[dict[str, object]]:
        """Per model x range: loaded, quarantined and unavailable snapshots, cells, latest fetch."""
        with self.db.connect() as conn:
            return conn.frame(LEDGER_SUMMARY).to_dicts()

    def latest_snapshots(self, depth: int = 2, *, as_of: datetime) -> pl.DataFrame:
        """The `depth` newest loaded snapshots of each heatmap key fetched at or before `as_of`
        (`recency` 1 = newest): what an analysis at `as_of` could have seen, never later."""
        with self.db.connect() as conn:
            return conn.frame(LATEST_SNAPSHOTS, [as_of, depth], LATEST_SNAPSHOTS_SCHEMA)

    def snapshot_levels(self, snapshot_ids: Sequence[str]) -> pl.DataFrame:
        """The price-level profiles of these snapshots (snapshot_id + `PROFILE_SCHEMA`), by
        snapshot then ascending price."""
        ids = list(snapshot_ids)
        with self.db.connect() as conn:
            return conn.frame(SNAPSHOT_LEVELS, [ids, ids, ids], SNAPSHOT_LEVELS_SCHEMA)

    def candles_since(self, since: datetime, symbols: Sequence[str] | None = None) -> pl.DataFrame:
        """Every stored candle at or after `since` (the candles contract), of `symbols` only
        when given."""
        with self.db.connect() as conn:
            if symbols is None:
                return conn.frame(CANDLES_SINCE, [since], CANDLES_SCHEMA)
            return conn.frame(CANDLES_OF_SINCE, [since, list(symbols)], CANDLES_SCHEMA)

    def latest_close(self, symbol: str, since: datetime, ranges: Sequence[str]) -> float | None:
        """The newest close of `symbol` since `since`, from the first of `ranges` that has one."""
        with self.db.connect() as conn:
            rows = conn.rows(LATEST_CLOSE, [symbol, since, list(ranges)])
        return float(rows[0][0]) if rows else None


def _quality_sql(db: Database) -> str:
    """One row: snapshots, cells, and each violation count (`QualityReport`'s order)."""
    return f"""
WITH snaps AS (SELECT DISTINCT unnest(CAST(? AS text[])) AS snapshot_id),
ledger AS (
    SELECT s.snapshot_id, s.n_cells, s.fetched_at, s.scope, s.exchange, s.symbol, s."range",
           s.first_candle_ts, s.last_candle_ts, coalesce(s.cells_in_warehouse, false) AS kept
    FROM heatmap_snapshots s JOIN snaps USING (snapshot_id) WHERE s.status = 'loaded'
),
levels AS (
    SELECT l.* FROM liquidation_price_levels l JOIN ledger USING (snapshot_id)
    WHERE l.fetched_at BETWEEN (SELECT min(fetched_at) FROM ledger)
                           AND (SELECT max(fetched_at) FROM ledger)
),
cells AS (
    SELECT c.* FROM liquidation_data_raw c JOIN ledger USING (snapshot_id)
    WHERE ledger.kept AND c.fetched_at BETWEEN (SELECT min(fetched_at) FROM ledger)
                                           AND (SELECT max(fetched_at) FROM ledger)
),
profiled AS (SELECT snapshot_id, sum(cells) AS n FROM levels GROUP BY snapshot_id),
counted AS (SELECT snapshot_id, count(*) AS n FROM cells GROUP BY snapshot_id),
span AS (
    SELECT scope, exchange, symbol, "range", first_candle_ts AS ts FROM ledger
    UNION SELECT scope, exchange, symbol, "range", last_candle_ts FROM ledger
    UNION SELECT scope, exchange, symbol, "range", candle_ts FROM cells
)
SELECT
    (SELECT count(*) FROM ledger),
    (SELECT coalesce(sum(cells), 0) FROM levels),
    (SELECT count(*) FROM ledger l
       LEFT JOIN profiled p USING (snapshot_id) LEFT JOIN counted c USING (snapshot_id)
      WHERE coalesce(p.n, 0) <> l.n_cells OR (l.kept AND coalesce(c.n, 0) <> l.n_cells)),
    (SELECT count(*) FROM levels WHERE price <= 0 OR {non_finite(db.dialect, "price")})
      + (SELECT count(*) FROM cells WHERE price <= 0 OR {non_finite(db.dialect, "price")}),
    (SELECT count(*) FROM levels WHERE cumulative_usd < 0 OR live_usd < 0
        OR {non_finite(db.dialect, "cumulative_usd")} OR {non_finite(db.dialect, "live_usd")})
      + (SELECT count(*) FROM cells WHERE liq_usd < 0 OR {non_finite(db.dialect, "liq_usd")}),
    (SELECT count(*) FROM span c LEFT JOIN heatmap_candles k
       ON k.scope = c.scope AND k.exchange = c.exchange AND k.symbol = c.symbol
      AND k."range" = c."range" AND k.ts = c.ts
      WHERE c.ts IS NOT NULL AND k.ts IS NULL)
"""  # noqa: S608 - fragments are constants of this module
