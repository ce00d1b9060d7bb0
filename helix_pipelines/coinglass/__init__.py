"""CoinGlass v4 access: HTTP client, rate limiter, sandbox and replay sources. No Dagster here."""
