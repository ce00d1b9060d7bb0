"""Redis transport for trade signals: a durable stream with consumer groups, plus a pub/sub
notification channel for dashboards. Plain Python, no Dagster, so the executor's service mode and
the CLI use the same code as the assets.
"""
