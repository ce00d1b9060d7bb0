-- TimescaleDB only (skipped on plain PostgreSQL). The radar adds one row per universe symbol per
-- refresh (435 a minute at the planner's pace): chunked by refresh time, compressed per symbol
-- once a week old, ordered by time, so a symbol's history reads as one compressed segment.
-- liquidation_imbalance stays a plain table: one row per snapshot, keyed by snapshot id (a
-- hypertable's unique keys must hold its time column).
SELECT create_hypertable('liquidation_radar', by_range('refreshed_at', INTERVAL '7 days'),
                         migrate_data => true, if_not_exists => true);

ALTER TABLE liquidation_radar SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'symbol',
    timescaledb.compress_orderby = 'refreshed_at'
);

SELECT add_compression_policy('liquidation_radar', INTERVAL '7 days', if_not_exists => true);
