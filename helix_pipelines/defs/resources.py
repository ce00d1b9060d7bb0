"""The resources every Dagster entry point uses, built from the one `Settings` object.

`Settings.from_env()` is read when the code location loads (never at import); secrets are bound
as `dg.EnvVar`, so Dagster resolves them when a run starts and the UI shows the variable's name,
never its value. Each resource's fields are its settings dataclass's (`defs.config`), editable in
the launchpad; each hands the layers below the domain object (`domain()`), never itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import dagster as dg
from pydantic import Field, PrivateAttr

from helix_pipelines.analytics.risk import RiskLimits
from helix_pipelines.bus.publisher import SignalPublisher
from helix_pipelines.bus.radar import RadarPublisher
from helix_pipelines.coinglass.settings import SourceSettings, open_source
from helix_pipelines.coinglass.source import HeatmapSource
from helix_pipelines.defs.config import resource_of
from helix_pipelines.execution.executor import Executor
from helix_pipelines.execution.guard import GuardLimits
from helix_pipelines.heatmaps.archive import ParquetArchive
from helix_pipelines.heatmaps.quarantine import QuarantineStore
from helix_pipelines.services.executor import build_executor
from helix_pipelines.services.settings import ExecutorConfig, Settings
from helix_pipelines.services.universe import UniverseSelection
from helix_pipelines.warehouse import Warehouse, open_warehouse
from helix_pipelines.warehouse.cells_policy import CellsPolicy
from helix_pipelines.warehouse.duckdb_db import DEFAULT_MEMORY_LIMIT
from helix_pipelines.warehouse.postgres_db import TimescalePolicies


class CoinGlassResource(resource_of(SourceSettings)):  # type: ignore[misc]
    """Where heatmaps come from: CoinGlass when a key is set, else replay or the sandbox; with
    `redis_url` (bound to $HELIX_REDIS_URL), the key's request budget is shared by every run and
    code location on that Redis."""

    def settings(self) -> SourceSettings:
        return self.domain()

    @asynccontextmanager
    async def open(self) -> AsyncIterator[HeatmapSource]:
        source = open_source(self.settings())
        try:
            yield source
        finally:
            await source.aclose()


class WarehouseResource(dg.ConfigurableResource):
    """PostgreSQL/TimescaleDB when a DSN is configured, else the embedded DuckDB file. The DSN
    is a secret (it may hold a password): only its password-free form is ever shown."""

    pg_dsn: str | None = Field(default=None, description="Bound to $HELIX_PG_DSN when it is set.")
    duckdb_path: str = "data/helix.duckdb"
    duckdb_memory_limit: str = Field(
        default=DEFAULT_MEMORY_LIMIT, description="DuckDB's memory cap; it spills beyond."
    )
    max_connections: int = Field(default=4, description="PostgreSQL connection pool size.")
    warehouse_cells: str = Field(
        default="none",
        description="Series that also keep their cells in the warehouse (every grid is in the "
        "archive): none, all, or model/range items like 3/12h,3/24h or 3/*.",
    )
    cells_retention_days: int | None = Field(
        default=30, description="Drop kept cells older than this (None keeps them)."
    )
    levels_retention_days: int | None = Field(
        default=None, description="TimescaleDB: drop price-level profiles older than this."
    )
    candles_retention_days: int | None = Field(default=None, description="TimescaleDB: as above.")
    compress_after_days: int | None = Field(default=7, description="TimescaleDB: compress older.")

    _warehouse: Warehouse | None = PrivateAttr(default=None)

    def get(self) -> Warehouse:
        """The configured warehouse, migrated; opened once per resource instance."""
        if self._warehouse is None:
            policies = TimescalePolicies(
                self.levels_retention_days, self.candles_retention_days, self.compress_after_days
            )
            self._warehouse = open_warehouse(
                pg_dsn=self.pg_dsn,
                duckdb_path=Path(self.duckdb_path),
                max_connections=self.max_connections,
                policies=policies,
                cells=CellsPolicy.parse(self.warehouse_cells, self.cells_retention_days),
                duckdb_memory_limit=self.duckdb_memory_limit,
            )
        return self._warehouse

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._warehouse is not None:
            self._warehouse.close()
            self._warehouse = None


class ArchiveResource(dg.ConfigurableResource):
    """The Parquet archive of every grid and the quarantine folder of rejected payloads."""

    archive_root: str = Field(
        default="data/archive", description="A folder or a URI (s3://bucket/prefix, gs://...)."
    )
    quarantine_root: str = "data/quarantine"

    def archive(self) -> ParquetArchive:
        return ParquetArchive(self.archive_root)

    def quarantine(self) -> QuarantineStore:
        return QuarantineStore(Path(self.quarantine_root))


class UniverseResource(resource_of(UniverseSelection)):  # type: ignore[misc]
    """Which symbols the pipeline follows (the `symbol_universe` asset and its sensor read this)."""

    def selection(self) -> UniverseSelection:
        return self.domain()


class RiskResource(resource_of(RiskLimits)):  # type: ignore[misc]
    """The account's equity and the caps every trade signal must respect (analytics.risk)."""

    def limits(self) -> RiskLimits:
        return self.domain()


class SignalBusResource(dg.ConfigurableResource):
    """Redis streams and pub/sub channels for trade signals and the radar; off when no URL is
    configured."""

    redis_url: str | None = Field(default=None, description="Bound to $HELIX_REDIS_URL when set.")
    key_prefix: str = Field(default="", description="Prepended to the stream and channel names.")

    def publisher(self) -> SignalPublisher | None:
        return (
            SignalPublisher(self.redis_url, key_prefix=self.key_prefix) if self.redis_url else None
        )

    def radar_publisher(self) -> RadarPublisher | None:
        return (
            RadarPublisher(self.redis_url, key_prefix=self.key_prefix) if self.redis_url else None
        )


class ExecutorResource(resource_of(GuardLimits, exclude=frozenset({"max_open_positions"}))):  # type: ignore[misc]
    """Mode (paper by default; testnet, demo, live), the Bybit keys, and the guard's limits
    (`max_open_positions` is the risk resource's: one knob for both)."""

    mode: str = "paper"
    live_confirm: str = Field(default="", description="Bound to $HELIX_EXECUTOR_LIVE_CONFIRM.")
    api_key: str | None = Field(default=None, description="Bound to $BYBIT_API_KEY when set.")
    api_secret: str | None = Field(default=None, description="Bound to $BYBIT_API_SECRET when set.")
    default_leverage: int = 1

    def config(self, risk: RiskLimits) -> Settings:
        guard = self.domain(max_open_positions=risk.max_open_positions)
        executor = ExecutorConfig(
            self.mode,
            self.live_confirm,
            self.api_key,
            self.api_secret,
            guard,
            self.default_leverage,
        )
        return Settings(risk=risk, executor=executor)

    def build(self, warehouse: Warehouse, risk: RiskLimits) -> Executor:
        return build_executor(self.config(risk), warehouse)


def _secret(name: str, environ_value: str | None) -> dg.EnvVar | None:
    """The variable, bound for Dagster to resolve at run time, when it is set at all."""
    return dg.EnvVar(name) if environ_value else None


def default_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """The resources of every entry point unless it overrides one (tests, the CLI)."""
    storage = settings.storage
    return {
        "coinglass": CoinGlassResource.of(
            settings.source,
            api_key=_secret("COINGLASS_API_KEY", settings.source.api_key),
            redis_url=_secret("HELIX_REDIS_URL", settings.source.redis_url),
        ),
        "warehouse": WarehouseResource(
            pg_dsn=_secret("HELIX_PG_DSN", storage.pg_dsn),
            duckdb_path=str(storage.warehouse_path),
            duckdb_memory_limit=storage.duckdb_memory_limit,
            max_connections=storage.max_connections,
            warehouse_cells=storage.cells.describe(),
            cells_retention_days=storage.cells.retention_days,
            levels_retention_days=storage.policies.levels_retention_days,
            candles_retention_days=storage.policies.candles_retention_days,
            compress_after_days=storage.policies.compress_after_days,
        ),
        "archive": ArchiveResource(
            archive_root=storage.archive, quarantine_root=str(storage.quarantine)
        ),
        "universe": UniverseResource.of(settings.universe),
        "risk": RiskResource.of(settings.risk),
        "signal_bus": SignalBusResource(
            redis_url=_secret("HELIX_REDIS_URL", settings.redis_url), key_prefix=settings.bus_prefix
        ),
        "executor": ExecutorResource.of(
            settings.executor.guard,
            mode=settings.executor.mode,
            live_confirm=_secret("HELIX_EXECUTOR_LIVE_CONFIRM", settings.executor.live_confirm)
            or "",
            api_key=_secret("BYBIT_API_KEY", settings.executor.api_key),
            api_secret=_secret("BYBIT_API_SECRET", settings.executor.api_secret),
            default_leverage=settings.executor.default_leverage,
        ),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=default_resources(Settings.from_env()))
