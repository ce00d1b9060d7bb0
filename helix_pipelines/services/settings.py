"""One settings object, read from the environment once, that every entry point builds from:
the CLI (`Settings.from_env()`), and Dagster's resources (bound in `defs/resources.py`, secrets as
`dg.EnvVar`).

  COINGLASS_API_KEY      set: the real CoinGlass client; unset: replay or the sandbox
  COINGLASS_BASE_URL     default https://open-api-v4.coinglass.com
  COINGLASS_REPLAY_DIR   replay recorded payloads (one JSON file per request) when no key is set
  COINGLASS_CAPTURE_DIR  record every real response there, for later replay
  HELIX_DATA_DIR         root of the embedded warehouse, archive and quarantine (default ./data)
  HELIX_PG_DSN           PostgreSQL/TimescaleDB warehouse; unset: the embedded DuckDB file
  HELIX_ARCHIVE_ROOT     the Parquet archive of every grid: a folder or a URI (s3://bucket/x)
  HELIX_WAREHOUSE_CELLS  series that also keep their cells in the warehouse: none (default),
                         all, or model/range items such as 3/12h,3/24h or 3/*
  HELIX_CELLS_RETENTION_DAYS  how long the warehouse keeps those cells (default 30)
  HELIX_DUCKDB_MEMORY_LIMIT   the embedded warehouse's memory cap (default 1GB)
  HELIX_UNIVERSE_MODE    bybit (default with a CoinGlass key: every Bybit USDT perpetual
                         CoinGlass covers), list (default without), top or all
  HELIX_UNIVERSE_SYMBOLS the coins of list mode, comma-separated (default BTC,ETH,SOL,XRP,DOGE)
  HELIX_BYBIT_MARKET_URL Bybit's public REST endpoint for the bybit universe (default mainnet)
  HELIX_REDIS_URL        Redis for the trade-signal stream and for the CoinGlass request budget
                         every process with the same key shares; unset: signals are stored
                         only, and each process paces itself against the key's limit alone
  HELIX_EXECUTOR_MODE    paper (default), testnet, demo or live (live also needs
                         HELIX_EXECUTOR_LIVE_CONFIRM); BYBIT_API_KEY / BYBIT_API_SECRET for Bybit
  HELIX_RISK_<FIELD>     any number of RiskLimits, e.g. HELIX_RISK_ACCOUNT_EQUITY_USD
  HELIX_GUARD_<FIELD>    any number of GuardLimits, e.g. HELIX_GUARD_MAX_DAILY_LOSS_USD
  HELIX_EXECUTOR_DEFAULT_LEVERAGE  leverage set per symbol at start-up (default 1)

One concept, one knob: the account's equity sizes signals and is the paper account's starting
equity; `max_open_positions` caps both the signals a refresh keeps and the positions the
executor holds.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TypeVar

from helix_pipelines.analytics.risk import RiskLimits
from helix_pipelines.coinglass.endpoints import DEFAULT_BASE_URL
from helix_pipelines.coinglass.settings import SourceSettings
from helix_pipelines.execution.bybit_listing import MAINNET
from helix_pipelines.execution.guard import GuardLimits
from helix_pipelines.execution.settings import ExecutorSettings, gate
from helix_pipelines.services.universe import DEFAULT_SYMBOLS, MODES, UniverseSelection
from helix_pipelines.warehouse import Warehouse, open_warehouse
from helix_pipelines.warehouse.cells_policy import CellsPolicy
from helix_pipelines.warehouse.duckdb_db import DEFAULT_MEMORY_LIMIT
from helix_pipelines.warehouse.postgres_db import TimescalePolicies

T = TypeVar("T")


@dataclass(frozen=True)
class StorageSettings:
    """Where data lives: PostgreSQL when `pg_dsn` is set, else DuckDB under `data_dir`; every
    grid in the archive (a folder under `data_dir` unless `archive_root` names one or a URI)."""

    data_dir: Path = Path("data")
    pg_dsn: str | None = None
    duckdb_path: Path | None = None
    archive_root: str | None = None
    quarantine_root: Path | None = None
    max_connections: int = 4
    cells: CellsPolicy = field(default_factory=CellsPolicy)
    duckdb_memory_limit: str = DEFAULT_MEMORY_LIMIT
    policies: TimescalePolicies = field(default_factory=TimescalePolicies)

    @property
    def warehouse_path(self) -> Path:
        return self.duckdb_path or self.data_dir / "helix.duckdb"

    @property
    def archive(self) -> str:
        return self.archive_root or str(self.data_dir / "archive")

    @property
    def quarantine(self) -> Path:
        return self.quarantine_root or self.data_dir / "quarantine"

    def __repr__(self) -> str:  # never show a DSN's password
        return f"StorageSettings(data_dir={self.data_dir!s}, pg_dsn={'set' if self.pg_dsn else 'unset'})"


@dataclass(frozen=True)
class ExecutorConfig:
    """What the environment says about trading; the live gate runs when an executor is built
    (`gated`), so commands that never trade are never refused."""

    mode: str = "paper"
    live_confirm: str = ""
    api_key: str | None = None
    api_secret: str | None = None
    guard: GuardLimits = field(default_factory=GuardLimits)
    default_leverage: int = 1

    def gated(self) -> ExecutorSettings:
        return gate(self.mode, self.live_confirm, self.api_key, self.api_secret)

    def __repr__(self) -> str:  # never show the credentials
        return f"ExecutorConfig(mode={self.mode!r}, api_key={'set' if self.api_key else 'unset'})"


@dataclass(frozen=True)
class Settings:
    source: SourceSettings = field(default_factory=SourceSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    universe: UniverseSelection = field(default_factory=UniverseSelection)
    risk: RiskLimits = field(default_factory=RiskLimits)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    redis_url: str | None = field(default=None, repr=False)  # may hold a password
    bus_prefix: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Everything the environment configures, read once; the rest keeps its defaults."""
        env = {k: v.strip() for k, v in (os.environ if environ is None else environ).items()}

        def get(name: str) -> str | None:
            return env.get(name) or None

        replay, capture = get("COINGLASS_REPLAY_DIR"), get("COINGLASS_CAPTURE_DIR")
        redis_url = get("HELIX_REDIS_URL")
        return cls(
            source=SourceSettings(
                api_key=get("COINGLASS_API_KEY"),
                base_url=get("COINGLASS_BASE_URL") or DEFAULT_BASE_URL,
                replay_dir=Path(replay) if replay else None,
                capture_dir=Path(capture) if capture else None,
                redis_url=redis_url,
            ),
            storage=StorageSettings(
                data_dir=Path(get("HELIX_DATA_DIR") or "data"),
                pg_dsn=get("HELIX_PG_DSN"),
                archive_root=get("HELIX_ARCHIVE_ROOT"),
                cells=CellsPolicy.parse(
                    get("HELIX_WAREHOUSE_CELLS"),
                    _days(get("HELIX_CELLS_RETENTION_DAYS"), "HELIX_CELLS_RETENTION_DAYS", 30),
                ),
                duckdb_memory_limit=_memory(get("HELIX_DUCKDB_MEMORY_LIMIT")),
            ),
            universe=_universe(get, has_key=bool(get("COINGLASS_API_KEY"))),
            risk=tuned(RiskLimits(), "HELIX_RISK_", get),
            executor=ExecutorConfig(
                mode=(get("HELIX_EXECUTOR_MODE") or "paper").lower(),
                live_confirm=get("HELIX_EXECUTOR_LIVE_CONFIRM") or "",
                api_key=get("BYBIT_API_KEY"),
                api_secret=get("BYBIT_API_SECRET"),
                guard=tuned(GuardLimits(), "HELIX_GUARD_", get, skip={"max_open_positions"}),
                default_leverage=_leverage(get("HELIX_EXECUTOR_DEFAULT_LEVERAGE")),
            ),
            redis_url=redis_url,
        )

    @property
    def guard(self) -> GuardLimits:
        """The executor's limits, with the one `max_open_positions` the risk caps use too."""
        return replace(self.executor.guard, max_open_positions=self.risk.max_open_positions)

    def with_data_dir(self, data_dir: Path) -> Settings:
        """The same settings with the embedded warehouse, archive and quarantine under `data_dir`
        (a DSN, if any, still wins for the warehouse, and an archive root set on its own, such
        as an object store, for the archive)."""
        return replace(
            self,
            storage=replace(
                self.storage, data_dir=data_dir, duckdb_path=None, quarantine_root=None
            ),
        )


def tuned(
    defaults: T,
    prefix: str,
    get: Callable[[str], str | None],
    *,
    skip: Collection[str] = (),
) -> T:
    """`defaults` with every number the environment sets as PREFIX + FIELD_NAME (upper case),
    e.g. HELIX_RISK_ACCOUNT_EQUITY_USD or HELIX_GUARD_MAX_DAILY_LOSS_USD; the dataclass's own
    checks then run. A value that is not a number of the field's type names its variable."""
    changes: dict[str, int | float] = {}
    for f in fields(defaults):  # type: ignore[arg-type]
        name = f"{prefix}{f.name.upper()}"
        raw = get(name)
        current = getattr(defaults, f.name)
        if raw is None or f.name in skip or not isinstance(current, int | float):
            continue
        try:
            changes[f.name] = type(current)(raw)
        except ValueError:
            kind = "an integer" if isinstance(current, int) else "a number"
            raise ValueError(f"{name} must be {kind}, got {raw!r}") from None
    try:
        return replace(defaults, **changes)  # type: ignore[type-var]
    except ValueError as exc:
        raise ValueError(f"{prefix}*: {exc}") from None


def _universe(get: Callable[[str], str | None], *, has_key: bool) -> UniverseSelection:
    """The real job's universe (every Bybit perpetual) whenever real data is fetched; the five
    demo coins on the sandbox or a replay, where a 430-coin sweep would only be synthetic."""
    mode = (get("HELIX_UNIVERSE_MODE") or ("bybit" if has_key else "list")).lower()
    if mode not in MODES:
        raise ValueError(f"HELIX_UNIVERSE_MODE must be one of {', '.join(MODES)}, got {mode!r}")
    symbols = get("HELIX_UNIVERSE_SYMBOLS")
    return UniverseSelection(
        mode=mode,  # type: ignore[arg-type]
        symbols=tuple(s.strip().upper() for s in symbols.split(",") if s.strip())
        if symbols
        else DEFAULT_SYMBOLS,
        bybit_endpoint=get("HELIX_BYBIT_MARKET_URL") or MAINNET,
    )


_MEMORY = re.compile(r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)$", re.IGNORECASE)


def _memory(raw: str | None) -> str:
    """A size DuckDB accepts as its memory limit, checked here so the error names the setting."""
    if raw is None:
        return DEFAULT_MEMORY_LIMIT
    if not _MEMORY.match(raw):
        raise ValueError(f"HELIX_DUCKDB_MEMORY_LIMIT must be a size like 1GB or 512MB, got {raw!r}")
    return raw


def _days(raw: str | None, name: str, default: int | None) -> int | None:
    """A number of days; `none` (or `0`) for no limit."""
    if raw is None:
        return default
    if raw.lower() in ("none", "0"):
        return None
    if not raw.isdigit():
        raise ValueError(f"{name} must be a whole number of days or 'none', got {raw!r}")
    return int(raw)


def _leverage(raw: str | None) -> int:
    if raw is None:
        return 1
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"HELIX_EXECUTOR_DEFAULT_LEVERAGE must be an integer >= 1, got {raw!r}")
    return int(raw)


def open_configured(settings: Settings) -> Warehouse:
    """The warehouse the settings name, migrated (PostgreSQL with a DSN, else DuckDB)."""
    storage = settings.storage
    return open_warehouse(
        pg_dsn=storage.pg_dsn,
        duckdb_path=storage.warehouse_path,
        max_connections=storage.max_connections,
        policies=storage.policies,
        cells=storage.cells,
        duckdb_memory_limit=storage.duckdb_memory_limit,
    )
