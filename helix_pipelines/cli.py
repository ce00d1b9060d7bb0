"""`helix` command line: run the pipeline on embedded defaults, inspect what is stored.

  helix demo      symbol_universe, heatmaps for every model x range, then clusters, signals and the
                  paper executor on them, with a summary
  helix status    what the warehouse holds, per model x range
  helix universe  the universe the current configuration resolves to
  helix executor  serve | status | halt | reset-halt (the trade executor, paper by default)

Every command uses the same resources as Dagster, so COINGLASS_API_KEY switches all of them from
the sandbox to the real API.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import get_args

import dagster as dg

from helix_pipelines.bus.signals import SignalConsumer
from helix_pipelines.clock import utc_now
from helix_pipelines.coinglass.endpoints import MODELS, RANGES
from helix_pipelines.defs.analytics import analyze_liquidations, cluster_outcomes
from helix_pipelines.defs.execution import executor_job
from helix_pipelines.defs.heatmaps import ingest_heatmaps_step, materialized_metadata
from helix_pipelines.defs.partitions import heatmap_partition_key
from helix_pipelines.defs.resources import (
    ArchiveResource,
    UniverseResource,
    WarehouseResource,
    default_resources,
)
from helix_pipelines.defs.universe import symbol_universe
from helix_pipelines.execution.executor import describe_book
from helix_pipelines.execution.serve import serve
from helix_pipelines.execution.settings import ExecutorMode, RefuseToStart
from helix_pipelines.execution.store import ExecutorStore
from helix_pipelines.universe import resolve_universe

_COLUMNS = (
    "model",
    "range",
    "new",
    "unchanged",
    "quarantined",
    "failed",
    "cells_added",
    "coverage",
    "seconds",
)


def _resources(args: argparse.Namespace) -> dict[str, dg.ConfigurableResource]:
    resources = default_resources()
    if args.data_dir:
        root = Path(args.data_dir)
        resources["warehouse"] = WarehouseResource(duckdb_path=str(root / "helix.duckdb"))
        resources["archive"] = ArchiveResource(
            archive_root=str(root / "archive"), quarantine_root=str(root / "quarantine")
        )
    if getattr(args, "symbols", None):
        resources["universe"] = UniverseResource(symbols=[s for s in args.symbols.split(",") if s])
    return resources


def _instance() -> dg.DagsterInstance:
    """The persistent instance when DAGSTER_HOME is set (runs then show in the UI), else ephemeral."""
    return (
        dg.DagsterInstance.get()
        if os.environ.get("DAGSTER_HOME")
        else dg.DagsterInstance.ephemeral()
    )


def _csv(value: str | None, allowed: Sequence[str], what: str) -> list[str]:
    if not value:
        return list(allowed)
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in allowed]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (choose from {', '.join(allowed)})")
    return chosen


def demo(args: argparse.Namespace) -> int:
    resources = _resources(args)
    models = [int(m) for m in _csv(args.models, [str(m) for m in MODELS], "models")]
    ranges = _csv(args.ranges, RANGES, "ranges")
    settings = resources["coinglass"].settings()  # type: ignore[attr-defined]
    print(f"helix demo: source = {settings.describe()}")
    instance = _instance()
    # Dagster's console logger prints every step event; the summary table is what a person reads.
    quiet = {"loggers": {"console": {"config": {"log_level": "INFO" if args.verbose else "ERROR"}}}}
    started = time.perf_counter()
    universe = dg.materialize(
        [symbol_universe], resources=resources, instance=instance, run_config=quiet
    )
    meta = universe.asset_materializations_for_node("symbol_universe")[0].metadata
    print(f"universe: {meta['members'].value} symbols ({meta['symbols'].value})")
    print(" ".join(f"{c:>11}" for c in _COLUMNS))
    totals = {"new": 0, "unchanged": 0, "quarantined": 0, "failed": 0, "cells_added": 0}
    failures = []
    for model in models:
        for range_ in ranges:
            result = dg.materialize(
                [ingest_heatmaps_step],
                partition_key=heatmap_partition_key(model, range_),
                resources=resources,
                instance=instance,
                run_config=quiet,
                raise_on_error=False,
            )
            m = materialized_metadata(result)
            if not result.success and "snapshots_new" not in m:
                failures.append(f"m{model} {range_}")
                print(f"{model:>11} {range_:>11}  FAILED: {_failure(result)}")
                continue
            row = {
                "new": m["snapshots_new"], "unchanged": m["snapshots_unchanged"],
                "quarantined": m["quarantined"], "failed": m["failed_requests"],
                "cells_added": m["cells_added"],
            }  # fmt: skip
            for key, value in row.items():
                totals[key] += int(value)  # type: ignore[arg-type]
            values = (
                model,
                range_,
                *row.values(),
                f"{m['coverage']:.0%}",
                f"{m['duration_seconds']:.2f}",
            )
            print(" ".join(f"{v!s:>11}" for v in values))
    elapsed = time.perf_counter() - started
    warehouse = resources["warehouse"].get()  # type: ignore[attr-defined]
    archive = resources["archive"].archive()  # type: ignore[attr-defined]
    print(
        f"\ndone in {elapsed:.1f}s: {len(models) * len(ranges)} model x range partitions, "
        f"{totals['new']} new snapshots, {totals['unchanged']} unchanged, "
        f"{totals['quarantined']} quarantined, {totals['failed']} failed, {totals['cells_added']:,} cells added"
    )
    print(f"warehouse: {warehouse.description}   archive (Model 3 Parquet): {archive.root}")
    if not args.no_analytics and not failures:
        _demo_analytics_and_executor(resources, instance, quiet)
    if settings.kind == "sandbox":
        print(
            "note: SANDBOX data — synthetic heatmaps, not market data. Set COINGLASS_API_KEY for real data."
        )
    print(
        "next: `make dev` opens the Dagster UI with this pipeline; `helix status` summarizes the warehouse."
    )
    if failures:
        print(f"failed partitions: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


def _failure(result: dg.ExecuteInProcessResult) -> str:
    """The first step failure's message, for a one-line summary."""
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.error:
            error = event.step_failure_data.error
            cause = error.cause or error
            return f"{cause.cls_name}: {cause.message.strip().splitlines()[0]}"
    return "see the run's logs (helix -v demo)"


def _demo_analytics_and_executor(
    resources: dict[str, dg.ConfigurableResource], instance: dg.DagsterInstance, quiet: dict
) -> None:
    """Clusters, zones and signals from what was just ingested, then the executor on them."""
    analysis = dg.materialize(
        [analyze_liquidations, cluster_outcomes], resources=resources, instance=instance,
        run_config=quiet, raise_on_error=False,
    )  # fmt: skip
    meta = {
        e.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
        for e in analysis.get_asset_materialization_events()
    }
    if "trade_signals" not in meta:
        print("analytics: FAILED (run with -v for the logs)")
        return
    print(
        f"analytics: {meta['liquidation_clusters']['clusters']} clusters, "
        f"{meta['consensus_zones']['zones']} consensus zones, {meta['trade_signals']['signals']} "
        f"trade signals ({meta['trade_signals']['new_signals']} new, "
        f"{meta['trade_signals']['published']} published to Redis)"
    )
    run = executor_job.execute_in_process(
        resources={"warehouse": resources["warehouse"], "executor": resources["executor"]},
        instance=instance, run_config=quiet, raise_on_error=False,
    )  # fmt: skip
    outputs = [e for e in run.all_events if e.event_type_value == "STEP_OUTPUT"]
    if not outputs:
        print("executor: FAILED (run with -v for the logs)")
        return
    done = {k: v.value for k, v in outputs[0].event_specific_data.metadata.items()}
    print(
        f"executor ({done['mode']}): {done['signals']} new signals -> {done['counts'] or 'no decision'}"
    )
    book = ", ".join(f"{symbol} {line}" for symbol, line in done["positions"].items())
    print(f"positions after the run: {book or 'none'}")


def status(args: argparse.Namespace) -> int:
    resources = _resources(args)
    warehouse = resources["warehouse"].get()  # type: ignore[attr-defined]
    rows = sorted(
        warehouse.ledger_summary(), key=lambda r: (r["model"], RANGES.index(str(r["range"])))
    )
    print(f"warehouse: {warehouse.description}")
    universe = warehouse.load_universe()
    print(f"universe: {len(universe)} symbols: {', '.join(m.symbol for m in universe[:30])}")
    if not rows:
        print(
            "no heatmap snapshots stored yet: run `helix demo` or materialize liquidation_heatmaps"
        )
        return 0
    print(
        f"{'model':>5} {'range':>5} {'loaded':>7} {'quarantined':>11} {'cells':>12}  latest fetch (UTC)"
    )
    for row in rows:
        print(
            f"{row['model']:>5} {row['range']:>5} {row['loaded']:>7} {row['quarantined']:>11} "
            f"{row['cells']:>12,}  {row['latest_fetch']:%Y-%m-%d %H:%M:%S}"
        )
    return 0


def universe(args: argparse.Namespace) -> int:
    resources = _resources(args)
    coinglass = resources["coinglass"]
    selection = resources["universe"].selection()  # type: ignore[attr-defined]

    async def run() -> int:
        async with coinglass.open() as source:  # type: ignore[attr-defined]
            resolved = await resolve_universe(source, selection)
            label = " (SANDBOX)" if source.kind == "sandbox" else ""
            print(f"{len(resolved.members)} symbols from {source.kind}{label}:")
            print(", ".join(m.symbol for m in resolved.members))
            if resolved.unsupported:
                print(f"unsupported, left out: {', '.join(resolved.unsupported)}")
            return 0

    return asyncio.run(run())


def _executor(args: argparse.Namespace):
    resources = _resources(args)
    warehouse = resources["warehouse"].get()  # type: ignore[attr-defined]
    return resources["executor"].build(warehouse), resources  # type: ignore[attr-defined]


def executor_serve(args: argparse.Namespace) -> int:
    """Consume the Redis signal stream until SIGTERM/SIGINT."""
    executor, resources = _executor(args)
    url = resources["signal_bus"].url()  # type: ignore[attr-defined]
    if not url:
        raise SystemExit("helix executor serve needs HELIX_REDIS_URL (the signal stream)")
    consumer = SignalConsumer(
        url, args.group, args.consumer or f"{socket.gethostname()}-{os.getpid()}",
        key_prefix=resources["signal_bus"].key_prefix,  # type: ignore[attr-defined]
    )  # fmt: skip
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    report = executor.start([], 1)
    print(
        f"executor serving in {executor.store.mode} mode; reconciled {len(report.resolved)} orders"
    )
    stats = serve(executor, consumer, stop)
    consumer.close()
    print(
        f"stopped: {stats.received} signals, decisions {stats.decisions}, invalid {stats.invalid}"
    )
    return 0


def executor_status(args: argparse.Namespace) -> int:
    executor, _ = _executor(args)
    halted, reason = executor.store.halted()
    state = executor.account_state()
    print(f"mode: {executor.store.mode}   halted: {'YES: ' + reason if halted else 'no'}")
    print(f"equity: {executor.broker.equity():.2f}   today's loss: {state.daily_loss_usd:.2f}")
    for symbol, line in describe_book(state.positions).items():
        print(f"position {symbol}: {line}")
    return 0


def _halt_stores(args: argparse.Namespace) -> list[ExecutorStore]:
    """The state of the mode(s) named, without building a broker: the kill switch must work
    even without keys or the live confirmation at hand."""
    warehouse = _resources(args)["warehouse"].get()  # type: ignore[attr-defined]
    chosen = args.mode or os.environ.get("HELIX_EXECUTOR_MODE") or "paper"
    modes = list(get_args(ExecutorMode)) if chosen == "all" else [chosen]
    unknown = [m for m in modes if m not in get_args(ExecutorMode)]
    if unknown:
        raise SystemExit(
            f"unknown executor mode {unknown[0]!r} (paper, testnet, demo, live or all)"
        )
    return [ExecutorStore(warehouse, mode) for mode in modes]


def executor_halt(args: argparse.Namespace) -> int:
    for store in _halt_stores(args):
        store.halt(args.reason, utc_now())
        print(f"halted ({store.mode}): {args.reason}")
    return 0


def executor_reset_halt(args: argparse.Namespace) -> int:
    for store in _halt_stores(args):
        halted, reason = store.halted()
        store.reset_halt(utc_now())
        print(
            f"halt lifted ({store.mode})"
            + (f"; it was: {reason}" if halted else "; it was not halted")
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="helix", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir",
        help="root of the warehouse, archive and quarantine (default $HELIX_DATA_DIR or ./data)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress of every batch")
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser(
        "demo", help="ingest every model x range for the universe, then summarize"
    )
    demo_parser.add_argument(
        "--symbols", help="comma-separated coins (default BTC,ETH,SOL,XRP,DOGE)"
    )
    demo_parser.add_argument("--models", help="comma-separated subset of 1,2,3")
    demo_parser.add_argument("--ranges", help=f"comma-separated subset of {','.join(RANGES)}")
    demo_parser.add_argument(
        "--no-analytics",
        action="store_true",
        help="ingest only: skip clusters, signals and the paper executor",
    )
    demo_parser.set_defaults(run=demo)
    commands.add_parser("status", help="what the warehouse holds").set_defaults(run=status)
    universe_parser = commands.add_parser("universe", help="resolve and print the symbol universe")
    universe_parser.add_argument("--symbols", help="comma-separated coins")
    universe_parser.set_defaults(run=universe)
    executor_parser = commands.add_parser("executor", help="the trade executor (paper by default)")
    executor_commands = executor_parser.add_subparsers(dest="executor_command", required=True)
    serve_parser = executor_commands.add_parser("serve", help="consume the Redis signal stream")
    serve_parser.add_argument("--group", default="helix-executor", help="consumer group")
    serve_parser.add_argument("--consumer", help="consumer name (default host-pid)")
    serve_parser.set_defaults(run=executor_serve)
    executor_commands.add_parser("status", help="mode, halt, equity, positions").set_defaults(
        run=executor_status
    )
    halt_parser = executor_commands.add_parser("halt", help="the kill switch: stop placing orders")
    halt_parser.add_argument("--reason", default="manual kill switch")
    reset_parser = executor_commands.add_parser("reset-halt", help="lift a halt (the only way)")
    for mode_parser, run in ((halt_parser, executor_halt), (reset_parser, executor_reset_halt)):
        mode_parser.add_argument(
            "--mode",
            help="paper, testnet, demo, live or all (default $HELIX_EXECUTOR_MODE or paper)",
        )
        mode_parser.set_defaults(run=run)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.run(args)
    except RefuseToStart as exc:
        print(f"helix: refused to start: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
