"""Pure heatmap logic: payload -> contract frames, Parquet archive, previews. No Dagster here."""
