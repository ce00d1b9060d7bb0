"""Shared fixtures: throwaway PostgreSQL databases on the machine's real server.

Each test that needs PostgreSQL gets a database of its own, created from scratch and dropped
afterwards, and each that needs Redis a key prefix of its own, so test runs (and parallel CI
runs) never see each other's rows or keys.
`HELIX_TEST_PG_ADMIN_DSN` points at a server where the user may create databases
(default: the local trust-auth server as `postgres`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
import redis
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from helix_pipelines.testing.local_services import PG_ADMIN_DSN as ADMIN_DSN
from helix_pipelines.testing.local_services import REDIS_URL, redis_key_prefix


def _create_database() -> str:
    name = f"helix_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_conninfo(**{**conninfo_to_dict(ADMIN_DSN), "dbname": name})


def _drop_database(dsn: str) -> None:
    name = conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """DSN of a fresh, empty database, dropped after the test."""
    dsn = _create_database()
    try:
        yield dsn
    finally:
        _drop_database(dsn)


@pytest.fixture(scope="module")
def module_pg_dsn() -> Iterator[str]:
    """A fresh database shared by one test module (for expensive end-to-end fixtures)."""
    dsn = _create_database()
    try:
        yield dsn
    finally:
        _drop_database(dsn)


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    """A connection to the machine's Redis."""
    conn = redis.Redis.from_url(REDIS_URL)
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    """A unique Redis key prefix; every key under it is deleted after the test (and checked)."""
    with redis_key_prefix() as key_prefix:
        yield key_prefix
    assert list(client.scan_iter(match=f"{key_prefix}*")) == []
