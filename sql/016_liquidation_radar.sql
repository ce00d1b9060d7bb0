-- The liquidation radar (docs/analytics.md): per-snapshot imbalance, running baselines per
-- (symbol, model, range), one radar row per symbol per refresh, and what the outcomes need to be
-- read by radar rank. Portable: the embedded DuckDB warehouse runs this file too.

ALTER TABLE liquidation_clusters ADD COLUMN IF NOT EXISTS usd double precision;

CREATE TABLE IF NOT EXISTS liquidation_imbalance (
    snapshot_id              text PRIMARY KEY,
    fetched_at               timestamptz NOT NULL,
    scope                    text NOT NULL,
    exchange                 text NOT NULL,
    symbol                   text NOT NULL,
    model                    smallint NOT NULL,
    "range"                  text NOT NULL,
    last_close               double precision NOT NULL,
    cumulative_usd_above     double precision NOT NULL,
    cumulative_usd_below     double precision NOT NULL,
    cumulative_imbalance     double precision CHECK (cumulative_imbalance BETWEEN 0 AND 1),
    live_usd_above           double precision NOT NULL,
    live_usd_below           double precision NOT NULL,
    live_imbalance           double precision CHECK (live_imbalance BETWEEN 0 AND 1),
    major_above_usd          double precision,
    major_above_distance_pct double precision,
    major_below_usd          double precision,
    major_below_distance_pct double precision,
    size_z_above             double precision,
    size_z_below             double precision,
    distance_z_above         double precision,
    distance_z_below         double precision,
    baseline_samples         bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS cluster_baselines (
    scope          text NOT NULL,
    exchange       text NOT NULL,
    symbol         text NOT NULL,
    model          smallint NOT NULL,
    "range"        text NOT NULL,
    samples        bigint NOT NULL,
    size_mean      double precision NOT NULL,
    size_m2        double precision NOT NULL,
    distance_mean  double precision NOT NULL,
    distance_m2    double precision NOT NULL,
    folded_through timestamptz NOT NULL,
    PRIMARY KEY (scope, exchange, symbol, model, "range")
);

CREATE TABLE IF NOT EXISTS liquidation_radar (
    refreshed_at        timestamptz NOT NULL,
    symbol              text NOT NULL,
    rank                smallint,
    decile              smallint,
    tier                text CHECK (tier IN ('HOT', 'WATCH', 'WARM', 'SAFE')),
    score               double precision,
    direction           text CHECK (direction IN ('up', 'down')),
    target_price        double precision,
    imbalance           double precision,
    imbalance_component double precision,
    proximity_component double precision,
    size_component      double precision,
    consensus_component double precision,
    last_price          double precision,
    atr                 double precision,
    above_price         double precision,
    above_distance_pct  double precision,
    above_distance_atr  double precision,
    below_price         double precision,
    below_distance_pct  double precision,
    below_distance_atr  double precision,
    nearest_distance_pct double precision,
    size_z              double precision,
    snapshots           smallint NOT NULL,
    newest_snapshot_at  timestamptz,
    oldest_snapshot_at  timestamptz,
    data_age_seconds    double precision,
    excluded_reason     text,
    PRIMARY KEY (refreshed_at, symbol)
);

ALTER TABLE trade_signals ADD COLUMN IF NOT EXISTS radar_rank smallint;
ALTER TABLE trade_signals ADD COLUMN IF NOT EXISTS radar_decile smallint;
ALTER TABLE trade_signals ADD COLUMN IF NOT EXISTS radar_tier text;
ALTER TABLE trade_signals ADD COLUMN IF NOT EXISTS radar_score double precision;
ALTER TABLE trade_signals ADD COLUMN IF NOT EXISTS radar_imbalance double precision;
ALTER TABLE trade_signals ADD COLUMN IF NOT EXISTS radar_nearest_distance_pct double precision;

-- A radar entry is a new kind of scored subject. DuckDB cannot change a CHECK constraint in
-- place, so the table is rebuilt (outcomes are small: one row per decided subject).
CREATE TABLE cluster_outcomes_next (
    subject_kind     text NOT NULL CHECK (subject_kind IN ('cluster', 'signal', 'radar')),
    subject_id       text NOT NULL,
    symbol           text NOT NULL,
    model            smallint,
    "range"          text,
    consensus_bucket text NOT NULL,
    level_price      double precision NOT NULL,
    observed_from    timestamptz NOT NULL,
    horizon_hours    double precision NOT NULL,
    touched          boolean NOT NULL,
    hours_to_touch   double precision,
    max_adverse_pct  double precision,
    evaluated_at     timestamptz NOT NULL,
    radar_rank       smallint,
    radar_decile     smallint,
    radar_tier       text,
    PRIMARY KEY (subject_kind, subject_id)
);
INSERT INTO cluster_outcomes_next
    (subject_kind, subject_id, symbol, model, "range", consensus_bucket, level_price,
     observed_from, horizon_hours, touched, hours_to_touch, max_adverse_pct, evaluated_at)
SELECT subject_kind, subject_id, symbol, model, "range", consensus_bucket, level_price,
       observed_from, horizon_hours, touched, hours_to_touch, max_adverse_pct, evaluated_at
FROM cluster_outcomes;
DROP TABLE cluster_outcomes;
ALTER TABLE cluster_outcomes_next RENAME TO cluster_outcomes;
