-- What the budget planner needs to know about every heatmap key (docs/live.md): when it was last
-- fetched and how often a fetch brought a changed payload. The ledger cannot tell: an unchanged
-- payload is stored once, so its newest row says nothing about later fetches. One row per key,
-- upserted by every ingest (Dagster runs, the CLI and `helix live` alike). Portable: the embedded
-- DuckDB warehouse runs this file too.

CREATE TABLE IF NOT EXISTS heatmap_fetch_log (
    scope            text NOT NULL,
    exchange         text NOT NULL,
    symbol           text NOT NULL,
    model            smallint NOT NULL,
    "range"          text NOT NULL,
    last_fetched_at  timestamptz NOT NULL,
    last_status      text NOT NULL CHECK (last_status IN ('loaded', 'quarantined', 'unavailable')),
    fetches          bigint NOT NULL,
    changes          bigint NOT NULL,
    -- Exponentially weighted share of fetches that brought a new payload (weight 0.2 on the newest).
    change_rate      double precision NOT NULL CHECK (change_rate BETWEEN 0 AND 1),
    PRIMARY KEY (scope, exchange, symbol, model, "range")
);

-- One row per tier per planning cycle of `helix live`: what was planned and how stale each tier
-- was, for the UI and Grafana.
CREATE TABLE IF NOT EXISTS fetch_plan_tiers (
    planned_at           timestamptz NOT NULL,
    tier                 text NOT NULL,
    keys                 integer NOT NULL,
    skipped_unavailable  integer NOT NULL,
    interval_seconds     double precision NOT NULL,
    requests_per_minute  double precision NOT NULL,
    planned              integer NOT NULL,
    never_fetched        integer NOT NULL,
    stalest_seconds      double precision,
    limit_per_minute     integer NOT NULL,
    budget               integer NOT NULL,
    PRIMARY KEY (planned_at, tier)
);
