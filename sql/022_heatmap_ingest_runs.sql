-- What each ingest run cost and brought (docs/grafana.md, "Scanner health"): one row per
-- `run_ingest` call, i.e. per (model, range) and run, written when the run ends. The request
-- counts (requests sent, retries, 429s) existed only in a run's Dagster metadata; the ledger
-- cannot give them (an unchanged payload is stored once, a failed request leaves no row).
-- Column names are the run metadata's names (defs/heatmap_ingest.py), one name per concept.
-- Keyed by (model, range, started_at): recording a run again stores it once. Portable: the
-- embedded DuckDB warehouse runs this file too.

CREATE TABLE IF NOT EXISTS heatmap_ingest_runs (
    started_at          timestamptz NOT NULL,
    finished_at         timestamptz NOT NULL,
    model               smallint NOT NULL CHECK (model BETWEEN 1 AND 3),
    "range"             text NOT NULL,
    source              text NOT NULL CHECK (source IN ('coinglass', 'sandbox', 'replay')),
    universe_size       integer NOT NULL,
    requests_sent       integer NOT NULL,
    retries             integer NOT NULL,
    http_429_received   integer NOT NULL,
    snapshots_new       integer NOT NULL,
    snapshots_unchanged integer NOT NULL,
    quarantined         integer NOT NULL,
    unavailable         integer NOT NULL,
    skipped_unavailable integer NOT NULL,
    failed_requests     integer NOT NULL,
    duration_seconds    double precision NOT NULL,
    PRIMARY KEY (model, "range", started_at)
);

-- What the dashboards ask: the runs that finished in a time window.
CREATE INDEX IF NOT EXISTS heatmap_ingest_runs_finished_idx ON heatmap_ingest_runs (finished_at);
