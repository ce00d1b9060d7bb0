"""One settings object from the environment: every variable read, nothing secret ever shown,
one knob per concept, and the live gate at the moment an executor is built."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from helix_pipelines.defs.resources import default_resources
from helix_pipelines.execution.settings import LIVE_CONFIRMATION, RefuseToStart
from helix_pipelines.services.settings import Settings

SECRETS = {
    "COINGLASS_API_KEY": "cg-secret-key-0123456789",
    "HELIX_PG_DSN": "postgresql://helix:pg-secret-pw@db.example:5432/quantprod",
    "HELIX_REDIS_URL": "redis://default:redis-secret-pw@cache.example:6379/0",
    "BYBIT_API_KEY": "bybit-secret-key-01",
    "BYBIT_API_SECRET": "bybit-secret-secret-0123",
    "HELIX_EXECUTOR_LIVE_CONFIRM": LIVE_CONFIRMATION,
}
SECRET_VALUES = (
    "cg-secret-key",
    "pg-secret-pw",
    "redis-secret-pw",
    "bybit-secret",
    LIVE_CONFIRMATION,
)


def test_every_variable_is_read_once_into_one_object() -> None:
    settings = Settings.from_env(
        {
            **SECRETS,
            "COINGLASS_BASE_URL": "http://cg.example",
            "COINGLASS_REPLAY_DIR": "/replay",
            "COINGLASS_CAPTURE_DIR": "/capture",
            "HELIX_DATA_DIR": "/srv/helix",
            "HELIX_EXECUTOR_MODE": " TESTNET ",
        }
    )
    assert settings.source.api_key == SECRETS["COINGLASS_API_KEY"]
    assert settings.source.kind == "coinglass"  # a key wins over a replay directory
    assert (settings.source.base_url, settings.source.replay_dir) == (
        "http://cg.example",
        Path("/replay"),
    )
    assert settings.source.capture_dir == Path("/capture")
    assert settings.storage.pg_dsn == SECRETS["HELIX_PG_DSN"]
    assert settings.storage.archive == "/srv/helix/archive"
    assert settings.redis_url == SECRETS["HELIX_REDIS_URL"]
    assert settings.executor.mode == "testnet"
    assert settings.executor.gated().mode == "testnet"


def test_storage_knobs_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "HELIX_ARCHIVE_ROOT": "s3://lake/helix",
            "HELIX_WAREHOUSE_CELLS": "3/12h, 3/24h",
            "HELIX_CELLS_RETENTION_DAYS": "7",
            "HELIX_DUCKDB_MEMORY_LIMIT": "512MB",
        }
    )
    storage = settings.storage
    assert storage.archive == "s3://lake/helix"
    assert storage.cells.series == {(3, "12h"), (3, "24h")}
    assert storage.cells.retention_days == 7
    assert storage.duckdb_memory_limit == "512MB"
    defaults = Settings.from_env({}).storage
    assert (defaults.cells.describe(), defaults.cells.retention_days) == ("none", 30)
    assert (
        Settings.from_env({"HELIX_CELLS_RETENTION_DAYS": "none"}).storage.cells.retention_days
        is None
    )
    with pytest.raises(ValueError, match="HELIX_CELLS_RETENTION_DAYS must be"):
        Settings.from_env({"HELIX_CELLS_RETENTION_DAYS": "a week"})
    with pytest.raises(ValueError, match="names no range"):
        Settings.from_env({"HELIX_WAREHOUSE_CELLS": "3/2d"})
    with pytest.raises(ValueError, match="HELIX_DUCKDB_MEMORY_LIMIT must be a size"):
        Settings.from_env({"HELIX_DUCKDB_MEMORY_LIMIT": "lots"})
    # --data-dir moves the embedded files, not an archive root set on its own.
    moved = Settings.from_env({"HELIX_ARCHIVE_ROOT": "s3://lake/helix"}).with_data_dir(Path("/x"))
    assert (moved.storage.archive, moved.storage.warehouse_path) == (
        "s3://lake/helix",
        Path("/x/helix.duckdb"),
    )
    assert Settings.from_env({}).with_data_dir(Path("/x")).storage.archive == "/x/archive"


def test_defaults_need_no_environment() -> None:
    settings = Settings.from_env({})
    assert settings.source.kind == "sandbox"
    assert settings.storage.warehouse_path == Path("data/helix.duckdb")
    assert settings.redis_url is None
    assert settings.executor.gated().mode == "paper"


def test_no_repr_shows_a_secret() -> None:
    settings = Settings.from_env({**SECRETS, "HELIX_EXECUTOR_MODE": "live"})
    shown = repr(settings)
    for secret in SECRET_VALUES:
        assert secret not in shown, secret
    assert "pg_dsn=set" in shown
    assert repr(settings.executor.gated()) == "ExecutorSettings(mode='live', api_key=set)"


def test_max_open_positions_is_one_knob_for_signals_and_the_guard() -> None:
    settings = Settings.from_env({})
    assert settings.guard.max_open_positions == settings.risk.max_open_positions == 5


@pytest.mark.parametrize(
    ("environ", "refusal"),
    [
        ({"HELIX_EXECUTOR_MODE": "live"}, "live trading refused"),
        (
            {"HELIX_EXECUTOR_MODE": "live", "HELIX_EXECUTOR_LIVE_CONFIRM": "yes"},
            "live trading refused",
        ),
        (
            {"HELIX_EXECUTOR_MODE": "testnet"},
            "mode testnet needs BYBIT_API_KEY and BYBIT_API_SECRET",
        ),
        (
            {"HELIX_EXECUTOR_MODE": "real"},
            "HELIX_EXECUTOR_MODE must be one of paper, testnet, demo, live",
        ),
    ],
)
def test_the_gate_refuses_when_an_executor_is_built_not_when_settings_are_read(
    environ: dict[str, str], refusal: str
) -> None:
    settings = Settings.from_env(environ)  # reading never refuses: `helix status` must work
    with pytest.raises(RefuseToStart, match=refusal):
        settings.executor.gated()


def test_dagster_resources_bind_secrets_as_env_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    resources = default_resources(Settings.from_env())
    bound = {
        "COINGLASS_API_KEY": resources["coinglass"].api_key,
        "HELIX_PG_DSN": resources["warehouse"].pg_dsn,
        "HELIX_REDIS_URL": resources["signal_bus"].redis_url,
        "BYBIT_API_KEY": resources["executor"].api_key,
        "BYBIT_API_SECRET": resources["executor"].api_secret,
        "HELIX_EXECUTOR_LIVE_CONFIRM": resources["executor"].live_confirm,
    }
    assert bound == {name: dg.EnvVar(name) for name in SECRETS}
    # Unset secrets stay unset rather than binding a variable that does not exist.
    for name in SECRETS:
        monkeypatch.delenv(name)
    assert default_resources(Settings.from_env())["coinglass"].api_key is None


def test_limits_are_configured_from_the_environment_for_every_entry_point() -> None:
    settings = Settings.from_env(
        {
            "HELIX_RISK_ACCOUNT_EQUITY_USD": "25000",
            "HELIX_RISK_MAX_OPEN_POSITIONS": "3",
            "HELIX_GUARD_MAX_DAILY_LOSS_USD": "150",
            "HELIX_EXECUTOR_DEFAULT_LEVERAGE": "2",
        }
    )
    assert settings.risk.account_equity_usd == 25_000.0
    assert (settings.guard.max_daily_loss_usd, settings.guard.max_open_positions) == (150.0, 3)
    assert settings.executor.default_leverage == 2
    # The Dagster resources start from the same values (the launchpad may change them per run).
    resources = default_resources(settings)
    assert resources["risk"].limits().account_equity_usd == 25_000.0
    assert resources["executor"].config(settings.risk).guard.max_daily_loss_usd == 150.0


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"HELIX_RISK_MAX_LEVERAGE": "2.5"},
            "HELIX_RISK_MAX_LEVERAGE must be an integer, got '2.5'",
        ),
        (
            {"HELIX_GUARD_MAX_DAILY_LOSS_USD": "lots"},
            "HELIX_GUARD_MAX_DAILY_LOSS_USD must be a number",
        ),
        (
            {"HELIX_GUARD_MAX_DAILY_LOSS_USD": "-1"},
            "HELIX_GUARD_.*max_daily_loss_usd must be positive",
        ),
        (
            {"HELIX_EXECUTOR_DEFAULT_LEVERAGE": "0"},
            "HELIX_EXECUTOR_DEFAULT_LEVERAGE must be an integer >= 1",
        ),
    ],
)
def test_a_bad_limit_names_its_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env(environ)
