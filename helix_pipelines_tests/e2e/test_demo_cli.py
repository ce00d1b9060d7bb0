"""The README's demo: `helix demo` on embedded defaults (sandbox, DuckDB, Parquet)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import duckdb
import psycopg
import pytest

from helix_pipelines.cli import main
from helix_pipelines.contracts.vocabulary import MODELS, RANGES
from helix_pipelines.defs import heatmap_ingest
from helix_pipelines.services.ingest import IngestReport

pytestmark = pytest.mark.e2e


def test_demo_ingests_all_24_partitions_for_five_symbols_from_the_sandbox(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COINGLASS_API_KEY", raising=False)
    monkeypatch.delenv("COINGLASS_REPLAY_DIR", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.chdir(tmp_path)  # the default instance is ./.dagster_home, as `make dev` serves

    assert main(["--data-dir", str(tmp_path), "demo"]) == 0

    out = capsys.readouterr().out
    assert "source = SANDBOX" in out
    home = tmp_path / ".dagster_home"
    assert f"dagster instance: {home} (SqliteRunStorage)" in out
    assert (home / "dagster.yaml").read_text().count("default_limit: 1") == 1
    assert "universe: 5 symbols (BTC, ETH, SOL, XRP, DOGE)" in out
    assert "24 model x range partitions, 120 new snapshots" in out
    assert "SANDBOX data" in out
    with duckdb.connect(str(tmp_path / "helix.duckdb"), read_only=True) as con:
        ledger = con.execute(
            'SELECT count(*), count(DISTINCT (model, "range")), count(DISTINCT symbol) '
            "FROM heatmap_snapshots WHERE status = 'loaded'"
        ).fetchone()
        levels, cells = con.execute(
            "SELECT count(*), sum(cells) FROM liquidation_price_levels"
        ).fetchone()
        kept = con.execute("SELECT count(*) FROM liquidation_data_raw").fetchone()
        archived = con.execute(
            f"SELECT count(*) FROM read_parquet('{tmp_path}/archive/**/*.parquet')"
        ).fetchone()
    assert ledger == (120, 24, 5)
    assert cells > 1_000_000  # the profiles account for every cell ...
    assert levels < cells / 50  # ... in a small fraction of the rows
    assert kept == (0,)  # by default no series keeps its cells in the warehouse
    assert archived == (cells,)  # the archive has every grid, all three models
    assert len(list((tmp_path / "archive").rglob("*.parquet"))) == 24 * 5

    assert main(["--data-dir", str(tmp_path), "status"]) == 0
    status = capsys.readouterr().out
    assert "universe: 5 symbols" in status
    assert status.count("\n") >= 24 + 3

    # What `make dev` then shows: the demo's runs, every partition, its preview and checks.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        jobs = [r.job_name for r in instance.get_runs()]
        assert sorted(jobs) == sorted(
            ["symbol_universe_job", "heatmap_keys_job", "analytics_job", "executor_job"]
        )
        for key in ("heatmap_payloads", "normalized_heatmaps", "heatmap_archive"):
            assert len(instance.get_materialized_partitions(dg.AssetKey(key))) == 24
        loaded = instance.get_materialized_partitions(dg.AssetKey("liquidation_heatmaps"))
        assert loaded == {f"{m}|{r}" for m in MODELS for r in RANGES}
        preview = (
            instance.get_latest_materialization_event(dg.AssetKey("normalized_heatmaps"))
            .asset_materialization.metadata["preview"]
            .value
        )
        assert "data:image/png;base64," in preview
        for name in ("trade_signals", "liquidation_radar", "executor_decisions"):
            assert instance.get_latest_materialization_event(dg.AssetKey(name)) is not None


def test_unknown_range_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="unknown ranges: 2d"):
        main(["--data-dir", str(tmp_path), "demo", "--ranges", "2d"])


def test_demo_uses_postgresql_when_helix_pg_dsn_is_set(
    tmp_path: Path, pg_dsn: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COINGLASS_API_KEY", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("HELIX_PG_DSN", pg_dsn)

    assert main(["--data-dir", str(tmp_path), "demo", "--models", "3", "--ranges", "12h,1y"]) == 0

    out = capsys.readouterr().out
    assert "warehouse: postgres: " in out
    assert "2 model x range partitions, 10 new snapshots" in out
    assert not (tmp_path / "helix.duckdb").exists()
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM heatmap_snapshots").fetchone() == (10,)
        assert conn.execute(
            'SELECT count(DISTINCT "range") FROM liquidation_price_levels'
        ).fetchone() == (2,)
    assert len(list((tmp_path / "archive").rglob("*.parquet"))) == 10


def sandbox_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., IngestReport]:
    """A demo on the sandbox and DuckDB with its own instance; the real ingest, to wrap."""
    monkeypatch.delenv("COINGLASS_API_KEY", raising=False)
    monkeypatch.delenv("COINGLASS_REPLAY_DIR", raising=False)
    monkeypatch.setenv("HELIX_PG_DSN", "")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    return heatmap_ingest.run_ingest


def test_a_failing_partition_is_reported_and_the_others_still_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_ingest = sandbox_demo(tmp_path, monkeypatch)

    def ingest(*args: object, **kwargs: object) -> object:
        if args[6] == "3d":
            raise OSError("No space left on device")
        return real_ingest(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(heatmap_ingest, "run_ingest", ingest)
    code = main(["--data-dir", str(tmp_path), "demo", "--models", "1", "--ranges", "12h,3d,7d"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAILED: 1|3d: OSError: No space left on device" in out
    assert "3 model x range partitions, 10 new snapshots" in out
    assert "analytics: skipped" in out


def test_a_failed_blocking_check_is_marked_and_the_demo_exits_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_ingest = sandbox_demo(tmp_path, monkeypatch)

    def ingest(*args: object, **kwargs: object) -> object:
        report = real_ingest(*args, **kwargs)  # type: ignore[arg-type]
        if args[6] == "24h":
            del report.loaded_snapshot_ids[1:]  # as if only one coin in five had loaded
        return report

    monkeypatch.setattr(heatmap_ingest, "run_ingest", ingest)
    code = main(["--data-dir", str(tmp_path), "demo", "--models", "2", "--ranges", "12h,24h"])
    out = capsys.readouterr().out
    rows = {
        line.split()[1]: line.split()
        for line in out.splitlines()
        if line.startswith(" " * 10 + "2")
    }
    assert code == 1
    # ... coverage, seconds, checks
    assert (rows["12h"][-3], rows["12h"][-1]) == ("100%", "ok")
    assert (rows["24h"][-3], rows["24h"][-1]) == ("20%", "FAILED")
    assert "FAILED: 2|24h: blocking check heatmaps_universe_coverage did not pass" in out
    assert "analytics: skipped" in out


def test_an_operator_error_is_one_line_with_exit_code_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HELIX_RISK_ACCOUNT_EQUITY_USD", "lots")
    assert main(["--data-dir", str(tmp_path), "status"]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "helix: ValueError: HELIX_RISK_ACCOUNT_EQUITY_USD must be a number, got 'lots' "
        "(-v shows the traceback)"
    ]
    with pytest.raises(ValueError, match="must be a number"):
        main(["--data-dir", str(tmp_path), "-v", "status"])
