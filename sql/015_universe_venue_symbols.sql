-- The Bybit universe: each member names the perpetual that trades it and its multiplier
-- (PEPE -> 1000PEPEUSDT x 1000). Portable; members of other universe modes leave them empty.
ALTER TABLE symbol_universe ADD COLUMN IF NOT EXISTS venue_symbol text DEFAULT '';
ALTER TABLE symbol_universe ADD COLUMN IF NOT EXISTS multiplier integer DEFAULT 1;
