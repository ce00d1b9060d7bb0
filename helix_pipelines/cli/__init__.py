"""`helix` command line: run the pipeline on embedded defaults, inspect what is stored, trade.

  helix demo      the universe, every model x range, then clusters, the radar, signals and the paper
                  executor on them, with a summary; recorded in the local Dagster instance
                  ($DAGSTER_HOME, default ./.dagster_home), which `make dev` serves
  helix status    what the warehouse holds, per model x range
  helix universe  the universe the current configuration resolves to
  helix radar     the newest liquidation radar: coins ranked by imbalance and distance to
                  their major zones (--refresh recomputes it, --all lists excluded coins)
  helix live      Bybit prices and CoinGlass liquidations over websockets, the budget planner
                  (the radar's top coins every cycle) and the live radar, until Ctrl-C
  helix executor  serve | status | halt | reset-halt (the trade executor, paper by default)

Every command builds from one `Settings` read from the environment (the same as Dagster's
resources), so COINGLASS_API_KEY switches all of them from the sandbox to the real API, and
runs the same services as the assets.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import duckdb

from helix_pipelines.cli import executor, inspect, live, radar
from helix_pipelines.coinglass.errors import CoinGlassError
from helix_pipelines.contracts.vocabulary import RANGES
from helix_pipelines.execution.brokers import VenueUnavailable
from helix_pipelines.execution.settings import RefuseToStart
from helix_pipelines.services.settings import Settings
from helix_pipelines.warehouse.postgres_db import WarehouseConnectionError

# What an operator can fix (a setting, a server, a file, the API): one line, not a traceback.
OPERATOR_ERRORS = (
    WarehouseConnectionError,
    CoinGlassError,
    VenueUnavailable,
    OSError,
    ValueError,
    duckdb.Error,
)


def settings_for(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    return settings.with_data_dir(Path(args.data_dir)) if args.data_dir else settings


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    # Imported when run: the demo loads Dagster and the definitions, no other command does.
    from helix_pipelines.cli import demo  # noqa: PLC0415

    return demo.run(args, settings)


def _parser() -> argparse.ArgumentParser:
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
    demo_parser.set_defaults(run=_demo)
    commands.add_parser("status", help="what the warehouse holds").set_defaults(run=inspect.status)
    universe_parser = commands.add_parser("universe", help="resolve and print the symbol universe")
    universe_parser.add_argument("--symbols", help="comma-separated coins")
    universe_parser.set_defaults(run=inspect.universe)
    radar.add_command(commands)
    live.add_command(commands)
    executor.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.run(args, settings_for(args))
    except RefuseToStart as exc:
        print(f"helix: refused to start: {exc}", file=sys.stderr)
        return 2
    except OPERATOR_ERRORS as exc:
        if args.verbose:
            raise
        message = " ".join(str(exc).split())  # one line, whatever the server's text was
        print(f"helix: {type(exc).__name__}: {message} (-v shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
