-- Liquidation analytics outputs (helix_pipelines/contracts/tables.py holds the same contracts).
-- Portable SQL: the embedded DuckDB warehouse runs this file too.

CREATE TABLE IF NOT EXISTS liquidation_clusters (
    cluster_id      text PRIMARY KEY,
    snapshot_id     text NOT NULL,
    fetched_at      timestamptz NOT NULL,
    scope           text NOT NULL,
    exchange        text NOT NULL,
    symbol          text NOT NULL,
    model           smallint NOT NULL,
    "range"         text NOT NULL,
    profile         text NOT NULL CHECK (profile IN ('cumulative', 'live')),
    side            text NOT NULL CHECK (side IN ('short', 'long')),
    price_lo        double precision NOT NULL,
    price_hi        double precision NOT NULL,
    peak_price      double precision NOT NULL,
    share           double precision NOT NULL,
    z_score         double precision NOT NULL,
    distance_pct    double precision NOT NULL,
    distance_atr    double precision,
    is_magnet       boolean NOT NULL,
    is_swept        boolean NOT NULL,
    last_close      double precision NOT NULL,
    atr             double precision,
    consensus_score double precision
);

CREATE TABLE IF NOT EXISTS consensus_zones (
    zone_id         text PRIMARY KEY,
    computed_at     timestamptz NOT NULL,
    symbol          text NOT NULL,
    side            text NOT NULL,
    price_lo        double precision NOT NULL,
    price_hi        double precision NOT NULL,
    peak_price      double precision NOT NULL,
    models          text NOT NULL,
    ranges          text NOT NULL,
    n_clusters      integer NOT NULL,
    mean_share      double precision NOT NULL,
    consensus_score double precision NOT NULL,
    has_magnet      boolean NOT NULL,
    distance_pct    double precision NOT NULL,
    last_close      double precision NOT NULL
);

CREATE TABLE IF NOT EXISTS trade_signals (
    signal_id         text PRIMARY KEY,
    schema_version    smallint NOT NULL,
    strategy_version  text NOT NULL,
    created_at        timestamptz NOT NULL,
    as_of             timestamptz NOT NULL,
    symbol            text NOT NULL,
    side              text NOT NULL CHECK (side IN ('long', 'short')),
    entry             double precision NOT NULL,
    stop_loss         double precision NOT NULL,
    take_profit       double precision NOT NULL,
    reward_to_risk    double precision NOT NULL,
    qty               double precision NOT NULL,
    notional_usd      double precision NOT NULL,
    leverage          smallint NOT NULL,
    risk_usd          double precision NOT NULL,
    risk_fraction     double precision NOT NULL,
    liquidation_price double precision NOT NULL,
    consensus_score   double precision NOT NULL,
    target_zone_id    text NOT NULL,
    stop_zone_id      text NOT NULL
);

CREATE TABLE IF NOT EXISTS cluster_outcomes (
    subject_kind     text NOT NULL CHECK (subject_kind IN ('cluster', 'signal')),
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
    PRIMARY KEY (subject_kind, subject_id)
);
