"""Storage behind one small interface (`Warehouse`). No Dagster here."""
