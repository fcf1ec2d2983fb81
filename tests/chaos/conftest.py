"""The store every chaos test runs on: SQLite, and PostgreSQL in a schema of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pg_support import ensure_postgres, fresh_schema, with_search_path


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tw.sqlite'}"
        return
    server = ensure_postgres()
    with fresh_schema(server) as schema:
        yield with_search_path(server, schema)
