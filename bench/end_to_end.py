"""Bench (#3): snapshots per second through fetch -> normalize -> archive -> load.

The real `CoinGlassClient` fetches from the local fake CoinGlass server (no rate limit, no
added latency; in its own process, as CoinGlass is on another machine) serving sandbox payloads
of realistic size for every model x range; `ingest_heatmaps`
normalizes, archives every grid to Parquet and loads PostgreSQL, partition after partition, as a
backfill would. Payloads are generated before the clock starts, so the server costs only HTTP.
A breakdown says where the time went.

    uv run python -m bench.end_to_end [--symbols 20] [--batch-size 4] [--in-flight 2]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.queues
import multiprocessing.synchronize
import tempfile
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench.pg import scratch_database
from helix_pipelines.coinglass.client import CoinGlassClient
from helix_pipelines.coinglass.sandbox import SandboxHeatmaps
from helix_pipelines.coinglass.synthetic import SYNTHETIC_COINS
from helix_pipelines.contracts.heatmaps import HeatmapRequest, NormalizedSnapshot, UniverseMember
from helix_pipelines.contracts.vocabulary import MODELS, RANGES
from helix_pipelines.heatmaps import normalize as normalize_module
from helix_pipelines.heatmaps.archive import ParquetArchive
from helix_pipelines.heatmaps.quarantine import QuarantineStore
from helix_pipelines.services.ingest import ingest_heatmaps
from helix_pipelines.services.ingest_report import IngestOptions
from helix_pipelines.testing.coinglass_server import FakeCoinGlassServer
from helix_pipelines.warehouse.fetch_log import FetchRecord
from helix_pipelines.warehouse.heatmap_store import HeatmapStore, StoreResult
from helix_pipelines.warehouse.postgres_db import PostgresDatabase

KEY = "bench-key"
SPENT: dict[str, float] = defaultdict(float)


class TimedStore(HeatmapStore):
    def store_snapshots(
        self, snapshots: Sequence[NormalizedSnapshot], fetches: Sequence[FetchRecord] = ()
    ) -> StoreResult:
        start = time.perf_counter()
        try:
            return super().store_snapshots(snapshots, fetches)
        finally:
            SPENT["load (COPY + ledger + candles)"] += time.perf_counter() - start

    def known_snapshots(self, snapshot_ids: Sequence[str]) -> dict[str, str]:
        start = time.perf_counter()
        try:
            return super().known_snapshots(snapshot_ids)
        finally:
            SPENT["ledger lookup"] += time.perf_counter() - start


class TimedArchive(ParquetArchive):
    def archive(self, snapshot: NormalizedSnapshot) -> str | None:
        start = time.perf_counter()
        try:
            return super().archive(snapshot)
        finally:
            SPENT["archive (Parquet)"] += time.perf_counter() - start


def _timed_normalize():
    original = normalize_module.normalize_payload

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            SPENT["normalize"] += time.perf_counter() - start

    return timed


def payloads(symbols: Sequence[str]) -> dict[tuple[str, str, str], bytes]:
    at = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    sandbox = SandboxHeatmaps(clock=lambda: at)
    return {
        (HeatmapRequest("coin", s, m, r).path, s, r): sandbox.payload(
            HeatmapRequest("coin", s, m, r)
        )
        for s in symbols
        for m in MODELS
        for r in RANGES
    }


def serve(
    symbols: list[str],
    ready: multiprocessing.queues.Queue[str],
    stop: multiprocessing.synchronize.Event,
) -> None:
    """The fake CoinGlass server in its own process, as the real one is on another machine."""
    served = payloads(symbols)

    def factory(path: str, params: Mapping[str, str]) -> bytes:
        return served[path, params["symbol"], params["range"]]

    with FakeCoinGlassServer(api_key=KEY, payload_factory=factory, record_bodies=False) as server:
        ready.put(server.base_url)
        stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=4, help="snapshots per transaction")
    parser.add_argument("--in-flight", type=int, default=2, help="batches loading at once")
    args = parser.parse_args()
    symbols = list(SYNTHETIC_COINS[: args.symbols])
    cells = sum(body.count(b"],[") for body in payloads(symbols).values())  # ~ one per cell
    ready: multiprocessing.Queue[str] = multiprocessing.Queue()
    stop = multiprocessing.Event()
    server_process = multiprocessing.Process(target=serve, args=(symbols, ready, stop), daemon=True)
    server_process.start()
    base_url = ready.get(timeout=120)

    import helix_pipelines.services.ingest as ingest_module

    ingest_module.normalize_payload = _timed_normalize()  # type: ignore[assignment]
    members = [UniverseMember("coin", "", s, i) for i, s in enumerate(symbols, 1)]
    with scratch_database() as dsn, tempfile.TemporaryDirectory() as tmp:
        database = PostgresDatabase(dsn)
        database.migrate()
        store = TimedStore(database)
        archive = TimedArchive(Path(tmp) / "archive")
        quarantine = QuarantineStore(Path(tmp) / "quarantine")

        async def run_all() -> int:
            loaded = 0
            async with CoinGlassClient(KEY, base_url, rate_limit_per_minute=1_000_000) as client:
                for model in MODELS:
                    for range_ in RANGES:
                        report = await ingest_heatmaps(
                            client,
                            store,
                            archive,
                            quarantine,
                            members,
                            model,
                            range_,
                            IngestOptions(
                                batch_size=args.batch_size, batches_in_flight=args.in_flight
                            ),
                        )
                        loaded += report.stored.snapshots_added
            return loaded

        start = time.perf_counter()
        loaded = asyncio.run(run_all())
        elapsed = time.perf_counter() - start
        database.close()
    stop.set()
    server_process.join(timeout=10)
    print(
        f"end_to_end batch_size={args.batch_size} in_flight={args.in_flight} "
        f"snapshots={loaded} approx_cells={cells:,} seconds={elapsed:.2f} "
        f"snapshots_per_s={loaded / elapsed:.1f} cells_per_s={cells / elapsed:,.0f}"
    )
    # Loads run on worker threads while the main thread fetches and normalizes, so stage times
    # overlap: each is the time that stage was busy, as a share of the wall-clock run.
    for stage, seconds in sorted(SPENT.items(), key=lambda kv: -kv[1]):
        print(
            f"end_to_end stage={stage!r} busy_seconds={seconds:.2f} busy_share_of_wall={seconds / elapsed:.0%}"
        )


if __name__ == "__main__":
    main()
