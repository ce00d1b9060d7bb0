-- The live radar (docs/live.md): where each entry's price came from (the heatmap's close, or the
-- Bybit ticker over websocket / its REST fallback) and the realized liquidations CoinGlass reported
-- for the coin in the radar's window; and, per touched outcome, the realized liquidations near its
-- level (the sweep confirmation). Nullable, so rows written before stay valid; on TimescaleDB
-- 2.x a nullable column without a default can be added to a compressed hypertable. Portable.

ALTER TABLE liquidation_radar ADD COLUMN IF NOT EXISTS price_origin text;
ALTER TABLE liquidation_radar ADD COLUMN IF NOT EXISTS realized_liq_usd double precision;
ALTER TABLE liquidation_radar ADD COLUMN IF NOT EXISTS realized_liq_events bigint;

ALTER TABLE cluster_outcomes ADD COLUMN IF NOT EXISTS confirmed_liq_usd double precision;
ALTER TABLE cluster_outcomes ADD COLUMN IF NOT EXISTS confirmed_liq_events bigint;
