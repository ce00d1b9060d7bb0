"""The thin executor: brokers (paper, Bybit), risk guard, idempotent orders. No Dagster here."""
