-- PostgreSQL only (DuckDB has no BRIN indexes and needs none: it scans columns).
-- Cells arrive in fetch order, one snapshot's rows contiguous, so a BRIN index on fetched_at
-- finds a snapshot's rows (given its fetched_at from the ledger) at almost no load cost. B-tree
-- indexes on this table were measured to cut COPY throughput from ~980k to ~460k rows/s (one)
-- and ~195k rows/s (two); see docs/performance.md.
CREATE INDEX IF NOT EXISTS liquidation_data_raw_fetched_brin
    ON liquidation_data_raw USING brin (fetched_at) WITH (pages_per_range = 16);
