"""Typed resources: the CoinGlass source, the warehouse, the archive and the universe selection.

Environment variables are resolved when a run starts (never at import time), so one code
location serves every environment. Secrets can also be bound explicitly with `dg.EnvVar`.

  COINGLASS_API_KEY      set: real CoinGlass client; unset: sandbox (or replay)
  COINGLASS_BASE_URL     default https://open-api-v4.coinglass.com
  COINGLASS_REPLAY_DIR   replay recorded payloads (one JSON file per request) when no key is set
  COINGLASS_CAPTURE_DIR  record every real response there, for later replay
  HELIX_DATA_DIR         root of the embedded warehouse, archive and quarantine (default ./data)
  HELIX_PG_DSN           PostgreSQL/TimescaleDB warehouse; unset: the embedded DuckDB file
  HELIX_REDIS_URL        Redis for the trade-signal stream; unset: signals are stored only
  HELIX_EXECUTOR_MODE    paper (default), testnet, demo or live (live also needs
                         HELIX_EXECUTOR_LIVE_CONFIRM); BYBIT_API_KEY / BYBIT_API_SECRET for Bybit
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field, PrivateAttr

from helix_pipelines.analytics.risk import RiskLimits
from helix_pipelines.bus.signals import SignalPublisher
from helix_pipelines.coinglass.endpoints import DEFAULT_BASE_URL
from helix_pipelines.coinglass.settings import SourceSettings, open_source
from helix_pipelines.coinglass.source import HeatmapSource
from helix_pipelines.execution.executor import Executor
from helix_pipelines.execution.factory import build_executor
from helix_pipelines.execution.guard import GuardLimits
from helix_pipelines.execution.settings import resolve_settings
from helix_pipelines.heatmaps.archive import ParquetArchive
from helix_pipelines.heatmaps.quarantine import QuarantineStore
from helix_pipelines.universe import DEFAULT_SYMBOLS, UniverseSelection
from helix_pipelines.warehouse.base import Warehouse
from helix_pipelines.warehouse.duckdb_warehouse import DuckDBWarehouse
from helix_pipelines.warehouse.postgres_warehouse import PostgresWarehouse, TimescalePolicies


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def data_dir(explicit: str | None) -> Path:
    return Path(explicit or _env("HELIX_DATA_DIR") or "data")


class CoinGlassResource(dg.ConfigurableResource):
    """Where heatmaps come from: CoinGlass when a key is set, else replay or the sandbox."""

    api_key: str | None = Field(default=None, description="Defaults to $COINGLASS_API_KEY.")
    base_url: str | None = Field(default=None, description="Defaults to $COINGLASS_BASE_URL.")
    replay_dir: str | None = Field(default=None, description="Defaults to $COINGLASS_REPLAY_DIR.")
    capture_dir: str | None = Field(default=None, description="Defaults to $COINGLASS_CAPTURE_DIR.")
    rate_limit_per_minute: int = Field(
        default=30,
        description="Budget used until the first response's API-KEY-MAX-LIMIT header says otherwise.",
    )
    max_concurrency: int = Field(default=16, description="Requests in flight at once.")
    timeout_seconds: float = 30.0
    max_attempts: int = Field(default=5, description="Sends per request, retries included.")
    unavailable_retries: int = Field(
        default=1,
        description="Retries of a 'no data for this range' answer (code 500) before the key is "
        "recorded as unavailable.",
    )

    def settings(self) -> SourceSettings:
        replay = self.replay_dir or _env("COINGLASS_REPLAY_DIR")
        capture = self.capture_dir or _env("COINGLASS_CAPTURE_DIR")
        return SourceSettings(
            api_key=self.api_key or _env("COINGLASS_API_KEY"),
            base_url=self.base_url or _env("COINGLASS_BASE_URL") or DEFAULT_BASE_URL,
            replay_dir=Path(replay) if replay else None,
            capture_dir=Path(capture) if capture else None,
            rate_limit_per_minute=self.rate_limit_per_minute,
            max_concurrency=self.max_concurrency,
            timeout_seconds=self.timeout_seconds,
            max_attempts=self.max_attempts,
            unavailable_retries=self.unavailable_retries,
        )

    @asynccontextmanager
    async def open(self) -> AsyncIterator[HeatmapSource]:
        source = open_source(self.settings())
        try:
            yield source
        finally:
            await source.aclose()


class WarehouseResource(dg.ConfigurableResource):
    """PostgreSQL/TimescaleDB when a DSN is configured, else the embedded DuckDB file.

    The DSN is a secret (it may hold a password): bind it with `dg.EnvVar("HELIX_PG_DSN")` or
    let it default to $HELIX_PG_DSN at run time; only its password-free form is ever shown.
    """

    pg_dsn: str | None = Field(default=None, description="Defaults to $HELIX_PG_DSN.")
    duckdb_path: str | None = Field(
        default=None, description="Defaults to $HELIX_DATA_DIR/helix.duckdb."
    )
    max_connections: int = Field(default=4, description="PostgreSQL connection pool size.")
    cells_retention_days: int | None = Field(
        default=400, description="TimescaleDB: drop cells older than this (None keeps them)."
    )
    candles_retention_days: int | None = Field(default=None, description="TimescaleDB: as above.")
    compress_after_days: int | None = Field(
        default=7, description="TimescaleDB: compress chunks older."
    )

    _warehouse: Warehouse | None = PrivateAttr(default=None)

    def dsn(self) -> str | None:
        return self.pg_dsn or _env("HELIX_PG_DSN")

    def get(self) -> Warehouse:
        """The configured warehouse, schema applied; created once per resource instance."""
        if self._warehouse is None:
            self._warehouse = self._open()
            self._warehouse.ensure_schema()
        return self._warehouse

    def _open(self) -> Warehouse:
        dsn = self.dsn()
        if dsn:
            policies = TimescalePolicies(
                cells_retention_days=self.cells_retention_days,
                candles_retention_days=self.candles_retention_days,
                compress_after_days=self.compress_after_days,
            )
            return PostgresWarehouse(dsn, max_connections=self.max_connections, policies=policies)
        path = Path(self.duckdb_path) if self.duckdb_path else data_dir(None) / "helix.duckdb"
        return DuckDBWarehouse(path)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._warehouse is not None:
            self._warehouse.close()
            self._warehouse = None


class ArchiveResource(dg.ConfigurableResource):
    """The Parquet archive of Model 3 snapshots and the quarantine folder for rejected payloads."""

    archive_root: str | None = Field(
        default=None, description="Defaults to $HELIX_DATA_DIR/archive."
    )
    quarantine_root: str | None = Field(
        default=None, description="Defaults to $HELIX_DATA_DIR/quarantine."
    )

    def archive(self) -> ParquetArchive:
        return ParquetArchive(
            Path(self.archive_root) if self.archive_root else data_dir(None) / "archive"
        )

    def quarantine(self) -> QuarantineStore:
        root = self.quarantine_root
        return QuarantineStore(Path(root) if root else data_dir(None) / "quarantine")


class UniverseResource(dg.ConfigurableResource):
    """Which symbols the pipeline follows (the `symbol_universe` asset and its sensor read this)."""

    mode: Literal["list", "top", "all"] = "list"
    symbols: list[str] = Field(default_factory=lambda: list(DEFAULT_SYMBOLS))
    top_n: int = 20
    scope: Literal["coin", "pair"] = "coin"
    exchange: str = "Binance"
    quote: str = "USDT"

    def selection(self) -> UniverseSelection:
        return UniverseSelection(
            mode=self.mode,
            symbols=tuple(self.symbols),
            top_n=self.top_n,
            scope=self.scope,
            exchange=self.exchange,
            quote=self.quote,
        )


class RiskLimitsResource(dg.ConfigurableResource):
    """Account size and the caps every trade signal must respect (see analytics.risk.RiskLimits)."""

    account_equity_usd: float = 10_000.0
    risk_fraction: float = Field(default=0.005, description="Equity risked per trade at the stop.")
    kelly_fraction: float = Field(default=0.25, description="Multiplier of the Kelly bound.")
    max_leverage: int = 10
    maintenance_margin_rate: float = 0.005
    liquidation_buffer_atr: float = Field(
        default=1.0,
        description="The position's liquidation price lies this many ATR beyond the stop.",
    )
    min_reward_to_risk: float = 1.5
    max_symbol_exposure_fraction: float = Field(
        default=1.0, description="Notional per symbol / equity."
    )
    max_total_exposure_fraction: float = Field(default=3.0, description="Total notional / equity.")
    max_open_signals: int = 10

    def limits(self) -> RiskLimits:
        return RiskLimits(**{name: getattr(self, name) for name in RiskLimits.__dataclass_fields__})


class SignalBusResource(dg.ConfigurableResource):
    """Redis stream and pub/sub channel for trade signals; off when no URL is configured."""

    redis_url: str | None = Field(default=None, description="Defaults to $HELIX_REDIS_URL.")
    key_prefix: str = Field(default="", description="Prepended to the stream and channel names.")

    def url(self) -> str | None:
        return self.redis_url or _env("HELIX_REDIS_URL")

    def publisher(self) -> SignalPublisher | None:
        url = self.url()
        return SignalPublisher(url, key_prefix=self.key_prefix) if url else None


class ExecutorResource(dg.ConfigurableResource):
    """Mode (paper by default; testnet, demo, live) and the guard's limits.

    Mode and keys default to $HELIX_EXECUTOR_MODE, $HELIX_EXECUTOR_LIVE_CONFIRM,
    $BYBIT_API_KEY and $BYBIT_API_SECRET, read when a run starts.
    """

    mode: str | None = None
    max_open_positions: int = 5
    max_order_notional_usd: float = 10_000.0
    max_symbol_notional_usd: float = 10_000.0
    max_daily_loss_usd: float = 300.0
    max_signal_age_seconds: float = 900.0
    max_price_deviation_pct: float = 1.0
    default_leverage: int = 1
    paper_equity_usd: float = Field(
        default=10_000.0, description="Starting equity of the paper account."
    )

    def limits(self) -> GuardLimits:
        return GuardLimits(
            **{name: getattr(self, name) for name in GuardLimits.__dataclass_fields__}
        )

    def build(self, warehouse: Warehouse) -> Executor:
        environ = dict(os.environ)
        if self.mode:
            environ["HELIX_EXECUTOR_MODE"] = self.mode
        settings = resolve_settings(environ)
        return build_executor(
            settings, warehouse, self.limits(), paper_equity_usd=self.paper_equity_usd
        )


def default_resources() -> dict[str, dg.ConfigurableResource]:
    """The resources every entry point uses unless it overrides one (tests, the CLI)."""
    return {
        "coinglass": CoinGlassResource(),
        "warehouse": WarehouseResource(),
        "archive": ArchiveResource(),
        "universe": UniverseResource(),
        "risk": RiskLimitsResource(),
        "signal_bus": SignalBusResource(),
        "executor": ExecutorResource(),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=default_resources())
