"""Heatmap partitions: model x range (24 keys). Symbols are not a dimension: one run fetches the
whole universe concurrently, because thousands of per-symbol runs would cost more than the data."""

from __future__ import annotations

import dagster as dg

from helix_pipelines.contracts.vocabulary import MODELS, RANGES

heatmap_partitions = dg.MultiPartitionsDefinition(
    {
        "model": dg.StaticPartitionsDefinition([str(m) for m in MODELS]),
        "range": dg.StaticPartitionsDefinition(list(RANGES)),
    }
)


def heatmap_partition_key(model: int, range_: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"model": str(model), "range": range_})


def model_and_range(key: str | dg.MultiPartitionKey) -> tuple[int, str]:
    """(model, range) of a heatmap partition key."""
    if not isinstance(key, dg.MultiPartitionKey):
        key = heatmap_partitions.get_partition_key_from_str(key)
    dims = key.keys_by_dimension
    return int(dims["model"]), dims["range"]
