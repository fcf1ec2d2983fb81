"""Fixtures for the store tests: small instrument registries, and every back end with an empty
database per test (SQLite: a fresh file; PostgreSQL: a fresh schema, dropped after)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from store_helpers import Backend, make_registry, postgres_executor, sqlite_executor

from pg_support import ensure_postgres, fresh_schema, with_search_path
from tickwise.model.instruments import InstrumentRegistry
from tickwise.store import postgres_schema, sqlite_schema
from tickwise.store.base import Store
from tickwise.store.postgres import PostgresStore
from tickwise.store.sqlite import SQLiteStore

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def dev_registry() -> InstrumentRegistry:
    return make_registry(1000, 150)


@pytest.fixture(scope="session")
def tiny_registry() -> InstrumentRegistry:
    return make_registry(43, 7)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each back end in turn, with an empty database of its own."""
    if request.param == "sqlite":
        path = str(tmp_path / "tickwise.sqlite")
        backend = Backend(
            "sqlite", lambda: SQLiteStore(path), sqlite_executor(path), sqlite_schema.MIGRATIONS
        )
        yield backend
        backend.close_all()
        return
    server = ensure_postgres()
    with fresh_schema(server) as schema:
        url = with_search_path(server, schema)
        backend = Backend(
            "postgresql",
            lambda: PostgresStore(url),
            postgres_executor(url),
            postgres_schema.MIGRATIONS,
        )
        yield backend
        backend.close_all()


@pytest.fixture
def store(backend: Backend) -> Store:
    """A migrated store on each back end in turn."""
    return backend.open()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """For the tests about SQLite itself (its file, its pragmas)."""
    s = SQLiteStore(tmp_path / "tickwise.sqlite")
    yield s
    s.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """For the tests about PostgreSQL itself: a URL into a fresh, empty schema."""
    server = ensure_postgres()
    with fresh_schema(server) as schema:
        yield with_search_path(server, schema)
