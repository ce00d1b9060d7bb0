-- The ledger's CHECK constraints for the statuses and findings of 006, on databases created
-- before 001 had them (idempotent: dropped and added again where they already exist).

ALTER TABLE heatmap_snapshots DROP CONSTRAINT IF EXISTS heatmap_snapshots_status_check;
ALTER TABLE heatmap_snapshots ADD CONSTRAINT heatmap_snapshots_status_check
    CHECK (status IN ('loaded', 'quarantined', 'unavailable'));
ALTER TABLE heatmap_snapshots DROP CONSTRAINT IF EXISTS heatmap_snapshots_x_axis_check;
ALTER TABLE heatmap_snapshots ADD CONSTRAINT heatmap_snapshots_x_axis_check
    CHECK (x_axis IN ('candles', 'beyond_candles'));
ALTER TABLE heatmap_snapshots DROP CONSTRAINT IF EXISTS heatmap_snapshots_candle_ts_unit_check;
ALTER TABLE heatmap_snapshots ADD CONSTRAINT heatmap_snapshots_candle_ts_unit_check
    CHECK (candle_ts_unit IN ('s', 'ms'));
