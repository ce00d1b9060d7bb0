-- helix:no-transaction  (continuous aggregates cannot be created or dropped inside a transaction)
-- TimescaleDB only (skipped on plain PostgreSQL). Profiles are chunked by fetch time like the
-- cells, and compress per heatmap series: segment by symbol/model/range, ordered by snapshot
-- (fetched_at) then price, so a compressed batch holds a few whole snapshots of one series,
-- whose key columns compress to nothing and whose prices are a regular axis (delta encoding).
-- docs/performance.md gives the measurement these settings rest on.
SELECT create_hypertable('liquidation_price_levels', by_range('fetched_at', INTERVAL '1 day'),
                         migrate_data => true, if_not_exists => true);

ALTER TABLE liquidation_price_levels SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'symbol, model, "range"',
    timescaledb.compress_orderby = 'fetched_at, price'
);

-- The daily per-level view now reads the profiles (a few hundred rows a snapshot) instead of
-- every raw cell, which most series no longer keep.
DROP MATERIALIZED VIEW IF EXISTS liquidation_price_levels_daily;

CREATE MATERIALIZED VIEW IF NOT EXISTS liquidation_price_levels_daily
WITH (timescaledb.continuous) AS
SELECT time_bucket(INTERVAL '1 day', fetched_at) AS day,
       symbol, model, "range", price,
       avg(cumulative_usd) AS avg_cumulative_usd,
       max(cumulative_usd) AS max_cumulative_usd,
       count(*) AS snapshots
FROM liquidation_price_levels
GROUP BY day, symbol, model, "range", price
WITH NO DATA;

SELECT add_continuous_aggregate_policy('liquidation_price_levels_daily',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '1 hour', if_not_exists => true);
