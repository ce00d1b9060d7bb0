-- Realized liquidations from CoinGlass's websocket (contracts.live.LiquidationEvent), one row per
-- liquidation order an exchange reported. Portable: the embedded DuckDB warehouse runs it too.
--
-- Replays are idempotent: after a reconnect, or when a batch is retried, the same order arrives
-- again with the same (exchange, symbol, event_time, side_code, price, usd), and the unique key
-- keeps it once (writes are INSERT .. ON CONFLICT DO NOTHING). The key holds event_time, the
-- column TimescaleDB partitions by (019): a hypertable's unique keys must hold it. base_asset
-- is left out: it follows from (exchange, symbol). Floats in a key are fine here: a replay
-- parses the same text into the same double.
-- side_code is CoinGlass's number as sent (1 or 2; its websocket and REST docs disagree on
-- which side each means), checked like the parser checks it so a stored batch never fails on it.
CREATE TABLE IF NOT EXISTS liquidation_events (
    event_time  timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    base_asset  text NOT NULL,
    exchange    text NOT NULL,
    symbol      text NOT NULL,
    price       double precision NOT NULL CHECK (price > 0),
    side_code   smallint NOT NULL CHECK (side_code IN (1, 2)),
    usd         double precision NOT NULL CHECK (usd >= 0),
    CONSTRAINT liquidation_events_once UNIQUE (exchange, symbol, event_time, side_code, price, usd)
);

-- What the radar asks: one coin's liquidations in a time range (optionally in a price band).
CREATE INDEX IF NOT EXISTS liquidation_events_asset_time
    ON liquidation_events (base_asset, event_time);
