-- PostgreSQL only. Profiles arrive in fetch order, one snapshot's rows contiguous: a BRIN index
-- on fetched_at finds a snapshot's rows (given its fetched_at from the ledger) and costs almost
-- nothing to keep, where a B-tree on snapshot_id would add about a third to the table's size.
CREATE INDEX IF NOT EXISTS liquidation_price_levels_fetched_brin
    ON liquidation_price_levels USING brin (fetched_at) WITH (pages_per_range = 16);
