"""Bench (#10): the real job. Every coin of a Bybit-sized universe x all 24 model/range pairs at
the recorded real payload sizes, against the fake CoinGlass at its plan limit with 100-300 ms
latency, through `ingest_heatmaps` with one client (one budget): partition after partition as
Dagster's `coinglass` pool runs them (`--overlap 1`, the default), or two at once (`--overlap 2`).

Printed per backend (DuckDB, PostgreSQL), each in a fresh process so its peak RSS is its own:
  - wall time as a ratio of the API floor (requests sent / limit: the sweep cannot be faster;
    1.0 means processing is never the bottleneck);
  - peak RSS of the pipeline process;
  - rows and bytes the warehouse grew by, and per million cells ingested;
  - bytes the archive grew by, per cell;
  - requests saved by skipping ranges CoinGlass had no data for (young coins).
Then one partition of 1,000 coins (Model 3 / 3d, the largest payloads: ~200k cells each) on each
backend: peak RSS must not grow with the universe.

The fake runs in its own process (CoinGlass is another machine) and serves a pool of payloads
generated before the clock starts: for each model/range, `--variants` distinct real-size
payloads, handed to the coins in turn (each coin's snapshot is still its own ledger row and
archive file). Generating a real-size payload costs more CPU than ingesting it, so generating on
request would measure the fake, not Helix.

    uv run python -m bench.full_sweep [--coins 435] [--limit 1200] [--big-coins 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from bench.pg import scratch_database
from helix_pipelines.coinglass.client import CoinGlassClient
from helix_pipelines.coinglass.synthetic import heatmap_payload, period_end_at
from helix_pipelines.contracts.heatmaps import HeatmapRequest, UniverseMember
from helix_pipelines.contracts.vocabulary import MODELS, RANGES
from helix_pipelines.heatmaps.archive import ParquetArchive
from helix_pipelines.heatmaps.quarantine import QuarantineStore
from helix_pipelines.services.ingest import ingest_heatmaps
from helix_pipelines.services.ingest_report import IngestOptions, IngestReport
from helix_pipelines.testing.coinglass_server import FakeCoinGlassServer
from helix_pipelines.testing.universe import coin_names
from helix_pipelines.warehouse import open_warehouse

KEY = "bench-key"
MOMENT = 1_750_000_000
SIZE_SQL = {
    "postgres": "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = 'public' AND c.relkind = 'r'",
}
ROWS_SQL = (
    "SELECT (SELECT count(*) FROM heatmap_snapshots) + (SELECT count(*) FROM heatmap_candles) "
    "+ (SELECT count(*) FROM liquidation_price_levels) + (SELECT count(*) FROM liquidation_data_raw)"
)


def young_coins(coins: list[str]) -> dict[str, float]:
    """About one coin in eight lacks 1y, one in twenty also 90d and 180d (docs/real-apis.md:
    of the first 7 coins of a real scan, 3 lacked 1y and one lacked 90d/180d/1y)."""
    young = {c: 200.0 for c in coins[3::8]}
    young.update({c: 60.0 for c in coins[5::20]})
    return young


def serve(
    coins: list[str],
    variants: int,
    limit: int,
    ready: multiprocessing.Queue,  # type: ignore[type-arg]
    stop: multiprocessing.Event,  # type: ignore[valid-type]
) -> None:
    pool = {
        (HeatmapRequest("coin", "X", m, r).path, r): [
            heatmap_payload(
                HeatmapRequest("coin", coins[v], m, r),
                period_end_at(HeatmapRequest("coin", coins[v], m, r), MOMENT),
            )
            for v in range(variants)
        ]
        for m in MODELS
        for r in RANGES
    }
    order = {c: i for i, c in enumerate(coins)}

    def factory(path: str, params: Mapping[str, str]) -> bytes:
        bodies = pool[path, params["range"]]
        return bodies[order.get(params["symbol"], 0) % len(bodies)]

    with FakeCoinGlassServer(
        api_key=KEY,
        limit_per_minute=limit,
        min_latency=0.1,
        max_latency=0.3,
        supported_coins=coins,
        payload_factory=factory,
        record_bodies=False,
        history_days=young_coins(coins),
    ) as server:
        ready.put((server.base_url, sum(len(b) for bodies in pool.values() for b in bodies)))
        stop.wait()


def _warehouse_size(warehouse, backend: str, duckdb_path: Path) -> int:
    if backend == "duckdb":
        with warehouse.database.connect() as conn:
            conn.execute("CHECKPOINT")
        return duckdb_path.stat().st_size + sum(
            p.stat().st_size for p in duckdb_path.parent.glob(duckdb_path.name + ".wal")
        )
    with warehouse.database.connect() as conn:
        return int(conn.rows(SIZE_SQL["postgres"])[0][0])


def sweep_order() -> list[tuple[int, str]]:
    """Model 1 of every range first (it learns which young coins have no data, so Models 2
    and 3 skip them), then Model 3 and Model 2 alternating: with two partitions at once, a
    heavy Model 3 partition (processing-bound) runs beside a light one (budget-bound)."""
    later = [(m, r) for r in RANGES for m in (3, 2)]
    return [(1, r) for r in RANGES] + later


def run_sweep(args: argparse.Namespace) -> dict[str, object]:
    """One backend, in this (fresh) process: the sweep, measured."""
    coins = coin_names(args.coins)
    members = [UniverseMember("coin", "", c, i) for i, c in enumerate(coins, 1)]
    partitions = (
        [(int(k[0]), k[2:]) for k in args.only.split(",")]
        if args.only
        else [(m, r) for r in RANGES for m in MODELS]
    )
    with tempfile.TemporaryDirectory() as tmp, scratch_database() as dsn:
        root = Path(tmp)
        duckdb_path = root / "helix.duckdb"
        warehouse = open_warehouse(
            pg_dsn=dsn if args.backend == "postgres" else None, duckdb_path=duckdb_path
        )
        archive = ParquetArchive(root / "archive")
        quarantine = QuarantineStore(root / "quarantine")
        size_before = _warehouse_size(warehouse, args.backend, duckdb_path)
        with warehouse.database.connect() as conn:
            rows_before = int(conn.rows(ROWS_SQL)[0][0])
        totals = {"requests": 0, "cells": 0, "snapshots": 0, "saved": 0, "unavailable": 0}
        peak_in_flight_mb = 0.0

        def account(report: IngestReport, model: int, range_: str) -> None:
            nonlocal peak_in_flight_mb
            totals["cells"] += report.stored.cells_ingested
            totals["snapshots"] += report.stored.snapshots_added
            totals["saved"] += report.requests_saved
            totals["unavailable"] += len(report.unavailable)
            peak_in_flight_mb = max(peak_in_flight_mb, report.in_flight.peak_bytes / (1 << 20))
            print(
                f"  {args.backend} m{model} {range_}: {report.stored.snapshots_added} "
                f"snapshots, {report.stored.cells_ingested:,} cells, "
                f"{report.duration_seconds:.1f} s",
                file=sys.stderr,
                flush=True,
            )

        async def sweep() -> None:
            async with CoinGlassClient(
                KEY, args.base_url, rate_limit_per_minute=args.limit
            ) as client:
                slots = asyncio.Semaphore(args.overlap)

                async def one(model: int, range_: str) -> None:
                    async with slots:
                        report = await ingest_heatmaps(
                            client,
                            warehouse.heatmaps,
                            archive,
                            quarantine,
                            members,
                            model,
                            range_,
                            IngestOptions(
                                batch_size=args.batch_size,
                                max_payloads_in_flight=max(24, 6 * args.batch_size),
                            ),
                        )
                    account(report, model, range_)

                await asyncio.gather(*(one(m, r) for m, r in partitions))
                totals["requests"] = client.stats.requests_sent

        start = time.perf_counter()
        asyncio.run(sweep())
        elapsed = time.perf_counter() - start
        size_after = _warehouse_size(warehouse, args.backend, duckdb_path)
        with warehouse.database.connect() as conn:
            rows_after = int(conn.rows(ROWS_SQL)[0][0])
        archive_bytes = archive.size_bytes()
        warehouse.close()
    cells = max(totals["cells"], 1)
    floor = totals["requests"] / (args.limit / 60)
    return {
        "backend": args.backend,
        "partitions": len(partitions),
        "partitions_at_once": args.overlap,
        "coins": args.coins,
        "requests": totals["requests"],
        "snapshots": totals["snapshots"],
        "cells": totals["cells"],
        "seconds": round(elapsed, 1),
        "api_floor_seconds": round(floor, 1),
        "ratio_to_api_floor": round(elapsed / floor, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0),
        "peak_in_flight_mb": round(peak_in_flight_mb, 1),
        "warehouse_rows_added": rows_after - rows_before,
        "warehouse_bytes_added": size_after - size_before,
        "warehouse_mb_per_million_cells": round((size_after - size_before) / cells, 3),
        "archive_bytes": archive_bytes,
        "archive_bytes_per_cell": round(archive_bytes / cells, 2),
        "unavailable_answers": totals["unavailable"],
        "requests_saved": totals["saved"],
    }


def child(
    base_url: str,
    backend: str,
    coins: int,
    limit: int,
    only: str | None,
    overlap: int,
    batch_size: int,
) -> dict:
    command = [sys.executable, "-m", "bench.full_sweep", "--child", backend, "--base-url", base_url]
    command += ["--coins", str(coins), "--limit", str(limit), "--overlap", str(overlap)]
    command += ["--batch-size", str(batch_size)]
    command += ["--only", only] if only else []
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    sys.stderr.write(done.stderr)
    if done.returncode:
        raise SystemExit(f"full_sweep: the {backend} run failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--coins", type=int, default=435)
    parser.add_argument(
        "--big-coins", type=int, default=1000, help="coins of the one-partition run"
    )
    parser.add_argument("--limit", type=int, default=1200, help="requests per minute")
    parser.add_argument("--variants", type=int, default=3, help="distinct payloads per model/range")
    parser.add_argument("--backends", default="duckdb,postgres")
    parser.add_argument("--child", dest="backend", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument(
        "--only", help="model/range partitions of the sweep, e.g. 3/3d,1/12h (default: all 24)"
    )
    parser.add_argument("--skip-big", action="store_true", help="no one-partition run")
    parser.add_argument("--batch-size", type=int, default=8, help="snapshots per transaction")
    parser.add_argument(
        "--overlap",
        type=int,
        default=1,
        help="partitions in flight at once, sharing one client and budget (1: as Dagster's "
        "coinglass pool runs them)",
    )
    args = parser.parse_args()
    if args.backend:
        print(json.dumps(run_sweep(args)))
        return
    universe = coin_names(max(args.coins, args.big_coins))
    ready: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    stop = multiprocessing.Event()
    server = multiprocessing.Process(
        target=serve, args=(universe, args.variants, args.limit, ready, stop), daemon=True
    )
    server.start()
    base_url, pool_bytes = ready.get(timeout=900)
    print(
        f"full_sweep fake ready at {datetime.now(UTC):%H:%M:%S}: {args.variants} payloads per "
        f"model/range, {pool_bytes / 1e6:.0f} MB of JSON"
    )
    try:
        for backend in args.backends.split(","):
            result = child(
                base_url, backend, args.coins, args.limit, args.only, args.overlap, args.batch_size
            )
            print("full_sweep " + " ".join(f"{k}={v}" for k, v in result.items()), flush=True)
        for backend in [] if args.skip_big else args.backends.split(","):
            result = child(
                base_url, backend, args.big_coins, args.limit, "3/3d", 1, args.batch_size
            )
            print("full_sweep " + " ".join(f"{k}={v}" for k, v in result.items()), flush=True)
    finally:
        stop.set()
        server.join(timeout=10)


if __name__ == "__main__":
    main()
