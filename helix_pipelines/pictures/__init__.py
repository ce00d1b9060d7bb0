"""Pictures for the Dagster UI and the docs, drawn with matplotlib on figures with their own Agg
canvas (headless, no pyplot, no global backend): `heatmap` draws one snapshot with its prices
labelled, `radar` the ranked coins."""
