-- Heatmap ledger, cells, candles and the symbol universe (docs/architecture.md, "Tables").
-- Portable SQL: PostgreSQL and DuckDB both run this file; TimescaleDB features are layered on
-- by the *.timescale.sql migrations and PostgreSQL-only indexes by *.postgres.sql ones.

CREATE TABLE IF NOT EXISTS heatmap_snapshots (
    snapshot_id        text PRIMARY KEY,
    fetched_at         timestamptz NOT NULL,
    scope              text NOT NULL CHECK (scope IN ('coin', 'pair')),
    exchange           text NOT NULL,
    symbol             text NOT NULL,
    model              smallint NOT NULL CHECK (model BETWEEN 1 AND 3),
    "range"            text NOT NULL,
    schema_variant     text CHECK (schema_variant IN ('v4', 'v3')),
    n_levels           integer,
    n_candles          integer,
    n_cells            integer,
    payload_sha256     text NOT NULL,
    source_update_time timestamptz,
    status             text NOT NULL CHECK (status IN ('loaded', 'quarantined', 'unavailable')),
    reason             text,
    x_columns          integer,
    x_axis             text CHECK (x_axis IN ('candles', 'beyond_candles')),
    candle_ts_unit     text CHECK (candle_ts_unit IN ('s', 'ms')),
    first_candle_ts    timestamptz,
    last_candle_ts     timestamptz,
    source_extra       json
);
CREATE INDEX IF NOT EXISTS heatmap_snapshots_key_idx
    ON heatmap_snapshots (symbol, model, "range", fetched_at DESC);

CREATE TABLE IF NOT EXISTS liquidation_data_raw (
    snapshot_id text NOT NULL,
    fetched_at  timestamptz NOT NULL,
    scope       text NOT NULL,
    exchange    text NOT NULL,
    symbol      text NOT NULL,
    model       smallint NOT NULL,
    "range"     text NOT NULL,
    candle_ts   timestamptz,
    price       double precision NOT NULL,
    liq_usd     double precision NOT NULL,
    x_index     integer
);

CREATE TABLE IF NOT EXISTS heatmap_candles (
    scope      text NOT NULL,
    exchange   text NOT NULL,
    symbol     text NOT NULL,
    "range"    text NOT NULL,
    ts         timestamptz NOT NULL,
    open       double precision NOT NULL,
    high       double precision NOT NULL,
    low        double precision NOT NULL,
    close      double precision NOT NULL,
    volume_usd double precision NOT NULL,
    PRIMARY KEY (scope, exchange, symbol, "range", ts)
);

CREATE TABLE IF NOT EXISTS symbol_universe (
    scope    text NOT NULL,
    exchange text NOT NULL,
    symbol   text NOT NULL,
    rank     integer NOT NULL,
    PRIMARY KEY (scope, exchange, symbol)
);
