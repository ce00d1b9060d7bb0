-- Runs once, when the TimescaleDB container initialises an empty data volume (the official image
-- executes /docker-entrypoint-initdb.d/*.sql as POSTGRES_USER, connected to POSTGRES_DB).
--
-- POSTGRES_DB (`quantprod`) is the Helix warehouse; its tables are created by the warehouse layer's
-- migrations (sql/). Dagster's run, event-log and schedule storage gets a database of its own on the
-- same server, owned by the same role; Dagster creates its tables there on first start.
CREATE DATABASE dagster;
