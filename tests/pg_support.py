"""PostgreSQL for the tests: find the server (starting the local one if it is down) and give each
test a schema of its own, dropped afterwards; a schema costs milliseconds, a database seconds.

`TICKWISE_TEST_POSTGRES_URL` points the tests at another server (then nothing is started).
Without a reachable server the tests that need one skip, saying why.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

URL_ENV = "TICKWISE_TEST_POSTGRES_URL"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
_START_COMMANDS = (("pg_ctlcluster", "15", "main", "start"), ("service", "postgresql", "start"))
_START_WAIT_S = 30.0


def _reachable(url: str) -> str | None:
    """None when `url` accepts a connection, else why not."""
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


@functools.cache
def _probe() -> tuple[str, str | None]:
    """(the server URL, None) when it is up, else (the URL, why the tests must skip). Probed once
    per session: a server that cannot start is not tried again by every test."""
    url = os.environ.get(URL_ENV, DEFAULT_URL)
    problem = _reachable(url)
    if problem is None:
        return url, None
    if URL_ENV in os.environ:
        return url, f"PostgreSQL at ${URL_ENV} is unreachable: {problem}"
    commands = [c for c in _START_COMMANDS if shutil.which(c[0])]
    if not commands:
        return url, f"PostgreSQL is not installed and not reachable ({problem})"
    for command in commands:
        subprocess.run(command, capture_output=True, timeout=_START_WAIT_S, check=False)
        deadline = time.monotonic() + _START_WAIT_S
        while time.monotonic() < deadline:
            problem = _reachable(url)
            if problem is None:
                return url, None
            time.sleep(0.5)
    return url, f"PostgreSQL did not start within {_START_WAIT_S:.0f} s: {problem}"


def ensure_postgres() -> str:
    """The URL of a running PostgreSQL server, or skip the calling test."""
    url, problem = _probe()
    if problem is not None:
        pytest.skip(problem)
    return url


def with_search_path(url: str, schema: str) -> str:
    """`url` with libpq `options` that put the session in `schema`."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["options"] = f"{query.get('options', '')} -csearch_path={schema}".strip()
    return urlunsplit(parts._replace(query=urlencode(query)))


def new_schema_name() -> str:
    return f"t_{uuid.uuid4().hex[:16]}"


def drop_schema(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@contextmanager
def fresh_schema(url: str) -> Iterator[str]:
    """An empty schema on the server of `url` for one test, dropped with its tables after."""
    schema = new_schema_name()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield schema
    finally:
        drop_schema(url, schema)
