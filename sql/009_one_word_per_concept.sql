-- One word per concept (helix_pipelines/contracts/vocabulary.py). Portable.
--   * a cluster's or zone's side is whose positions it would liquidate: liquidated_side;
--   * a trade's side is long or short everywhere: orders and fills no longer say Buy / Sell
--     (that word stays inside the Bybit adapter); a fill says whether it reduced its position;
--   * a flat paper symbol has no position row (it used to keep a zero-size one).

ALTER TABLE liquidation_clusters RENAME COLUMN side TO liquidated_side;
ALTER TABLE consensus_zones RENAME COLUMN side TO liquidated_side;

UPDATE executor_orders SET side = CASE side WHEN 'Buy' THEN 'long' ELSE 'short' END
WHERE side IN ('Buy', 'Sell');

ALTER TABLE paper_fills ADD COLUMN IF NOT EXISTS reduces_position boolean;
UPDATE paper_fills SET
    reduces_position = order_link_id LIKE 'exit-%',
    side = CASE
        WHEN order_link_id LIKE 'exit-%' THEN CASE side WHEN 'Sell' THEN 'long' ELSE 'short' END
        ELSE CASE side WHEN 'Buy' THEN 'long' ELSE 'short' END
    END
WHERE side IN ('Buy', 'Sell');

DELETE FROM paper_positions WHERE qty = 0;
