-- What real CoinGlass payloads do that the documentation does not say (docs/real-apis.md):
-- keys with no data ('unavailable' ledger rows), an x axis past the candle list (cells keep
-- x_index, candle_ts left null), seconds or milliseconds, legacy extra keys.
-- Portable: brings ledgers and cell tables created before these columns up to date; a new
-- database already has them from 001. The status CHECK is swapped in 008 (PostgreSQL only:
-- DuckDB cannot alter constraints, and its new tables have the new one from 001).

ALTER TABLE heatmap_snapshots ADD COLUMN IF NOT EXISTS x_columns integer;
ALTER TABLE heatmap_snapshots ADD COLUMN IF NOT EXISTS x_axis text;
ALTER TABLE heatmap_snapshots ADD COLUMN IF NOT EXISTS candle_ts_unit text;
ALTER TABLE heatmap_snapshots ADD COLUMN IF NOT EXISTS first_candle_ts timestamptz;
ALTER TABLE heatmap_snapshots ADD COLUMN IF NOT EXISTS last_candle_ts timestamptz;
ALTER TABLE heatmap_snapshots ADD COLUMN IF NOT EXISTS source_extra json;
-- The unavailable-range lookup of every ingest run: newest rows of one range.
CREATE INDEX IF NOT EXISTS heatmap_snapshots_range_idx
    ON heatmap_snapshots ("range", fetched_at DESC);

ALTER TABLE liquidation_data_raw ADD COLUMN IF NOT EXISTS x_index integer;
ALTER TABLE liquidation_data_raw ALTER COLUMN candle_ts DROP NOT NULL;
