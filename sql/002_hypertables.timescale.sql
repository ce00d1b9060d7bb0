-- TimescaleDB only (skipped on plain PostgreSQL).
-- Cells are chunked by fetch time: one snapshot's rows land in one chunk, retention drops whole
-- snapshots, and recent-snapshot queries touch recent chunks only. Candles by their own time.
CREATE EXTENSION IF NOT EXISTS timescaledb;

SELECT create_hypertable('liquidation_data_raw', by_range('fetched_at', INTERVAL '1 day'),
                         migrate_data => true, if_not_exists => true);
SELECT create_hypertable('heatmap_candles', by_range('ts', INTERVAL '30 days'),
                         migrate_data => true, if_not_exists => true);

-- Compression: rows of one heatmap series compress together (segment by symbol/model/range),
-- ordered as queries read them (one snapshot's grid, by time then price).
ALTER TABLE liquidation_data_raw SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'symbol, model, "range"',
    timescaledb.compress_orderby = 'snapshot_id, candle_ts, price'
);
ALTER TABLE heatmap_candles SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'symbol, "range"',
    timescaledb.compress_orderby = 'ts'
);
