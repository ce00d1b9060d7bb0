"""`helix executor serve | status | halt | reset-halt`: the trade executor (paper by default)."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import threading
from typing import Any, get_args

from helix_pipelines.bus.consumer import SignalConsumer
from helix_pipelines.clock import utc_now
from helix_pipelines.contracts.vocabulary import ExecutorMode
from helix_pipelines.execution.executor import describe_book
from helix_pipelines.execution.ports import halt, halted, reset_halt
from helix_pipelines.services.executor import build_executor
from helix_pipelines.services.serve import serve
from helix_pipelines.services.settings import Settings, open_configured


def add_commands(commands: Any) -> None:
    parser = commands.add_parser("executor", help="the trade executor (paper by default)")
    sub = parser.add_subparsers(dest="executor_command", required=True)
    serve_parser = sub.add_parser("serve", help="consume the Redis signal stream")
    serve_parser.add_argument("--group", default="helix-executor", help="consumer group")
    serve_parser.add_argument("--consumer", help="consumer name (default host-pid)")
    serve_parser.set_defaults(run=executor_serve)
    sub.add_parser("status", help="mode, halt, equity, positions").set_defaults(run=executor_status)
    halt_parser = sub.add_parser("halt", help="the kill switch: stop placing orders")
    halt_parser.add_argument("--reason", default="manual kill switch")
    reset_parser = sub.add_parser("reset-halt", help="lift a halt (the only way)")
    for mode_parser, run in ((halt_parser, executor_halt), (reset_parser, executor_reset_halt)):
        mode_parser.add_argument(
            "--mode",
            help="paper, testnet, demo, live or all (default $HELIX_EXECUTOR_MODE or paper)",
        )
        mode_parser.set_defaults(run=run)


def executor_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Consume the Redis signal stream until SIGTERM/SIGINT."""
    if not settings.redis_url:
        raise SystemExit("helix executor serve needs HELIX_REDIS_URL (the signal stream)")
    warehouse = open_configured(settings)
    executor = build_executor(settings, warehouse)
    consumer = SignalConsumer(
        settings.redis_url,
        args.group,
        args.consumer or f"{socket.gethostname()}-{os.getpid()}",
        key_prefix=settings.bus_prefix,
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    coins = [m.symbol for m in warehouse.heatmaps.load_universe()]
    report = executor.start(coins, settings.executor.default_leverage)
    print(
        f"executor serving in {executor.store.mode} mode; reconciled {len(report.resolved)} orders"
    )
    try:
        stats = serve(executor, consumer, stop)
    finally:
        consumer.close()
        warehouse.close()
    print(
        f"stopped: {stats.received} signals, decisions {stats.decisions}, "
        f"dead-lettered {consumer.dead_lettered}"
    )
    return 0


def executor_status(args: argparse.Namespace, settings: Settings) -> int:
    warehouse = open_configured(settings)
    try:
        executor = build_executor(settings, warehouse)
        is_halted, reason = halted(executor.store)
        state = executor.account_state()
        print(f"mode: {executor.store.mode}   halted: {'YES: ' + reason if is_halted else 'no'}")
        print(f"equity: {executor.broker.equity():.2f}   today's loss: {state.daily_loss_usd:.2f}")
        for symbol, line in describe_book(state.positions).items():
            print(f"position {symbol}: {line}")
    finally:
        warehouse.close()
    return 0


def _modes(args: argparse.Namespace, settings: Settings) -> list[str]:
    """The mode(s) named. The kill switch needs only the warehouse: no broker is built, so it
    works without keys or the live confirmation at hand."""
    chosen = args.mode or settings.executor.mode
    modes = list(get_args(ExecutorMode)) if chosen == "all" else [chosen]
    unknown = [m for m in modes if m not in get_args(ExecutorMode)]
    if unknown:
        raise SystemExit(
            f"unknown executor mode {unknown[0]!r} (paper, testnet, demo, live or all)"
        )
    return modes


def executor_halt(args: argparse.Namespace, settings: Settings) -> int:
    warehouse = open_configured(settings)
    try:
        for mode in _modes(args, settings):
            halt(warehouse.executor_store(mode), args.reason, utc_now())
            print(f"halted ({mode}): {args.reason}")
    finally:
        warehouse.close()
    return 0


def executor_reset_halt(args: argparse.Namespace, settings: Settings) -> int:
    warehouse = open_configured(settings)
    try:
        for mode in _modes(args, settings):
            store = warehouse.executor_store(mode)
            was_halted, reason = halted(store)
            reset_halt(store, utc_now())
            said = f"; it was: {reason}" if was_halted else "; it was not halted"
            print(f"halt lifted ({mode}){said}")
    finally:
        warehouse.close()
    return 0
