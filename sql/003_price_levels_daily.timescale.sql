-- helix:no-transaction  (continuous aggregates cannot be created inside a transaction)
-- TimescaleDB only. Daily liquidation totals per price level, per symbol / model / range: the
-- cumulative profiles of the liquidation analytics read this instead of scanning raw cells.
CREATE MATERIALIZED VIEW IF NOT EXISTS liquidation_price_levels_daily
WITH (timescaledb.continuous) AS
SELECT time_bucket(INTERVAL '1 day', fetched_at) AS day,
       symbol, model, "range", price,
       sum(liq_usd) AS liq_usd,
       count(*) AS cells
FROM liquidation_data_raw
GROUP BY day, symbol, model, "range", price
WITH NO DATA;

SELECT add_continuous_aggregate_policy('liquidation_price_levels_daily',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '1 hour', if_not_exists => true);
