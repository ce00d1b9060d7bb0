"""The production stack's files, checked without a Docker engine.

- docker-compose.yml is validated against the Compose Specification JSON schema (the copy that
  check-jsonschema ships as `vendor.compose-spec`), before and after variable interpolation.
- Variables: every one the compose file references is documented in .env.example and vice versa;
  secrets are required (`${VAR:?...}`) and never have a default.
- Wiring: healthchecks and `service_healthy` dependencies, named volumes, the Grafana datasource,
  the Dagster workspace, the init script, and the Dockerfile all agree with each other.
- deploy/dagster.yaml is loaded as a real Dagster instance on a throwaway PostgreSQL database.
"""

from __future__ import annotations

import copy
import json
import os
import re
import tomllib
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import jsonschema
import psycopg
import pytest
import yaml
from check_jsonschema.builtin_schemas import get_builtin_schema
from dagster._core.instance.config import PoolGranularity
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.run_storage import PostgresRunStorage
from dagster_postgres.schedule_storage import PostgresScheduleStorage
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
DAGSTER_YAML = REPO / "deploy" / "dagster.yaml"
WORKSPACE = REPO / "deploy" / "workspace.yaml"
INITDB = REPO / "deploy" / "initdb"
GRAFANA_PROVISIONING = REPO / "deploy" / "grafana" / "provisioning"
GRAFANA_DATASOURCE = GRAFANA_PROVISIONING / "datasources" / "warehouse.yaml"

SECRETS = {"POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD"}
OPTIONAL_SECRETS = {"COINGLASS_API_KEY"}
DAGSTER_SERVICES = ("code-location", "webserver", "daemon")
WAREHOUSE_DB = "quantprod"
DAGSTER_DB = "dagster"
LOCATION_NAME = "helix_pipelines"
DEFINITIONS_MODULE = "helix_pipelines.definitions"
CODE_SERVER_PORT = 4000
ADMIN_DSN = os.environ.get(
    "HELIX_TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


# --- Compose variable interpolation (Compose Specification, "Interpolation") ----------------------

_TOKEN = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)
_BRACED = re.compile(
    r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?|:\+|\+)(?P<arg>.*))?$"
)


class MissingRequiredVariableError(Exception):
    """What `docker compose` reports for an unset `${VAR:?message}`."""


def references(text: str) -> list[tuple[str, str | None, str | None]]:
    """(name, operator, argument) of every variable reference in `text`; `$$` is a literal `$`."""
    found = []
    for match in _TOKEN.finditer(text):
        if match.group("escaped"):
            continue
        if match.group("named"):
            found.append((match.group("named"), None, None))
            continue
        braced = _BRACED.match(match.group("braced"))
        assert braced, f"malformed interpolation ${{{match.group('braced')}}} in {text!r}"
        found.append((braced.group("name"), braced.group("op"), braced.group("arg")))
    return found


def interpolate(text: str, env: Mapping[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        if match.group("named"):
            return env.get(match.group("named"), "")
        braced = _BRACED.match(match.group("braced"))
        assert braced
        name, op, arg = braced.group("name", "op", "arg")
        value = env.get(name)
        if op in (":-", "-"):
            return value if (value if op == ":-" else value is not None) else arg
        if op in (":?", "?"):
            if (op == ":?" and not value) or value is None:
                raise MissingRequiredVariableError(f"required variable {name} is missing: {arg}")
            return value
        if op in (":+", "+"):
            return arg if (value if op == ":+" else value is not None) else ""
        return value or ""

    return _TOKEN.sub(substitute, text)


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    return node


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)


# --- Loaded files ----------------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, sep, value = stripped.partition("=")
        assert sep, f".env.example: not NAME=value: {line!r}"
        assert name not in values, f".env.example lists {name} twice"
        values[name] = value
    return values


@pytest.fixture(scope="module")
def production_env(env_example: dict[str, str]) -> dict[str, str]:
    """.env.example as an operator fills it in: the required secrets set, the rest as shipped."""
    return {
        **env_example,
        "POSTGRES_PASSWORD": "pg-secret-4e1f",
        "GRAFANA_ADMIN_PASSWORD": "gf-secret-9b2c",
    }


@pytest.fixture(scope="module")
def rendered(compose: dict[str, Any], production_env: dict[str, str]) -> dict[str, Any]:
    return interpolate_tree(compose, production_env)


@pytest.fixture(scope="module")
def compose_schema() -> dict[str, Any]:
    return get_builtin_schema("vendor.compose-spec")


def service_env(service: Mapping[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    assert isinstance(environment, dict), "environment must be a mapping (NAME: value)"
    return {str(k): str(v) for k, v in environment.items()}


def volume_mounts(service: Mapping[str, Any]) -> dict[str, str]:
    """target -> source of a service's short-syntax volume mounts."""
    mounts = {}
    for entry in service.get("volumes", []):
        source, target, *_ = entry.split(":")
        mounts[target] = source
    return mounts


def dockerfile_instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    instructions = []
    for line in joined.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, rest = stripped.partition(" ")
        instructions.append((keyword.upper(), " ".join(rest.split())))
    return instructions


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def option(argv: list[str], *flags: str) -> str:
    for i, arg in enumerate(argv):
        if arg in flags:
            return argv[i + 1]
    raise AssertionError(f"none of {flags} in {argv}")


# --- Compose Specification schema ------------------------------------------------------------------


def test_compose_schema_is_the_compose_specification(compose_schema: dict[str, Any]) -> None:
    assert compose_schema["title"] == "Compose Specification"
    assert compose_schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert {"services", "volumes", "networks"} <= set(compose_schema["properties"])
    jsonschema.validators.validator_for(compose_schema).check_schema(compose_schema)


def test_compose_file_validates_against_the_compose_specification(
    compose: dict[str, Any], rendered: dict[str, Any], compose_schema: dict[str, Any]
) -> None:
    validator = jsonschema.validators.validator_for(compose_schema)(compose_schema)
    for document in (compose, rendered):
        errors = [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(document)
        ]
        assert errors == []


def test_schema_rejects_what_compose_would_reject(
    compose: dict[str, Any], compose_schema: dict[str, Any]
) -> None:
    """The schema is strict enough to matter: typos and invalid values in our file are caught."""
    validator = jsonschema.validators.validator_for(compose_schema)(compose_schema)
    mutations = [
        ("services", "redis", "healtcheck"),  # misspelt key
        ("services", "webserver", "depends_on", "code-location", "condition"),  # bad enum value
        ("services", "timescaledb", "restart"),  # wrong type
        ("volumes", "helix_data"),  # wrong type
    ]
    replacements: list[Any] = [{"test": ["CMD", "true"]}, "service_ready", ["always"], 42]
    for path, replacement in zip(mutations, replacements, strict=True):
        broken = copy.deepcopy(compose)
        node = broken
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = replacement
        assert not validator.is_valid(broken), f"schema accepted {path} = {replacement!r}"


# --- Variables and secrets -------------------------------------------------------------------------


def test_every_variable_is_documented_in_env_example_and_vice_versa(
    compose: dict[str, Any], env_example: dict[str, str]
) -> None:
    referenced = {name for text in strings(compose) for name, _, _ in references(text)}
    assert referenced == set(env_example)
    assert referenced >= SECRETS | OPTIONAL_SECRETS


def test_secrets_are_required_variables_without_defaults(
    compose: dict[str, Any], env_example: dict[str, str]
) -> None:
    uses: dict[str, set[str | None]] = {}
    for text in strings(compose):
        for name, op, _ in references(text):
            uses.setdefault(name, set()).add(op)
    for secret in SECRETS:
        assert uses[secret] == {":?"}, f"{secret} must always be ${{{secret}:?...}}"
        assert env_example[secret] == "", f".env.example must not ship a value for {secret}"
    # The API key is optional (empty = sandbox) but never baked in.
    assert uses["COINGLASS_API_KEY"] == {":-"}
    assert env_example["COINGLASS_API_KEY"] == ""
    assert "${COINGLASS_API_KEY:-}" in COMPOSE.read_text(encoding="utf-8")


def test_compose_refuses_to_render_without_each_secret(
    compose: dict[str, Any], production_env: dict[str, str]
) -> None:
    for secret in SECRETS:
        for missing in ({k: v for k, v in production_env.items() if k != secret},
                        {**production_env, secret: ""}):  # fmt: skip
            with pytest.raises(MissingRequiredVariableError, match=f"set {secret} in .env"):
                interpolate_tree(compose, missing)


def test_no_literal_credentials_in_service_environments(compose: dict[str, Any]) -> None:
    sensitive = re.compile(r"PASSWORD|SECRET|API_KEY|DSN|TOKEN")
    checked = 0
    for name, service in compose["services"].items():
        for key, value in service_env(service).items():
            if sensitive.search(key):
                checked += 1
                assert references(value), f"{name}.{key} must come from a variable, not a literal"
    assert checked >= 8


# --- Services, healthchecks, dependency order, volumes ---------------------------------------------


def test_services_and_dependency_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {
        "timescaledb", "redis", "grafana", "code-location", "webserver", "daemon", "live"
    }  # fmt: skip
    expected_deps = {
        "grafana": {"timescaledb"},
        "code-location": {"timescaledb", "redis"},
        "live": {"timescaledb", "redis"},
        "webserver": {"timescaledb", "code-location"},
        "daemon": {"timescaledb", "code-location"},
    }
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on must use the long syntax"
        assert set(depends_on) == expected_deps.get(name, set())
        for dependency, spec in depends_on.items():
            assert spec == {"condition": "service_healthy"}, f"{name} -> {dependency}"
        assert service["restart"] == "unless-stopped"


def test_every_service_with_dependents_has_a_healthcheck(compose: dict[str, Any]) -> None:
    services = compose["services"]
    dependencies = {dep for s in services.values() for dep in s.get("depends_on", {})}
    assert dependencies == {"timescaledb", "redis", "code-location"}
    duration = re.compile(r"^(\d+(\.\d+)?(us|ms|s|m|h))+$")
    for name, service in services.items():  # every service, not only those with dependents
        healthcheck = service["healthcheck"]
        assert healthcheck["test"][0] in ("CMD", "CMD-SHELL"), name
        assert healthcheck["retries"] >= 3
        for key in ("interval", "timeout", "start_period"):
            assert duration.match(healthcheck[key]), f"{name}.healthcheck.{key}"
    assert services["timescaledb"]["healthcheck"]["test"][1].startswith("pg_isready -h 127.0.0.1")
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert services["code-location"]["healthcheck"]["test"] == [
        "CMD", "dagster", "api", "grpc-health-check", "-p", str(CODE_SERVER_PORT)
    ]  # fmt: skip
    assert services["daemon"]["healthcheck"]["test"] == ["CMD", "dagster-daemon", "liveness-check"]


def test_named_volumes_are_declared_and_used(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    used = set()
    for name, service in compose["services"].items():
        for target, source in volume_mounts(service).items():
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name}: bind mount {source} does not exist"
                continue
            assert source in declared, f"{name}: volume {source} is not declared"
            used.add(source)
            assert target.startswith("/")
    assert used == declared
    services = compose["services"]
    assert volume_mounts(services["timescaledb"])["/var/lib/postgresql/data"] == "timescaledb_data"
    assert volume_mounts(services["redis"])["/data"] == "redis_data"
    assert volume_mounts(services["grafana"])["/var/lib/grafana"] == "grafana_data"
    assert volume_mounts(services["code-location"])["/data"] == "helix_data"
    for name in DAGSTER_SERVICES:  # compute logs written by runs, shown by the webserver
        assert (
            volume_mounts(services[name])["/opt/dagster/dagster_home/storage"] == "dagster_storage"
        )
    assert "--appendonly" in services["redis"]["command"]


def test_timescaledb_and_init_script(compose: dict[str, Any]) -> None:
    db = compose["services"]["timescaledb"]
    assert re.fullmatch(r"timescale/timescaledb:(latest|2\.\d+\.\d+)-pg16", db["image"])
    env = service_env(db)
    assert env["POSTGRES_DB"] == WAREHOUSE_DB
    assert volume_mounts(db)["/docker-entrypoint-initdb.d"] == "./deploy/initdb"
    scripts = sorted(p.name for p in INITDB.iterdir())
    assert scripts == ["001_dagster_database.sql"]
    body = (INITDB / scripts[0]).read_text(encoding="utf-8")
    statements = [
        " ".join(s.split()) for s in re.sub(r"--[^\n]*", "", body).split(";") if s.strip()
    ]
    assert statements == [f"CREATE DATABASE {DAGSTER_DB}"]
    assert not re.search(r"password|secret", re.sub(r"--[^\n]*", "", body), re.IGNORECASE)


def test_dagster_services_share_the_instance_and_the_app_env(
    rendered: dict[str, Any], production_env: dict[str, str]
) -> None:
    services = rendered["services"]
    db_env = service_env(services["timescaledb"])
    images = {services[name]["image"] for name in DAGSTER_SERVICES}
    assert images == {f"helix-pipelines:{production_env['HELIX_IMAGE_TAG']}"}
    for name in DAGSTER_SERVICES:
        service = services[name]
        assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}
        env = service_env(service)
        assert env["DAGSTER_PG_HOST"] == "timescaledb"
        assert env["DAGSTER_PG_PORT"] == "5432"
        assert env["DAGSTER_PG_USER"] == db_env["POSTGRES_USER"] == production_env["POSTGRES_USER"]
        assert env["DAGSTER_PG_PASSWORD"] == db_env["POSTGRES_PASSWORD"] == "pg-secret-4e1f"
        assert env["DAGSTER_PG_DB"] == DAGSTER_DB

    app = service_env(services["code-location"])
    dsn = conninfo_to_dict(app["HELIX_PG_DSN"])
    assert dsn == {
        "host": "timescaledb",
        "port": "5432",
        "dbname": db_env["POSTGRES_DB"],
        "user": db_env["POSTGRES_USER"],
        "password": db_env["POSTGRES_PASSWORD"],
    }
    assert app["HELIX_REDIS_URL"] == "redis://redis:6379/0"
    assert app["HELIX_DATA_DIR"] == "/data"
    assert app["COINGLASS_API_KEY"] == ""  # unset in .env -> sandbox, never a baked-in key
    assert app["COINGLASS_BASE_URL"] == "https://open-api-v4.coinglass.com"
    assert {"COINGLASS_REPLAY_DIR", "COINGLASS_CAPTURE_DIR"} <= set(app)


def test_live_service_shares_the_app_env_without_trading_secrets(
    rendered: dict[str, Any],
) -> None:
    services = rendered["services"]
    live, app = services["live"], service_env(services["code-location"])
    assert live["command"] == ["helix", "live"]
    assert live["image"] == services["code-location"]["image"]
    env = service_env(live)
    shared = {
        k: v for k, v in app.items() if not k.startswith(("DAGSTER_", "BYBIT_", "HELIX_EXECUTOR"))
    }
    assert env == shared  # one budget (Redis), one warehouse, one universe with the code location
    assert not {k for k in env if k.startswith("BYBIT_")}
    # SIGTERM: the cycle in progress finishes and queued liquidations are flushed first.
    assert live["stop_grace_period"] in ("90s", "1m30s", 90)


def test_published_ports_bind_to_loopback_by_default(rendered: dict[str, Any]) -> None:
    published = {
        name: service["ports"]
        for name, service in rendered["services"].items()
        if "ports" in service
    }
    assert published == {
        "timescaledb": ["127.0.0.1:5433:5432"],
        "grafana": ["127.0.0.1:3001:3000"],
        "webserver": ["127.0.0.1:3000:3000"],
    }


# --- Grafana -----------------------------------------------------------------------------------


def test_grafana_datasource_points_at_the_warehouse(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    assert re.fullmatch(r"grafana/grafana-oss:\d+\.\d+\.\d+", grafana["image"])
    assert volume_mounts(grafana)["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    gf_env = service_env(grafana)
    db_env = service_env(compose["services"]["timescaledb"])
    assert gf_env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")

    provisioning = load_yaml(GRAFANA_DATASOURCE)
    assert provisioning["apiVersion"] == 1
    (source,) = provisioning["datasources"]
    assert source["type"] in ("grafana-postgresql-datasource", "postgres")
    assert source["url"] == "timescaledb:5432"
    assert source["jsonData"]["database"] == db_env["POSTGRES_DB"] == WAREHOUSE_DB
    assert source["jsonData"]["timescaledb"] is True
    assert source["jsonData"]["sslmode"] == "disable"
    assert "password" not in source  # only in secureJsonData
    # Grafana expands $NAME from its container environment, which compose fills from the very
    # same variables the database is created with.
    user_var = re.fullmatch(r"\$\{?([A-Z_][A-Z0-9_]*)\}?", source["user"])
    password_var = re.fullmatch(r"\$\{?([A-Z_][A-Z0-9_]*)\}?", source["secureJsonData"]["password"])
    assert user_var
    assert password_var
    assert gf_env[user_var.group(1)] == db_env["POSTGRES_USER"]
    assert gf_env[password_var.group(1)] == db_env["POSTGRES_PASSWORD"]


# --- Dagster workspace, Dockerfile -----------------------------------------------------------------


def test_workspace_points_at_the_code_location_service(compose: dict[str, Any]) -> None:
    workspace = load_yaml(WORKSPACE)
    assert workspace == {
        "load_from": [
            {
                "grpc_server": {
                    "host": "code-location",
                    "port": CODE_SERVER_PORT,
                    "location_name": LOCATION_NAME,
                }
            }
        ]
    }
    assert "code-location" in compose["services"]
    assert str(CODE_SERVER_PORT) in compose["services"]["code-location"]["expose"]
    workspace_in_image = "/opt/dagster/app/" + WORKSPACE.relative_to(REPO).as_posix()
    webserver = compose["services"]["webserver"]["command"]
    daemon = compose["services"]["daemon"]["command"]
    # Exec form, so `docker stop` signals reach dagster itself rather than a shell.
    assert isinstance(webserver, list)
    assert isinstance(daemon, list)
    assert webserver[0] == "dagster-webserver"
    assert option(webserver, "-h", "--host") == "0.0.0.0"
    assert option(webserver, "-w", "--workspace") == workspace_in_image
    assert daemon[:2] == ["dagster-daemon", "run"]
    assert option(daemon, "-w", "--workspace") == workspace_in_image


def test_dockerfile_installs_the_lock_file_with_uv_and_serves_the_code_location() -> None:
    instructions = dockerfile_instructions()
    runs = [rest for keyword, rest in instructions if keyword == "RUN"]
    syncs = [r for r in runs if "uv sync" in r]
    assert len(syncs) == 2
    assert all("uv sync --frozen --no-dev" in r for r in syncs)
    # Dependencies are a layer of their own, installed before the source is copied in.
    deps_layer = instructions.index(("RUN", syncs[0]))
    copy_source = next(
        i for i, (k, rest) in enumerate(instructions) if k == "COPY" and rest.startswith(". ")
    )
    assert "--no-install-project" in syncs[0]
    assert "source=uv.lock" in syncs[0]
    assert "source=pyproject.toml" in syncs[0]
    assert deps_layer < copy_source < instructions.index(("RUN", syncs[1]))
    # uv comes from its official image and stays in the builder stage.
    assert any(k == "FROM" and r.startswith("ghcr.io/astral-sh/uv:") for k, r in instructions)
    assert ("COPY", "--from=uv /uv /uvx /bin/") in instructions

    final = final_stage(instructions)
    python_version = (REPO / ".python-version").read_text(encoding="utf-8").strip()
    base_image = [r for k, r in instructions if k == "ARG" and r.startswith("PYTHON_IMAGE=")]
    assert base_image == [f"PYTHON_IMAGE=python:{python_version}-slim-bookworm"]
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users
    assert users[-1] not in ("root", "0")
    env = " ".join(rest for keyword, rest in final if keyword == "ENV")
    assert "DAGSTER_HOME=/opt/dagster/dagster_home" in env
    instance_copy = (
        f"{DAGSTER_YAML.relative_to(REPO).as_posix()} /opt/dagster/dagster_home/dagster.yaml"
    )
    assert any(k == "COPY" and r.endswith(instance_copy) for k, r in final)
    assert ("WORKDIR", "/opt/dagster/app") in final

    (cmd,) = [rest for keyword, rest in final if keyword == "CMD"]
    argv = json.loads(cmd)
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert argv[:3] == ["dagster", "code-server", "start"]
    assert option(argv, "--location-name") == LOCATION_NAME
    assert option(argv, "--location-name") == pyproject["tool"]["dagster"]["code_location_name"]
    assert option(argv, "-m", "--module-name") == DEFINITIONS_MODULE
    assert option(argv, "-m", "--module-name") == pyproject["tool"]["dagster"]["module_name"]
    assert option(argv, "-h", "--host") == "0.0.0.0"
    assert int(option(argv, "-p", "--port")) == CODE_SERVER_PORT


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_image() -> None:
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "data", ".dagster_home", ".env", ".pytest_cache", ".ruff_cache"} <= (
        patterns
    )
    # Everything the image needs stays in the build context.
    for needed in ("pyproject.toml", "uv.lock", "README.md", "deploy", "helix_pipelines"):
        assert needed not in patterns
        assert (REPO / needed).exists()


# --- dagster.yaml as a live Dagster instance --------------------------------------------------------


@pytest.fixture
def dagster_pg(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A throwaway database for Dagster's storage, and the DAGSTER_PG_* env that points at it."""
    name = f"helix_dagster_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        admin = conninfo_to_dict(ADMIN_DSN)
        env = {
            "DAGSTER_PG_HOST": str(admin.get("host", "127.0.0.1")),
            "DAGSTER_PG_PORT": str(admin.get("port", "5432")),
            "DAGSTER_PG_USER": str(admin.get("user", "postgres")),
            "DAGSTER_PG_PASSWORD": str(admin.get("password", "")),
            "DAGSTER_PG_DB": name,
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield env
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def test_dagster_yaml_is_a_working_postgres_instance(
    dagster_pg: dict[str, str], tmp_path: Path
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_bytes(DAGSTER_YAML.read_bytes())

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        for storage in (
            instance.run_storage,
            instance.event_log_storage,
            instance.schedule_storage,
        ):
            url = make_url(storage.postgres_url)  # type: ignore[attr-defined]
            # psycopg2 named explicitly: SQLAlchemy >= 2.1 would pick psycopg 3 for postgresql://
            assert url.drivername == "postgresql+psycopg2"
            assert (url.host, url.port, url.username, url.database) == (
                dagster_pg["DAGSTER_PG_HOST"],
                int(dagster_pg["DAGSTER_PG_PORT"]),
                dagster_pg["DAGSTER_PG_USER"],
                dagster_pg["DAGSTER_PG_DB"],
            )

        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        assert type(instance.run_launcher).__name__ == "DefaultRunLauncher"
        assert instance.run_monitoring_enabled is True

        concurrency = instance.get_concurrency_config()
        run_queue = concurrency.run_queue_config
        assert run_queue is not None
        assert run_queue.max_concurrent_runs == 4
        assert run_queue.tag_concurrency_limits == [{"key": "dagster/backfill", "limit": 2}]
        assert concurrency.pool_config.default_pool_limit == 1
        assert concurrency.pool_config.pool_granularity == PoolGranularity.RUN

        # The storage really works: a run with its events (every event write also sends the
        # NOTIFY the webserver listens to) and an asset materialization, read back.
        @dg.asset
        def helix_instance_probe() -> int:
            return 1

        result = dg.materialize([helix_instance_probe], instance=instance)
        assert result.success
        stored_run = instance.get_run_by_id(result.run_id)
        assert stored_run is not None
        assert stored_run.status == dg.DagsterRunStatus.SUCCESS
        event = instance.get_latest_materialization_event(dg.AssetKey("helix_instance_probe"))
        assert event is not None
        assert event.run_id == result.run_id

        # The `coinglass` pool the heatmap assets declare gets its slots from dagster.yaml.
        from helix_pipelines.definitions import defs

        pools = {
            assets_def.op.pool
            for assets_def in defs().resolve_asset_graph().assets_defs
            if assets_def.is_executable and assets_def.op.pool
        }
        assert "coinglass" in pools
        for pool in pools:
            assert instance.event_log_storage.initialize_concurrency_limit_to_default(pool)
            info = instance.event_log_storage.get_concurrency_info(pool)
            assert (info.limit, info.slot_count, info.using_default_limit) == (1, 1, True)

    telemetry = load_yaml(DAGSTER_YAML)["telemetry"]
    assert telemetry == {"enabled": False}


def test_production_instance_is_not_picked_up_by_local_dagster_commands() -> None:
    """The dagster CLI run without DAGSTER_HOME (`dagster dev`, `dagster definitions validate`)
    loads ./dagster.yaml from the working directory, so the PostgreSQL instance must not be there."""
    assert DAGSTER_YAML.parent == REPO / "deploy"
    assert not (REPO / "dagster.yaml").exists()


def test_dagster_yaml_reads_every_connection_setting_from_the_environment() -> None:
    config = load_yaml(DAGSTER_YAML)
    expected = {
        "hostname": {"env": "DAGSTER_PG_HOST"},
        "port": {"env": "DAGSTER_PG_PORT"},
        "username": {"env": "DAGSTER_PG_USER"},
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "db_name": {"env": "DAGSTER_PG_DB"},
    }
    for storage in ("run_storage", "event_log_storage", "schedule_storage"):
        assert config[storage]["module"].startswith("dagster_postgres.")
        assert config[storage]["config"] == {
            "postgres_db": {**expected, "scheme": "postgresql+psycopg2"}
        }
    compose_env = set(service_env(load_yaml(COMPOSE)["services"]["webserver"]))
    assert {v["env"] for v in expected.values()} <= compose_env
