-- Executor state (helix_pipelines/contracts/tables.py holds the same contracts). Portable SQL:
-- the embedded DuckDB warehouse runs this file too.

CREATE TABLE IF NOT EXISTS executor_orders (
    order_link_id  text PRIMARY KEY,
    signal_id      text NOT NULL UNIQUE,
    mode           text NOT NULL,
    symbol         text NOT NULL,
    side           text NOT NULL,
    qty            text,
    status         text NOT NULL,
    venue_order_id text,
    avg_price      double precision,
    take_profit    text,
    stop_loss      text,
    leverage       smallint,
    reason         text,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS executor_decisions (
    decision_id   text PRIMARY KEY,
    signal_id     text NOT NULL,
    mode          text NOT NULL,
    symbol        text NOT NULL,
    action        text NOT NULL,
    reason        text,
    order_link_id text,
    decided_at    timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS executor_state (
    key        text PRIMARY KEY,
    value      text NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS paper_positions (
    symbol      text PRIMARY KEY,
    side        text NOT NULL,
    qty         double precision NOT NULL,
    avg_price   double precision NOT NULL,
    take_profit double precision,
    stop_loss   double precision,
    leverage    smallint NOT NULL,
    opened_at   timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS paper_fills (
    fill_id          text PRIMARY KEY,
    order_link_id    text NOT NULL,
    symbol           text NOT NULL,
    side             text NOT NULL,
    qty              double precision NOT NULL,
    price            double precision NOT NULL,
    fee_usd          double precision NOT NULL,
    realized_pnl_usd double precision NOT NULL,
    filled_at        timestamptz NOT NULL
);
