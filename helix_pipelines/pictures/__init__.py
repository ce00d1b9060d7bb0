"""Pictures for the Dagster UI and the docs, drawn with matplotlib (headless, the Agg backend)."""
