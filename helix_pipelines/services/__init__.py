"""Use cases: the one path that Dagster assets (`defs/`) and the `helix` CLI both call.

Each service takes domain objects (a warehouse, a source, settings) and returns a report that
its caller turns into metadata or terminal output; none knows which caller it has.
"""
