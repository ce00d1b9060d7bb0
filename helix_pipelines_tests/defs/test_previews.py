"""The pictures in the UI label the levels the analytics computed, at their prices: the ingest
preview its snapshot's largest clusters, the analytics preview the agreed zones and the signal's
entry, stop and take profit. Expected prices are read back from the warehouse, an independent
path from the in-memory frames the pictures were drawn from."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from helix_pipelines.defs.analytics import analyze_liquidations
from helix_pipelines.defs.heatmap_ingest import PREVIEW_CLUSTERS
from helix_pipelines.defs.heatmaps import heatmap_keys_job
from helix_pipelines.defs.resources import (
    ArchiveResource,
    CoinGlassResource,
    RiskResource,
    SignalBusResource,
    UniverseResource,
    WarehouseResource,
)
from helix_pipelines.testing.warehouses import read_table

WORDS = {"short": "shorts liquidated", "long": "longs liquidated"}


def labels_of(markdown: str) -> list[str]:
    return markdown.rpartition("labelled: ")[2].split("; ")


def shown(label: str) -> tuple[str, float, float]:
    """(words, price shown, half its last digit) of a label '<words> <price>[ · <note>]'."""
    text = label.split(" · ", maxsplit=1)[0]
    words, _, price = text.rpartition(" ")
    decimals = len(price.partition(".")[2])
    return words, float(price.replace(",", "")), 0.5 * 10**-decimals


def assert_labelled(labels: list[str], expected: list[tuple[str, float]]) -> None:
    """Every expected (words, price) has its own label showing that price, rounded."""
    left = [shown(label) for label in labels]
    for words, price in expected:
        match = next(
            (s for s in left if s[0] == words and abs(s[1] - price) <= s[2] * (1 + 1e-9)), None
        )
        assert match is not None, (words, price, labels)
        left.remove(match)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root: Path = tmp_path_factory.mktemp("previews")
    resources = {
        "coinglass": CoinGlassResource(),  # the sandbox
        "universe": UniverseResource(),  # the five default coins
        "warehouse": WarehouseResource(duckdb_path=str(root / "helix.duckdb")),
        "archive": ArchiveResource(
            archive_root=str(root / "archive"), quarantine_root=str(root / "quarantine")
        ),
        "risk": RiskResource(),
        "signal_bus": SignalBusResource(),
    }
    instance = dg.DagsterInstance.ephemeral()
    keys = "all"
    heatmaps = heatmap_keys_job.execute_in_process(
        run_config={"ops": {"ingest_heatmap_keys": {"config": {"keys": keys}}}},
        resources={k: resources[k] for k in ("coinglass", "universe", "warehouse", "archive")},
        instance=instance,
    )
    analytics = dg.materialize([analyze_liquidations], resources=resources, instance=instance)
    assert heatmaps.success
    assert analytics.success
    return {"instance": instance, "warehouse": resources["warehouse"].get(), "run": analytics}


def test_the_ingest_preview_labels_its_largest_clusters_and_the_last_price(pipeline) -> None:
    instance: dg.DagsterInstance = pipeline["instance"]
    event = instance.fetch_materializations(
        dg.AssetRecordsFilter(dg.AssetKey("normalized_heatmaps"), asset_partitions=["2|24h"]),
        limit=1,
    ).records[0]
    preview = event.asset_materialization.metadata["preview"].value
    assert preview.startswith("**BTC model 2 24h** — SANDBOX DATA")
    labels = labels_of(preview)
    clusters = read_table(pipeline["warehouse"], "liquidation_clusters").filter(
        (pl.col("symbol") == "BTC")
        & (pl.col("model") == 2)
        & (pl.col("range") == "24h")
        & (pl.col("profile") == "cumulative")
    )
    largest = clusters.sort("share", descending=True).head(PREVIEW_CLUSTERS)
    assert largest.height >= 2
    candles = read_table(pipeline["warehouse"], "heatmap_candles").filter(
        (pl.col("symbol") == "BTC") & (pl.col("range") == "24h")
    )
    last_close = candles.sort("ts")["close"][-1]
    assert_labelled(
        labels,
        [("last", last_close)]
        + [(WORDS[r["liquidated_side"]], r["peak_price"]) for r in largest.iter_rows(named=True)],
    )
    assert len(labels) == 1 + largest.height


def test_the_analytics_preview_labels_zones_and_the_signal_levels(pipeline) -> None:
    run: dg.ExecuteInProcessResult = pipeline["run"]
    (clusters,) = [
        e
        for e in run.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("liquidation_clusters")
    ]
    preview = clusters.materialization.metadata["preview"].value
    signals = read_table(pipeline["warehouse"], "trade_signals")
    zones = read_table(pipeline["warehouse"], "consensus_zones")
    assert signals.height >= 1
    signal = signals.row(0, named=True)
    part = next(p for p in preview.split("\n\n**") if p.lstrip("*").startswith(signal["symbol"]))
    labels = labels_of(part)
    # The signal's levels are always drawn ...
    assert_labelled(
        labels,
        [
            ("entry", signal["entry"]),
            ("stop", signal["stop_loss"]),
            ("take profit", signal["take_profit"]),
        ],
    )
    # ... and every other price label (the last price aside) is one of its agreed zones.
    agreed = zones.filter(
        (pl.col("symbol") == signal["symbol"]) & (pl.col("consensus_score") >= 0.5)
    )
    zone_levels = [
        (WORDS[z["liquidated_side"]], z["peak_price"]) for z in agreed.iter_rows(named=True)
    ]
    others = [
        label
        for label in labels
        if not label.startswith(("entry ", "stop ", "take profit ", "last "))
    ]
    assert others
    for label in others:
        words, price, tolerance = shown(label)
        assert any(
            w == words and abs(p - price) <= tolerance * (1 + 1e-9) for w, p in zone_levels
        ), label
