"""Liquidation analytics: profiles, clusters, consensus, risk, outcomes, rendering. No Dagster here."""
