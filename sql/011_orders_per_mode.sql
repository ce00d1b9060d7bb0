-- Every executor mode keeps its own orders (docs/executor.md): an order is keyed by its mode
-- and orderLinkId, and a signal is decided once per mode. The orderLinkId alone was the key,
-- so a signal decided in testnet overwrote its paper row (the venue accounts differ, so the
-- same orderLinkId in two modes is two orders). Portable: the table is rebuilt, because
-- DuckDB cannot change a primary key in place. Column order as in contracts.tables.

CREATE TABLE executor_orders_per_mode (
    order_link_id  text NOT NULL,
    signal_id      text NOT NULL,
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
    updated_at     timestamptz NOT NULL,
    venue_symbol   text,
    filled_qty     text,
    venue_status   text,
    submitted_at   timestamptz,
    PRIMARY KEY (mode, order_link_id),
    UNIQUE (mode, signal_id)
);

INSERT INTO executor_orders_per_mode
SELECT order_link_id, signal_id, mode, symbol, side, qty, status, venue_order_id, avg_price,
       take_profit, stop_loss, leverage, reason, created_at, updated_at, venue_symbol,
       filled_qty, venue_status, submitted_at
FROM executor_orders;

DROP TABLE executor_orders;
ALTER TABLE executor_orders_per_mode RENAME TO executor_orders;
