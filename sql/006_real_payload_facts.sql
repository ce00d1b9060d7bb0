-- What real CoinGlass payloads do that the documentation does not say (REAL_API_FACTS):
--   * a key CoinGlass has no data for answers code 500 every time: ledger status 'unavailable';
--   * Model 3's x axis can run past the candle list: each cell keeps its column (x_index) and
--     gets no candle time when x is not a candle index (candle_ts null, the ledger says so);
--   * timestamps come in seconds or milliseconds; Model 2's legacy payload has extra keys.

ALTER TABLE heatmap_snapshots DROP CONSTRAINT IF EXISTS heatmap_snapshots_status_check;
ALTER TABLE heatmap_snapshots ADD CONSTRAINT heatmap_snapshots_status_check
    CHECK (status IN ('loaded', 'quarantined', 'unavailable'));
ALTER TABLE heatmap_snapshots
    ADD COLUMN IF NOT EXISTS x_columns integer,
    ADD COLUMN IF NOT EXISTS x_axis text CHECK (x_axis IN ('candles', 'beyond_candles')),
    ADD COLUMN IF NOT EXISTS candle_ts_unit text CHECK (candle_ts_unit IN ('s', 'ms')),
    ADD COLUMN IF NOT EXISTS first_candle_ts timestamptz,
    ADD COLUMN IF NOT EXISTS last_candle_ts timestamptz,
    ADD COLUMN IF NOT EXISTS source_extra json;
-- The unavailable-range lookup of every ingest run: newest rows of one range.
CREATE INDEX IF NOT EXISTS heatmap_snapshots_range_idx
    ON heatmap_snapshots ("range", fetched_at DESC);

ALTER TABLE liquidation_data_raw ADD COLUMN IF NOT EXISTS x_index integer;
ALTER TABLE liquidation_data_raw ALTER COLUMN candle_ts DROP NOT NULL;
