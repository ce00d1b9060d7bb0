"""Dagster wiring only: resources, partitions, assets, checks, jobs, schedules, sensors.

Every module here is thin: it reads configuration, calls the plain-Python layers, and reports.
`helix_pipelines.definitions` loads this folder.
"""
