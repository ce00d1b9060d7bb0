-- TimescaleDB only (skipped on plain PostgreSQL); by_range needs TimescaleDB 2.13 or newer, as
-- in 014 and 017. Realized liquidations are chunked by the exchange's time, a day per chunk:
-- the radar reads the last hours of them, and retention drops whole days.
-- The unique key of 018 already holds event_time, so the table converts as it is (its rows
-- move into chunks: migrate_data).
SELECT create_hypertable('liquidation_events', by_range('event_time', INTERVAL '1 day'),
                         migrate_data => true, if_not_exists => true);

-- Compressed per coin (what reads filter on), ordered by time. The other columns of the unique
-- key follow event_time in the order: TimescaleDB warns about a unique key column that is
-- neither segmentby nor orderby ("should be used for segmenting or ordering"), and an insert
-- aimed at a compressed chunk is checked against the key by decompressing the batches whose
-- min/max of the orderby columns could hold it, which event_time narrows to a few.
-- (INSERT .. ON CONFLICT into compressed chunks needs TimescaleDB 2.11 or newer.)
ALTER TABLE liquidation_events SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'base_asset',
    timescaledb.compress_orderby = 'event_time DESC, exchange, symbol, side_code, price, usd'
);

-- A chunk stops receiving new orders the day after its own (the feed writes within seconds,
-- a replay after an outage reaches back hours): compressed once a week old, like the radar,
-- and kept a year, long enough for a season of radar outcomes to be scored against it.
SELECT add_compression_policy('liquidation_events', INTERVAL '7 days', if_not_exists => true);
SELECT add_retention_policy('liquidation_events', INTERVAL '365 days', if_not_exists => true);
