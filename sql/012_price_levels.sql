-- Per-snapshot price-level profiles: what the warehouse keeps of every snapshot (docs/architecture.md,
-- "Tables"). The full grid goes to the Parquet archive, and to liquidation_data_raw only for the
-- models and ranges configured to keep cells (HELIX_WAREHOUSE_CELLS).
-- Portable. Snapshots stored before this migration kept their cells: their profiles are built
-- here from those cells, and their candle spans filled in where the ledger had none.

CREATE TABLE IF NOT EXISTS liquidation_price_levels (
    snapshot_id    text NOT NULL,
    fetched_at     timestamptz NOT NULL,
    scope          text NOT NULL,
    exchange       text NOT NULL,
    symbol         text NOT NULL,
    model          smallint NOT NULL,
    "range"        text NOT NULL,
    price          double precision NOT NULL,
    cells          integer NOT NULL CHECK (cells > 0),
    cumulative_usd double precision NOT NULL,
    live_usd       double precision NOT NULL
);

ALTER TABLE heatmap_snapshots ADD COLUMN IF NOT EXISTS cells_in_warehouse boolean;

UPDATE heatmap_snapshots SET cells_in_warehouse = true
WHERE status = 'loaded' AND cells_in_warehouse IS NULL;

INSERT INTO liquidation_price_levels
    (snapshot_id, fetched_at, scope, exchange, symbol, model, "range",
     price, cells, cumulative_usd, live_usd)
SELECT c.snapshot_id, min(c.fetched_at), c.scope, c.exchange, c.symbol, c.model, c."range",
       c.price, count(*), sum(c.liq_usd),
       coalesce(sum(c.liq_usd) FILTER (
           WHERE c.x_index = latest.x_index
              OR (latest.x_index IS NULL AND c.candle_ts = latest.candle_ts)), 0)
FROM liquidation_data_raw c
JOIN (SELECT snapshot_id, max(x_index) AS x_index, max(candle_ts) AS candle_ts
      FROM liquidation_data_raw GROUP BY snapshot_id) latest
  ON latest.snapshot_id = c.snapshot_id
WHERE NOT EXISTS (SELECT 1 FROM liquidation_price_levels l WHERE l.snapshot_id = c.snapshot_id)
GROUP BY c.snapshot_id, c.scope, c.exchange, c.symbol, c.model, c."range", c.price;

UPDATE heatmap_snapshots
SET first_candle_ts = span.first_ts, last_candle_ts = span.last_ts
FROM (SELECT snapshot_id, min(candle_ts) AS first_ts, max(candle_ts) AS last_ts
      FROM liquidation_data_raw GROUP BY snapshot_id) span
WHERE heatmap_snapshots.snapshot_id = span.snapshot_id
  AND heatmap_snapshots.first_candle_ts IS NULL;
