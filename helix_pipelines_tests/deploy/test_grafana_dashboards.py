"""The Grafana dashboards under deploy/grafana/provisioning/dashboards/, checked without Grafana.

- Provisioning: the provider YAML points at the folder docker-compose.yml mounts the JSON at.
- Every dashboard: stable unique uid, editable, default time range and refresh, panels on the
  24-column grid without overlap, unique panel ids, the `helix-warehouse` datasource everywhere,
  a unit on every panel and the unit a column's name implies (`_usd`, `_pct`, `_seconds`, ...).
- Every panel query and every query variable is rendered as Grafana renders it (template
  variables in the browser, then the PostgreSQL datasource's global substitutions and macros,
  as the TimescaleDB-enabled datasource does; see `GrafanaQuery`), must leave no `$` behind,
  and runs on a real PostgreSQL database (no TimescaleDB) loaded the way `helix demo` loads
  one: the universe from the sandbox, heatmaps through `run_ingest`, analytics, outcomes and
  the paper executor, plus one recorded replay run with a bad payload and one planning cycle.
  The columns must be what the panel type needs, and the values are checked against what the
  load wrote (e.g. snapshots per minute sum to the loaded snapshots).

The load runs at a fixed moment `T` (the sandbox serves the heatmaps of its clock), so the
data, and the signals the analytics derive from it, are the same on every run; time windows
are substituted around `T`, never around the wall clock.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, get_args

import psycopg
import pytest
import yaml

from helix_pipelines.coinglass.planner import FetchPlan
from helix_pipelines.coinglass.settings import SourceSettings, open_source
from helix_pipelines.contracts.heatmaps import UniverseMember
from helix_pipelines.contracts.vocabulary import RANGES, ExecutorMode
from helix_pipelines.execution.paper import PaperBroker
from helix_pipelines.heatmaps.archive import ParquetArchive
from helix_pipelines.heatmaps.quarantine import QuarantineStore
from helix_pipelines.services.executor import (
    ExecutorRunReport,
    build_executor,
    paper_prices,
    run_pending,
)
from helix_pipelines.services.ingest import IngestReport, run_ingest
from helix_pipelines.services.outcomes import refresh_outcomes
from helix_pipelines.services.planner import next_plan, plan_rows
from helix_pipelines.services.settings import Settings
from helix_pipelines.services.signals import refresh_signals
from helix_pipelines.services.universe import UniverseSelection, resolve_universe
from helix_pipelines.warehouse import Warehouse, open_warehouse

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
PROVISIONING = REPO / "deploy" / "grafana" / "provisioning"
PROVIDER = PROVISIONING / "dashboards" / "helix.yaml"
DATASOURCE = PROVISIONING / "datasources" / "warehouse.yaml"
CONTAINER_PROVISIONING = "/etc/grafana/provisioning"
DATASOURCE_UID = "helix-warehouse"
PANEL_TYPES = {"timeseries", "table", "stat", "heatmap", "bargauge"}

# The load: a fixed sandbox moment (it gives this universe several trade signals), heatmaps
# fetched an hour before and at it, so every series has two snapshots like a running scanner.
T = datetime(2026, 3, 2, 5, 12, tzinfo=UTC)
FETCH_MOMENTS = (T - timedelta(hours=1), T)
REPLAY_AT = T + timedelta(minutes=1)
PLANNED_AT = T + timedelta(minutes=2)
SYMBOLS = ("BTC", "ETH", "SOL", "XRP", "DOGE", "WLD")  # WLD: 60 days old, no 90d data
KEYS = ((1, "12h"), (2, "12h"), (3, "12h"), (1, "24h"), (2, "24h"), (3, "24h"), (1, "3d"),
        (1, "90d"))  # fmt: skip
REPLAYED = (2, "3d")  # BTC's recording is truncated (quarantined), ETH has none (failed)
PLAN_LIMIT_PER_MINUTE = 1200
WINDOW = (T - timedelta(days=7), T + timedelta(days=1))
INTERVAL_MS = 60_000
NUMERIC_TYPES = {21, 23, 20, 700, 701, 1700}  # int2, int4, int8, float4, float8, numeric
TIMESTAMPTZ, TEXT = 1184, 25


# --- Grafana's query rendering --------------------------------------------------------------


@dataclass(frozen=True)
class Variable:
    """A template variable's current value, and whether it is multi-valued (which changes how
    the SQL datasources quote it)."""

    values: tuple[str, ...]
    multi: bool = False


_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::(\w+))?\}")
# The macro engine's own pattern (grafana-postgresql-datasource/macros.go): arguments stop at
# the first ')'.
_MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")
_INTERVAL = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _format(variable: Variable, fmt: str | None) -> str:
    """A variable's text: the SQL datasources' default (a single value with `'` doubled, a
    multi-value one quoted and comma-separated), or an explicit format."""
    if fmt is None:
        if variable.multi:
            return ",".join(_quote(v) for v in variable.values)
        return ",".join(v.replace("'", "''") for v in variable.values)
    if fmt in ("csv", "raw"):
        return ",".join(variable.values)
    if fmt == "sqlstring":
        return ",".join(_quote(v) for v in variable.values)
    raise AssertionError(f"variable format {fmt!r} is not one this check renders")


def _go_float(value: float) -> str:
    """A float as Go's `%v` prints it: shortest digits, exponent form from 1e+06 or below 1e-04."""
    digits = Decimal(repr(value)).normalize()
    _, mantissa, exponent = digits.as_tuple()
    assert isinstance(exponent, int)
    power = len(mantissa) + exponent - 1
    if -4 <= power < 6:
        return format(digits, "f")
    head, tail = str(mantissa[0]), "".join(map(str, mantissa[1:]))
    return f"{head}{'.' + tail if tail else ''}e{'+' if power >= 0 else '-'}{abs(power):02d}"


def _rfc3339(moment: datetime) -> str:
    """Go's time.RFC3339Nano of a UTC time (fraction without trailing zeros)."""
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    return f"{text}{'.' + fraction if fraction else ''}Z"


@dataclass(frozen=True)
class GrafanaQuery:
    """Renders panel SQL the way Grafana 11 does before PostgreSQL sees it: the browser
    replaces template variables (`$var`, `${var}`, `${var:format}`); the datasource then
    replaces `$__interval_ms`, `$__interval`, `$__unixEpochFrom()`, `$__unixEpochTo()` and
    evaluates the macros (`$__timeFilter(col)`, `$__timeGroup(col, '5m')`, ...); with
    `timescaledb: true` `$__timeGroup` becomes TimescaleDB's `time_bucket`."""

    time_from: datetime
    time_to: datetime
    interval_ms: int
    timescaledb: bool
    variables: Mapping[str, Variable] = field(default_factory=dict)

    def render(self, sql: str) -> str:
        sql = _VARIABLE.sub(self._variable, sql)
        sql = sql.replace("$__interval_ms", str(self.interval_ms))
        sql = sql.replace("$__interval", self._interval_text())
        sql = sql.replace("$__unixEpochFrom()", str(int(self.time_from.timestamp())))
        sql = sql.replace("$__unixEpochTo()", str(int(self.time_to.timestamp())))

        def macro(match: re.Match[str]) -> str:
            name, args = match.group(1), [a.strip() for a in match.group(2).split(",")]
            # Before Grafana 5.3 $__timeGroup aliased itself; a ',' right after the call
            # still selects that behaviour.
            if name == "__timeGroup" and sql[match.end() : match.end() + 1] == ",":
                name = "__timeGroupAlias"
            return self._macro(name, args)

        return _MACRO.sub(macro, sql)

    def _variable(self, match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in self.variables:
            return match.group(0)  # a macro or a global: not the browser's to replace
        return _format(self.variables[name], match.group(3))

    def _interval_text(self) -> str:
        """gtime.FormatInterval: the largest whole unit."""
        for unit, ms in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
            if self.interval_ms >= ms:
                return f"{self.interval_ms // ms}{unit}"
        return f"{self.interval_ms}ms"

    def _macro(self, name: str, args: list[str]) -> str:
        if name in ("__timeGroup", "__timeGroupAlias", "__unixEpochGroup"):
            return self._group(name, args)
        start, end = _rfc3339(self.time_from), _rfc3339(self.time_to)
        first, last = int(self.time_from.timestamp()), int(self.time_to.timestamp())
        column = args[0]
        rendered = {
            "__time": f'{column} AS "time"',
            "__timeEpoch": f'extract(epoch from {column}) as "time"',
            "__timeFilter": f"{column} BETWEEN '{start}' AND '{end}'",
            "__timeFrom": f"'{start}'",
            "__timeTo": f"'{end}'",
            "__unixEpochFilter": f"{column} >= {first} AND {column} <= {last}",
        }
        assert name in rendered, f"macro ${name} is not one this check renders"
        return rendered[name]

    def _group(self, name: str, args: list[str]) -> str:
        column, seconds = args[0], _interval_seconds(args[1])
        step = _go_float(seconds)
        if name == "__unixEpochGroup":
            return f"floor(({column})/{step})*{step}"
        if self.timescaledb:
            grouped = f"time_bucket('{seconds:.3f}s',{column})"
        else:
            grouped = f"floor(extract(epoch from {column})/{step})*{step}"
        return grouped + (' AS "time"' if name == "__timeGroupAlias" else "")


def _interval_seconds(text: str) -> float:
    match = _INTERVAL.match(text.strip("'"))
    assert match, f"interval {text} is not one gtime.ParseInterval reads here"
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def test_macros_render_as_grafanas_own_tests_expect() -> None:
    """The renderer against the cases of Grafana's macros_test.go (and the 5.3 compatibility)."""
    start = datetime(2018, 4, 12, 18, 0, tzinfo=UTC)
    plain = GrafanaQuery(start, start + timedelta(minutes=5), 600_000, timescaledb=False)
    timescale = GrafanaQuery(start, start + timedelta(minutes=5), 600_000, timescaledb=True)
    assert plain.render("select $__time(t)") == 'select t AS "time"'
    assert plain.render("WHERE $__timeFilter(t)") == (
        "WHERE t BETWEEN '2018-04-12T18:00:00Z' AND '2018-04-12T18:05:00Z'"
    )
    assert plain.render("select $__timeFrom(), $__timeTo()") == (
        "select '2018-04-12T18:00:00Z', '2018-04-12T18:05:00Z'"
    )
    assert (
        plain.render("SELECT $__timeGroup(t,'5m')") == "SELECT floor(extract(epoch from t)/300)*300"
    )
    assert plain.render("SELECT $__timeGroup(t,'5m'), v") == (
        'SELECT floor(extract(epoch from t)/300)*300 AS "time", v'
    )
    assert plain.render("$__timeGroupAlias(t , '5m')") == (
        'floor(extract(epoch from t)/300)*300 AS "time"'
    )
    assert (
        plain.render("$__timeGroup(t,'12d')")
        == "floor(extract(epoch from t)/1.0368e+06)*1.0368e+06"
    )
    assert (
        timescale.render("GROUP BY $__timeGroup(t , '5m')") == "GROUP BY time_bucket('300.000s',t)"
    )
    assert timescale.render("$__timeGroup(t, '12d')") == "time_bucket('1036800.000s',t)"
    assert timescale.render("$__timeGroup(t, '20ms')") == "time_bucket('0.020s',t)"
    assert plain.render("select $__unixEpochFilter(time)") == (
        "select time >= 1523556000 AND time <= 1523556300"
    )
    assert plain.render("SELECT $__unixEpochGroup(t+adj,'5m')") == "SELECT floor((t+adj)/300)*300"
    assert plain.render("SELECT $__interval, $__interval_ms, $__unixEpochFrom()") == (
        "SELECT 10m, 600000, 1523556000"
    )
    assert _rfc3339(datetime(1960, 2, 1, 7, 0, 0, 500_000, tzinfo=UTC)) == "1960-02-01T07:00:00.5Z"
    variables = {"one": Variable(("it's",)), "many": Variable(("a", "b'c"), multi=True)}
    quoting = GrafanaQuery(start, start, 60_000, timescaledb=False, variables=variables)
    assert quoting.render("'$one' ${one} ($many) ${many:csv} ${many:sqlstring} $other") == (
        "'it''s' it''s ('a','b''c') a,b'c 'a','b''c' $other"
    )


# --- The dashboards as files ----------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def grafana_mounts() -> dict[str, Path]:
    """Container path -> host path of the grafana service's bind mounts."""
    service = load_yaml(COMPOSE)["services"]["grafana"]
    mounts = {}
    for entry in service["volumes"]:
        source, target, *_ = entry.split(":")
        if source.startswith("./"):
            mounts[target] = (REPO / source).resolve()
    return mounts


def host_path(container_path: str) -> Path:
    """Where a path inside the grafana container lives in this repository."""
    for target, source in grafana_mounts().items():
        if container_path == target or container_path.startswith(target + "/"):
            return source / container_path.removeprefix(target).lstrip("/")
    raise AssertionError(f"{container_path} is not under any bind mount of the grafana service")


def provider() -> dict[str, Any]:
    (only,) = load_yaml(PROVIDER)["providers"]
    return only


def dashboard_files() -> list[Path]:
    return sorted(host_path(provider()["options"]["path"]).glob("*.json"))


DASHBOARDS: dict[str, dict[str, Any]] = {
    (board := json.loads(path.read_text(encoding="utf-8")))["uid"]: board
    for path in dashboard_files()
}


def panels(board: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(board["panels"])


def rendered_with_timescaledb() -> bool:
    (source,) = load_yaml(DATASOURCE)["datasources"]
    return bool(source["jsonData"]["timescaledb"])


def test_the_provider_reads_the_json_from_where_compose_mounts_it() -> None:
    config = load_yaml(PROVIDER)
    assert config["apiVersion"] == 1
    entry = provider()
    assert entry["type"] == "file"
    assert entry["folder"] == "Helix"
    path = entry["options"]["path"]
    assert path.startswith(CONTAINER_PROVISIONING + "/dashboards/")
    folder = host_path(path)
    assert folder == PROVISIONING / "dashboards" / "json"
    assert [p.name for p in dashboard_files()] == sorted(p.name for p in folder.iterdir())
    assert len(DASHBOARDS) == len(dashboard_files()) == 5  # one uid per file


def test_every_dashboard_is_a_provisionable_grafana_dashboard() -> None:
    assert set(DASHBOARDS) == {
        "helix-scanner-health",
        "helix-liquidation-levels",
        "helix-radar",
        "helix-signals-executor",
        "helix-pnl",
    }
    for uid, board in DASHBOARDS.items():
        assert board["editable"] is True, uid
        assert board["title"].startswith("Helix / "), uid
        assert re.fullmatch(r"now-\d+[mhd]", board["time"]["from"]), uid
        assert board["time"]["to"] == "now", uid
        assert re.fullmatch(r"\d+[smh]", board["refresh"]), uid
        assert isinstance(board["schemaVersion"], int), uid
        ids = [p["id"] for p in panels(board)]
        assert len(ids) == len(set(ids)), f"{uid}: duplicate panel ids {ids}"
        cells: set[tuple[int, int]] = set()
        for panel in panels(board):
            where = f"{uid} / {panel['title']}"
            assert panel["type"] in PANEL_TYPES, where
            assert panel["datasource"]["uid"] == DATASOURCE_UID, where
            assert panel["targets"], where
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == DATASOURCE_UID, where
                assert target["format"] in ("time_series", "table"), where
                assert target["rawQuery"] is True, where
            assert panel["fieldConfig"]["defaults"]["unit"], f"{where}: no unit"
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24, where
            area = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                    for y in range(pos["y"], pos["y"] + pos["h"])}  # fmt: skip
            assert not cells & area, f"{where} overlaps another panel"
            cells |= area
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                assert variable["datasource"]["uid"] == DATASOURCE_UID, variable["name"]
                # The SQL orders the options (ranges by length): Grafana must not re-sort them.
                assert variable["sort"] == 0, variable["name"]


def test_the_executor_mode_variable_offers_every_mode() -> None:
    boards = [b for b in DASHBOARDS.values() if "mode" in variable_names(b)]
    assert {b["uid"] for b in boards} == {"helix-signals-executor", "helix-pnl"}
    for board in boards:
        (mode,) = [v for v in board["templating"]["list"] if v["name"] == "mode"]
        assert mode["query"].split(",") == list(get_args(ExecutorMode))
        assert mode["current"]["value"] == "paper"


def variable_names(board: Mapping[str, Any]) -> list[str]:
    return [v["name"] for v in board["templating"]["list"]]


def all_sql() -> Iterator[tuple[str, str]]:
    for uid, board in DASHBOARDS.items():
        for panel in panels(board):
            for target in panel["targets"]:
                yield f"{uid} / {panel['title']}", target["rawSql"]
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                yield f"{uid} / ${variable['name']}", variable_sql(variable)


def variable_sql(variable: Mapping[str, Any]) -> str:
    query = variable["query"]
    return query if isinstance(query, str) else query["rawSql"]


_BY_LENGTH = re.compile(r'array_position\(ARRAY\[[^\]]*\], [\w.]*"range"\)')


def test_ranges_are_ordered_by_length_and_the_sql_needs_no_timescaledb() -> None:
    for where, sql in all_sql():
        # An ordering over ranges spells out the vocabulary's order, never text order.
        for literal in re.findall(r"ARRAY\[([^\]]*)\]", sql):
            items = [item.strip().strip("'") for item in literal.split(",")]
            if "12h" in items:
                assert items == list(RANGES), where
        for clause in re.findall(r"ORDER BY[^\n]*", sql):
            assert '"range"' not in _BY_LENGTH.sub("", clause), f"{where}: {clause}"
        # $__timeGroup is time_bucket on this datasource (timescaledb: true), which plain
        # PostgreSQL lacks; bucketing is written out instead. Comments are stripped by some
        # Grafana versions and not others: none.
        assert "$__timeGroup" not in sql, where
        assert "time_bucket" not in sql, where
        assert "--" not in sql, where
        assert "/*" not in sql, where


# --- Columns: what each panel needs ----------------------------------------------------------

UNIT_BY_SUFFIX = (
    ("_usd", "currencyUSD"),
    ("_pct", "percent"),
    ("_seconds", "s"),
    ("_fraction", "percentunit"),
    ("win_rate", "percentunit"),
    ("imbalance", "percentunit"),
    ("price", "currencyUSD"),
)


def unit_for(column: str) -> str | None:
    return next((unit for suffix, unit in UNIT_BY_SUFFIX if column.endswith(suffix)), None)


def column_unit(panel: Mapping[str, Any], column: str) -> str:
    """The unit Grafana shows a column in: its by-name override, else the panel's default."""
    for override in panel["fieldConfig"]["overrides"]:
        if override["matcher"] == {"id": "byName", "options": column}:
            for prop in override["properties"]:
                if prop["id"] == "unit":
                    return str(prop["value"])
    return str(panel["fieldConfig"]["defaults"]["unit"])


@dataclass(frozen=True)
class Result:
    columns: tuple[str, ...]
    types: tuple[int, ...]
    rows: list[tuple[Any, ...]]
    interval_ms: int = INTERVAL_MS  # what $__interval_ms was

    def column(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [row[i] for row in self.rows]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def check_shape(panel: Mapping[str, Any], fmt: str, result: Result, where: str) -> None:
    """What Grafana needs of a result to draw the panel."""
    if fmt == "time_series":
        # A `time` column, sorted (the long-to-wide conversion requires it), then either
        # metric + value (long: one series per metric) or numeric columns (wide).
        assert result.columns[0] == "time", where
        assert result.types[0] == TIMESTAMPTZ, where
        times = result.column("time")
        assert times == sorted(times), f"{where}: not sorted by time"
        if "metric" in result.columns:
            assert result.columns == ("time", "metric", "value"), where
            assert result.types[1] == TEXT, where
            assert result.types[2] in NUMERIC_TYPES, where
            keys = [(row[0], row[1]) for row in result.rows]
            assert len(keys) == len(set(keys)), f"{where}: a series has two points at a time"
        else:
            assert all(t in NUMERIC_TYPES for t in result.types[1:]), where
    if panel["type"] == "heatmap":
        # Each series is a price row named by its lower bound (a number, in price order).
        assert "metric" in result.columns, where
        assert all(math.isfinite(float(label)) for label in result.column("metric")), where
    if panel["type"] in ("table", "stat"):
        for name, type_code in zip(result.columns, result.types, strict=True):
            wanted = unit_for(name)
            if wanted is not None and type_code in NUMERIC_TYPES:
                assert column_unit(panel, name) == wanted, f"{where}: {name} not in {wanted}"


# --- The warehouse, loaded as `helix demo` loads it ---------------------------------------------


@dataclass
class Demo:
    dsn: str
    warehouse: Warehouse
    members: list[UniverseMember]
    ingests: list[tuple[datetime, IngestReport]]  # each run_ingest call: its clock, its report
    executor: ExecutorRunReport
    plan: FetchPlan
    signals: int

    @property
    def reports(self) -> list[IngestReport]:
        return [report for _, report in self.ingests]


def at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


@pytest.fixture(scope="module")
def demo(module_pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The universe from the sandbox, the KEYS heatmaps at both FETCH_MOMENTS through
    run_ingest, a replay run, then signals, outcomes and the paper executor at T and a planning
    cycle: the services `helix demo` runs (through Dagster) and `helix live` plans with."""
    root = tmp_path_factory.mktemp("grafana")
    settings = Settings(universe=UniverseSelection(mode="list", symbols=SYMBOLS))
    warehouse = open_warehouse(pg_dsn=module_pg_dsn, duckdb_path=root / "unused.duckdb")
    archive, quarantine = ParquetArchive(root / "archive"), QuarantineStore(root / "quarantine")
    try:
        members = asyncio.run(_universe(settings))
        warehouse.heatmaps.replace_universe(members)
        ingests = [
            (moment, run_ingest(settings.source, warehouse.heatmaps, archive, quarantine,
                                members, model, range_, clock=at(moment)))
            for moment in FETCH_MOMENTS
            for model, range_ in KEYS
        ]  # fmt: skip
        replayed = _replay_run(root / "replay", warehouse, archive, quarantine, members)
        ingests.append((REPLAY_AT, replayed))
        signals = refresh_signals(warehouse, now=T, limits=settings.risk)
        assert signals is not None
        assert signals.new, "the fixed moment should give signals"
        refresh_outcomes(warehouse, horizon_hours=24.0, now=T)
        broker = PaperBroker(
            warehouse.paper_book(),
            paper_prices(warehouse, clock=at(T)),
            account_equity_usd=settings.risk.account_equity_usd,
            clock=at(T),
        )
        executor = build_executor(settings, warehouse, broker=broker, clock=at(T))
        decided = run_pending(executor, warehouse, clock=at(T))
        plan = next_plan(warehouse, limit_per_minute=PLAN_LIMIT_PER_MINUTE, now=PLANNED_AT)
        warehouse.heatmaps.fetch_log.save_plan(plan_rows(plan))
        yield Demo(module_pg_dsn, warehouse, members, ingests, decided, plan, len(signals.new))
    finally:
        warehouse.close()


async def _universe(settings: Settings) -> list[UniverseMember]:
    source = open_source(settings.source, at(T))
    try:
        return (await resolve_universe(source, settings.universe)).members
    finally:
        await source.aclose()


def _replay_run(
    directory: Path,
    warehouse: Warehouse,
    archive: ParquetArchive,
    quarantine: QuarantineStore,
    members: Sequence[UniverseMember],
) -> IngestReport:
    """A replay of recorded responses where BTC's payload was cut short and ETH's is missing."""
    directory.mkdir()
    model, range_ = REPLAYED
    btc, eth = members[0], members[1]
    (directory / f"aggregated-heatmap_model{model}_{btc.symbol}_{range_}.json").write_bytes(
        b'{"code": "0", "msg": "success", "data": {"y_axis": [1.0, 2.0'
    )
    return run_ingest(
        SourceSettings(replay_dir=directory), warehouse.heatmaps, archive, quarantine,
        [btc, eth], model, range_, clock=at(REPLAY_AT),
    )  # fmt: skip


@pytest.fixture(scope="module")
def conn(demo: Demo) -> Iterator[psycopg.Connection[Any]]:
    """A reader on the demo database (what the Grafana datasource is)."""
    with psycopg.connect(demo.dsn) as connection:
        yield connection


def run_sql(conn: psycopg.Connection[Any], sql: str) -> Result:
    leftover = re.search(r"\$\S*", sql)
    assert leftover is None, f"not substituted: {leftover.group(0) if leftover else ''}\n{sql}"
    with conn.cursor() as cur:
        cur.execute(sql)  # type: ignore[arg-type] - rendered panel SQL, the test's own files
        assert cur.description is not None
        columns = tuple(c.name for c in cur.description)
        types = tuple(c.type_code for c in cur.description)
        return Result(columns, types, cur.fetchall())


def chosen_variables(
    board: Mapping[str, Any], conn: psycopg.Connection[Any]
) -> dict[str, Variable]:
    """Each variable's value as a fresh dashboard picks it: a custom variable's current value,
    a query variable's first option (its query sees the variables before it)."""
    chosen: dict[str, Variable] = {}
    for variable in board["templating"]["list"]:
        if variable["type"] == "custom":
            chosen[variable["name"]] = Variable((str(variable["current"]["value"]),))
        else:
            options = run_sql(conn, grafana(chosen).render(variable_sql(variable))).rows
            assert options, f"variable {variable['name']} has no option"
            chosen[variable["name"]] = Variable((str(options[0][0]),))
    conn.rollback()
    return chosen


def grafana(
    variables: Mapping[str, Variable] | None = None, interval_ms: int = INTERVAL_MS
) -> GrafanaQuery:
    return GrafanaQuery(
        WINDOW[0], WINDOW[1], interval_ms, rendered_with_timescaledb(), variables or {}
    )


def panel_interval_ms(panel: Mapping[str, Any]) -> int:
    """$__interval_ms for a panel: at least its minimum interval (`interval`, e.g. 1h)."""
    minimum = panel.get("interval")
    return max(INTERVAL_MS, round(_interval_seconds(minimum) * 1000) if minimum else 0)


def panel_result(
    conn: psycopg.Connection[Any], uid: str, title: str, **overrides: str
) -> tuple[dict[str, Any], Result]:
    board = DASHBOARDS[uid]
    (panel,) = [p for p in panels(board) if p["title"] == title]
    variables = chosen_variables(board, conn)
    variables |= {name: Variable((value,)) for name, value in overrides.items()}
    (target,) = panel["targets"]
    interval_ms = panel_interval_ms(panel)
    result = run_sql(conn, grafana(variables, interval_ms).render(target["rawSql"]))
    conn.rollback()
    check_shape(panel, target["format"], result, f"{uid} / {title}")
    return panel, replace(result, interval_ms=interval_ms)


def scalar(conn: psycopg.Connection[Any], sql: str) -> Any:
    with conn.cursor() as cur:
        cur.execute(sql)  # type: ignore[arg-type]
        row = cur.fetchone()
    conn.rollback()
    assert row is not None
    return row[0]


# --- Every panel, run: what it must show after the load ---------------------------------------

Check = Callable[[Result, Demo, psycopg.Connection[Any]], None]


def snapshots_per_minute(result: Result, demo: Demo, conn: psycopg.Connection[Any]) -> None:
    per_bucket = result.interval_ms / 60_000  # the values are per minute
    new = sum(r.stored.snapshots_added for r in demo.reports)
    assert sum(float(v) for v in result.column("value")) * per_bucket == new
    assert new == scalar(conn, "SELECT count(*) FROM heatmap_snapshots WHERE status = 'loaded'")
    assert len(set(result.column("metric"))) == len(KEYS)
    assert len(set(result.column("time"))) == len(FETCH_MOMENTS)


def requests_per_minute(result: Result, demo: Demo, conn: psycopg.Connection[Any]) -> None:
    sent = sum(r.request_stats["requests_sent"] for r in demo.reports)
    per_bucket = result.interval_ms / 60_000  # the values are per minute
    assert sum(float(v) for v in result.column("requests sent")) * per_bucket == sent
    assert sum(float(v) for v in result.column("429 received")) == 0
    assert result.columns == ("time", "requests sent", "retries", "429 received")


def request_totals(result: Result, demo: Demo, conn: psycopg.Connection[Any]) -> None:
    (row,) = result.dicts()
    assert row["ingest_runs"] == len(demo.ingests)
    assert row["requests_sent"] == sum(r.request_stats["requests_sent"] for r in demo.reports)
    assert row["http_429_received"] == row["retries"] == 0
    assert row["failed_requests"] == 1  # the replay's missing recording


def bad_payloads(result: Result, demo: Demo, conn: psycopg.Connection[Any]) -> None:
    totals: dict[str, float] = {}
    for row in result.dicts():
        totals[row["metric"]] = totals.get(row["metric"], 0) + float(row["value"])
    unavailable = sum(len(r.unavailable) for r in demo.reports)
    assert unavailable == 1  # WLD 90d, asked once: the second run skipped it
    assert totals == {"quarantined": 1, "unavailable": unavailable}


def data_age_per_tier(result: Result, demo: Demo, conn: psycopg.Connection[Any]) -> None:
    now = scalar(conn, "SELECT now()")
    # The planner, asked at the same moment, sees the same tiers (the SQL restates its rules).
    planned = {t.name: t for t in next_plan(
        demo.warehouse, limit_per_minute=PLAN_LIMIT_PER_MINUTE, now=now
    ).tiers}  # fmt: skip
    assert result.column("tier") == list(planned)
    for row in result.dicts():
        tier = planned[row["tier"]]
        assert (row["keys"], row["skipped_unavailable"], row["never_fetched"]) == (
            tier.keys,
            tier.skipped_unavailable,
            tier.never_fetched,
        ), row["tier"]
        if tier.stalest_seconds is None:
            assert row["stalest_seconds"] is None
        else:
            assert float(row["stalest_seconds"]) == pytest.approx(tier.stalest_seconds, abs=1)
    assert sum(result.column("keys")) + sum(result.column("skipped_unavailable")) == (
        len(SYMBOLS) * 3 * len(RANGES)
    )


def planner_stalest(result: Result, demo: Demo, conn: psycopg.Connection[Any]) -> None:
    assert set(result.column("time")) == {PLANNED_AT}
    assert {(r["metric"], float(r["value"])) for r in result.dicts()} == {
        (t.name, round(t.stalest_seconds)) for t in demo.plan.tiers if t.stalest_seconds is not None
    }


def ingest_runs(result: Result, demo: Demo, conn: psycopg.Connection[Any]) -> None:
    assert len(result.rows) == len(demo.ingests)
    rows = result.dicts()
    assert rows[0]["source"] == "replay"
    assert rows[0]["started_at"] == REPLAY_AT
    assert {r["source"] for r in rows[1:]} == {"sandbox"}
    by_key = {(r["started_at"], r["model"], r["range"]): r for r in rows}
    for moment, report in demo.ingests:
        row = by_key[(moment, report.model, report.range)]
        assert row["universe_size"] == report.requested
        assert row["requests_sent"] == report.request_stats["requests_sent"]
        assert row["snapshots_new"] == report.stored.snapshots_added
        assert row["snapshots_unchanged"] == report.unchanged
        assert row["quarantined"] == len(report.quarantined)
        assert row["unavailable"] == len(report.unavailable)
        assert row["skipped_unavailable"] == len(report.skipped_unavailable)
        assert row["failed_requests"] == len(report.failed)


def bad_payload_rows(result: Result, demo: Demo, conn: psycopg.Connection[Any]) -> None:
    assert sorted((r["symbol"], r["status"]) for r in result.dicts()) == [
        ("BTC", "quarantined"), ("WLD", "unavailable")
    ]  # fmt: skip
    assert all(r["reason"] for r in result.dicts())


def level_heatmap(result: Result, demo: Demo, conn: psycopg.Connection[Any]) -> None:
    stored = scalar(
        conn,
        "SELECT sum(cumulative_usd) FROM liquidation_price_levels "
        "WHERE symbol = 'BTC' AND model = 1 AND \"range\" = '12h'",
    )
    assert sum(float(v) for v in result.column("value")) == pytest.approx(stored)
    assert len(set(result.column("time"))) == len(FETCH_MOMENTS)  # one column per snapshot
    assert len(set(result.column("metric"))) <= 80


def close_line(result: Result, demo: Demo, conn: psycopg.Connection[Any]) -> None:
    assert len(result.rows) == scalar(
        conn,
        "SELECT count(*) FROM heatmap_candles WHERE symbol = 'BTC' AND \"range\" = '12h' "
        f"AND ts BETWEEN '{WINDOW[0].isoformat()}' AND '{WINDOW[1].isoformat()}'",
    )


def largest_levels(result: Result, demo: Demo, conn: psycopg.Connection[Any]) -> None:
    assert 0 < len(result.rows) <= 20
    usd = result.column("cumulative_usd")
    assert usd == sorted(usd, reverse=True)
    assert set(result.column("fetched_at")) == {T}
    assert all(d is not None for d in result.column("distance_pct"))


def radar_top(result: Result, demo: Demo, conn: psycopg.Connection[Any]) -> None:
    assert result.column("rank") == list(range(1, len(SYMBOLS) + 1))  # top 10 of six coins
    assert set(result.column("refreshed_at")) == {T}


def radar_scores(result: Result, demo: Demo, conn: psycopg.Connection[Any]) -> None:
    assert sorted(result.column("metric")) == sorted(SYMBOLS)


def radar_refresh(result: Result, demo: Demo, conn: psycopg.Connection[Any]) -> None:
    (row,) = result.dicts()
    assert (row["ranked"], row["excluded"]) == (len(SYMBOLS), 0)
    assert float(row["refresh_age_seconds"]) > 0


def signals_by_side(result: Result, demo: Demo, conn: psycopg.Connection[Any]) -> None:
    assert sum(float(v) for v in result.column("value")) == demo.signals
    assert set(result.column("metric")) <= {"long", "short"}


def decisions_by_action(result: Result, demo: Demo, conn: psycopg.Connection[Any]) -> None:
    totals: dict[str, float] = {}
    for row in result.dicts():
        totals[row["metric"]] = totals.get(row["metric"], 0) + float(row["value"])
    assert totals == demo.executor.counts


def signal_rows(result: Result, demo: Demo, conn: psycopg.Connection[Any]) -> None:
    assert len(result.rows) == demo.signals
    decided = {(d.symbol, d.action) for d in demo.executor.decisions}
    assert {(r["symbol"], r["action"]) for r in result.dicts()} == decided


def action_counts(result: Result, demo: Demo, conn: psycopg.Connection[Any]) -> None:
    assert dict(zip(result.column("action"), result.column("decisions"), strict=True)) == (
        demo.executor.counts
    )


def decision_rows(result: Result, demo: Demo, conn: psycopg.Connection[Any]) -> None:
    assert len(result.rows) == len(demo.executor.decisions)
    assert set(result.column("order_status")) == {"filled"}


def orders_by_status(result: Result, demo: Demo, conn: psycopg.Connection[Any]) -> None:
    (row,) = result.dicts()
    assert (row["status"], row["orders"]) == ("filled", demo.executor.counts["placed"])
    notional = scalar(conn, "SELECT sum(qty * price) FROM paper_fills")
    assert row["filled_notional_usd"] == pytest.approx(notional, rel=1e-6)


def closed_trade_totals(result: Result, demo: Demo, conn: psycopg.Connection[Any]) -> None:
    (row,) = result.dicts()
    # The load opens positions and closes none: no trade closed, the entry fees paid.
    assert (row["closed_trades"], row["win_rate"], float(row["net_pnl_usd"])) == (0, None, 0)
    assert row["fees_usd"] == pytest.approx(scalar(conn, "SELECT sum(fee_usd) FROM paper_fills"))


def cumulative_pnl(result: Result, demo: Demo, conn: psycopg.Connection[Any]) -> None:
    assert len(result.rows) == scalar(conn, "SELECT count(*) FROM paper_fills")
    last = result.dicts()[-1]
    assert last["gross PnL"] == 0
    assert last["net PnL"] == pytest.approx(-last["fees"])


def open_positions(result: Result, demo: Demo, conn: psycopg.Connection[Any]) -> None:
    assert result.column("symbol") == sorted(demo.executor.positions)
    assert all(p is not None for p in result.column("unrealized_pnl_usd"))


@dataclass(frozen=True)
class Expected:
    columns: tuple[str, ...]
    check: Check | None = None  # None: may be empty after the load (only its shape is checked)


LEVELS_TITLE = "Liquidation levels: ${symbol}, model ${model}, ${range} (${profile})"
LEVEL_COLUMNS = ("price", "cumulative_usd", "live_usd", "cells", "distance_pct", "fetched_at")
EXPECTED: dict[tuple[str, str], Expected] = {
    ("helix-scanner-health", "Snapshots loaded per minute, by model and range"):
        Expected(("time", "metric", "value"), snapshots_per_minute),
    ("helix-scanner-health", "CoinGlass requests, retries and 429s per minute"):
        Expected(("time", "requests sent", "retries", "429 received"), requests_per_minute),
    ("helix-scanner-health", "Requests in the time range"):
        Expected(("ingest_runs", "requests_sent", "retries", "http_429_received",
                  "failed_requests"), request_totals),
    ("helix-scanner-health", "Quarantined and unavailable payloads"):
        Expected(("time", "metric", "value"), bad_payloads),
    ("helix-scanner-health", "Data age per tier, now"):
        Expected(("tier", "keys", "skipped_unavailable", "never_fetched", "stalest_seconds",
                  "freshest_seconds"), data_age_per_tier),
    ("helix-scanner-health", "Planner: stalest key per tier"):
        Expected(("time", "metric", "value"), planner_stalest),
    ("helix-scanner-health", "Ingest runs (newest first)"):
        Expected(("started_at", "model", "range", "source", "universe_size", "requests_sent",
                  "retries", "http_429_received", "snapshots_new", "snapshots_unchanged",
                  "quarantined", "unavailable", "skipped_unavailable", "failed_requests",
                  "duration_seconds"), ingest_runs),
    ("helix-scanner-health", "Quarantined and unavailable payloads (newest first)"):
        Expected(("fetched_at", "symbol", "model", "range", "status", "reason"),
                 bad_payload_rows),
    ("helix-liquidation-levels", LEVELS_TITLE):
        Expected(("time", "metric", "value"), level_heatmap),
    ("helix-liquidation-levels", "Close: ${symbol} (${range} candles)"):
        Expected(("time", "close"), close_line),
    ("helix-liquidation-levels", "Largest levels of the newest snapshot"):
        Expected(LEVEL_COLUMNS, largest_levels),
    ("helix-radar", "Radar: top ${top_n} of the newest refresh"):
        Expected(("rank", "symbol", "tier", "score", "direction", "target_price", "last_price",
                  "nearest_distance_pct", "imbalance", "size_z", "consensus_component",
                  "realized_liq_usd", "price_origin", "data_age_seconds", "refreshed_at"),
                 radar_top),
    ("helix-radar", "Score over time of the newest top ${top_n}"):
        Expected(("time", "metric", "value"), radar_scores),
    ("helix-radar", "Newest refresh"):
        Expected(("refresh_age_seconds", "ranked", "excluded"), radar_refresh),
    ("helix-radar", "Excluded from the newest refresh"):
        Expected(("symbol", "excluded_reason", "snapshots", "newest_snapshot_at")),
    ("helix-signals-executor", "Trade signals by side"):
        Expected(("time", "metric", "value"), signals_by_side),
    ("helix-signals-executor", "Executor decisions by action (${mode})"):
        Expected(("time", "metric", "value"), decisions_by_action),
    ("helix-signals-executor", "Trade signals (newest first) and what ${mode} did"):
        Expected(("created_at", "symbol", "side", "entry_price", "stop_loss_price",
                  "take_profit_price", "reward_to_risk", "qty", "notional_usd", "risk_usd",
                  "risk_fraction", "leverage", "consensus_score", "radar_rank", "radar_tier",
                  "action", "reason"), signal_rows),
    ("helix-signals-executor", "Decisions by action (${mode}, time range)"):
        Expected(("action", "decisions"), action_counts),
    ("helix-signals-executor", "Executor decisions (${mode}, newest first)"):
        Expected(("decided_at", "symbol", "action", "reason", "order_status", "side",
                  "filled_qty", "avg_price", "signal_id", "order_link_id"), decision_rows),
    ("helix-signals-executor", "Orders (${mode}) by status"):
        Expected(("status", "orders", "filled_notional_usd"), orders_by_status),
    ("helix-pnl", "Closed trades (${mode}, time range)"):
        Expected(("closed_trades", "win_rate", "net_pnl_usd", "fees_usd"), closed_trade_totals),
    ("helix-pnl", "Cumulative realized PnL (${mode})"):
        Expected(("time", "gross PnL", "fees", "net PnL"), cumulative_pnl),
    ("helix-pnl", "Closed trades (${mode}, newest first)"):
        Expected(("closed_at", "symbol", "side", "qty", "entry_price", "exit_price",
                  "gross_pnl_usd", "fees_usd", "net_pnl_usd", "opened_at")),
    ("helix-pnl", "Open positions (${mode})"):
        Expected(("symbol", "side", "qty", "entry_price", "last_price", "unrealized_pnl_usd",
                  "take_profit_price", "stop_loss_price", "leverage", "opened_at"),
                 open_positions),
}  # fmt: skip
PANELS = [(uid, p["title"]) for uid, board in DASHBOARDS.items() for p in panels(board)]


def test_every_panel_has_an_expectation() -> None:
    assert sorted(PANELS) == sorted(EXPECTED)


@pytest.mark.parametrize(("uid", "title"), PANELS, ids=[f"{u}:{t}" for u, t in PANELS])
def test_the_panel_query_runs_and_shows_what_the_load_wrote(
    uid: str, title: str, demo: Demo, conn: psycopg.Connection[Any]
) -> None:
    expected = EXPECTED[(uid, title)]
    _, result = panel_result(conn, uid, title)
    assert result.columns == expected.columns
    if expected.check is not None:
        assert result.rows, f"{uid} / {title}: no rows after the load"
        expected.check(result, demo, conn)


def test_the_query_variables_offer_what_is_stored_in_the_vocabularys_order(
    demo: Demo, conn: psycopg.Connection[Any]
) -> None:
    board = DASHBOARDS["helix-liquidation-levels"]
    options: dict[str, list[str]] = {}
    chosen: dict[str, Variable] = {}
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            sql = grafana(chosen).render(variable_sql(variable))
            options[variable["name"]] = [str(row[0]) for row in run_sql(conn, sql).rows]
            chosen[variable["name"]] = Variable((options[variable["name"]][0],))
    conn.rollback()
    assert options["symbol"] == list(SYMBOLS)  # the universe's order
    assert options["model"] == ["1", "2", "3"]
    # BTC model 1: the ranges it has loaded snapshots of, by length.
    assert options["range"] == [r for r in RANGES if (1, r) in KEYS]
    model_2 = grafana({"symbol": Variable(("BTC",)), "model": Variable(("2",))})
    (range_variable,) = [v for v in board["templating"]["list"] if v["name"] == "range"]
    offered = [row[0] for row in run_sql(conn, model_2.render(variable_sql(range_variable))).rows]
    conn.rollback()
    assert offered == ["12h", "24h"]  # 2/3d was only ever quarantined: nothing to show


@pytest.mark.parametrize("mode", [m for m in get_args(ExecutorMode) if m != "paper"])
def test_other_modes_show_nothing_of_the_paper_book(
    mode: str, demo: Demo, conn: psycopg.Connection[Any]
) -> None:
    for uid in ("helix-signals-executor", "helix-pnl"):
        for panel in panels(DASHBOARDS[uid]):
            if "${mode}" not in panel["targets"][0]["rawSql"]:
                continue  # signals are every mode's
            _, result = panel_result(conn, uid, panel["title"], mode=mode)
            if panel["title"].startswith("Trade signals ("):
                assert set(result.column("action")) == {None}  # signals, no decision here
                continue
            for row in result.dicts():  # only the aggregate row of an empty set
                assert all(v in (0, None) for v in row.values()), (uid, panel["title"], row)


@pytest.mark.parametrize("symbol", SYMBOLS)
@pytest.mark.parametrize("profile", ["cumulative", "live"])
def test_the_level_heatmap_puts_every_snapshot_on_one_price_grid(
    symbol: str, profile: str, demo: Demo, conn: psycopg.Connection[Any]
) -> None:
    """Whatever the coin's price scale (BTC near 1e5, DOGE below 1): at most 80 distinct price
    rows shared by all snapshots, each snapshot's rows in price order, every USD accounted."""
    _, result = panel_result(
        conn, "helix-liquidation-levels", LEVELS_TITLE, symbol=symbol, range="24h",
        profile=profile,
    )  # fmt: skip
    by_time: dict[datetime, list[float]] = {}
    for moment, label, _ in result.rows:
        by_time.setdefault(moment, []).append(float(label))
    assert len(by_time) == len(FETCH_MOMENTS)
    assert len({label for labels in by_time.values() for label in labels}) <= 80
    for labels in by_time.values():
        assert labels == sorted(labels)
    series = f"FROM liquidation_price_levels WHERE symbol = '{symbol}' AND model = 1 " + (
        "AND \"range\" = '24h'"
    )
    stored = scalar(conn, f"SELECT sum({profile}_usd) {series}")
    assert sum(float(v) for v in result.column("value")) == pytest.approx(stored)
    lowest = scalar(conn, f"SELECT min(price) {series}")
    assert min(min(labels) for labels in by_time.values()) == pytest.approx(lowest, rel=1e-4)


def test_closed_trades_and_win_rate_count_fees_of_both_legs(
    demo: Demo, conn: psycopg.Connection[Any]
) -> None:
    """Two positions of the load closed (in a transaction rolled back afterwards): one at a
    profit larger than its fees, one at a loss."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT symbol, side, qty, price, fee_usd FROM paper_fills ORDER BY symbol LIMIT 2"
        )
        (win_symbol, win_side, win_qty, win_price, win_fee), (loss_symbol, *_, loss_fee) = (
            cur.fetchall()
        )
        later = T + timedelta(hours=2)
        for symbol, pnl, exit_fee in ((win_symbol, 500.0, 1.0), (loss_symbol, -40.0, 1.0)):
            cur.execute(
                "INSERT INTO paper_fills (fill_id, order_link_id, symbol, side, qty, price, "
                "fee_usd, realized_pnl_usd, filled_at, reduces_position) "
                "SELECT 'exit-' || symbol, 'exit-' || symbol, symbol, side, qty, price, %s, %s, "
                "%s, true FROM paper_fills WHERE symbol = %s",
                (exit_fee, pnl, later, symbol),
            )
    try:
        _, totals = panel_result_in_transaction(conn, "Closed trades (${mode}, time range)")
        (row,) = totals.dicts()
        assert row["closed_trades"] == 2
        assert row["win_rate"] == pytest.approx(0.5)
        assert float(row["net_pnl_usd"]) == pytest.approx(460.0 - win_fee - loss_fee - 2.0)
        _, trades = panel_result_in_transaction(conn, "Closed trades (${mode}, newest first)")
        by_symbol = {r["symbol"]: r for r in trades.dicts()}
        won = by_symbol[win_symbol]
        assert (won["side"], won["qty"], won["closed_at"]) == (win_side, win_qty, later)
        assert won["entry_price"] == pytest.approx(win_price)
        assert won["fees_usd"] == pytest.approx(win_fee + 1.0)
        assert won["net_pnl_usd"] == pytest.approx(500.0 - win_fee - 1.0)
    finally:
        conn.rollback()


def panel_result_in_transaction(
    conn: psycopg.Connection[Any], title: str
) -> tuple[dict[str, Any], Result]:
    """A PnL panel's result seen inside the caller's open transaction (no rollback)."""
    board = DASHBOARDS["helix-pnl"]
    (panel,) = [p for p in panels(board) if p["title"] == title]
    rendered = grafana({"mode": Variable(("paper",))}).render(panel["targets"][0]["rawSql"])
    result = run_sql(conn, rendered)
    check_shape(panel, "table", result, title)
    return panel, result
