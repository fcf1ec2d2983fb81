"""Fixtures for the store tests: small instrument registries and a fresh SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from store_helpers import make_registry

from tickwise.model.instruments import InstrumentRegistry
from tickwise.store.sqlite import SQLiteStore


@pytest.fixture(scope="session")
def dev_registry() -> InstrumentRegistry:
    return make_registry(1000, 150)


@pytest.fixture(scope="session")
def tiny_registry() -> InstrumentRegistry:
    return make_registry(43, 7)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "tickwise.sqlite")
    yield s
    s.close()
