"""What only the SQLite back end has: its file, WAL mode, store URLs and paths."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tickwise.store import SQLiteStore, open_store
from tickwise.store.sqlite_schema import LATEST_VERSION


def test_a_new_file_is_created_with_its_folder_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "db" / "tickwise.sqlite"
    store = SQLiteStore(path)
    assert store.schema_version() == LATEST_VERSION
    store.close()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_store_opened_without_migrating_leaves_the_file_empty(tmp_path: Path) -> None:
    path = tmp_path / "bare.sqlite"
    SQLiteStore(path, migrate=False).close()
    tables = sqlite3.connect(path).execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == []


def test_open_store_understands_sqlite_urls_and_paths(tmp_path: Path) -> None:
    for url in (f"sqlite:///{tmp_path}/a.sqlite", str(tmp_path / "b.sqlite")):
        with open_store(url) as store:
            assert isinstance(store, SQLiteStore)
            assert store.client_count() == 0
    assert (tmp_path / "a.sqlite").exists() and (tmp_path / "b.sqlite").exists()
    with open_store("sqlite:///:memory:") as store:
        assert store.schema_version() == LATEST_VERSION


def test_open_store_refuses_unknown_schemes_and_empty_urls() -> None:
    with pytest.raises(ValueError, match="scheme"):
        open_store("mysql://host/db")
    with pytest.raises(ValueError, match="names no database"):
        open_store("sqlite:///")
    with pytest.raises(ValueError, match="empty"):
        open_store("")


def test_the_halt_generation_never_goes_back(sqlite_store: SQLiteStore) -> None:
    sqlite_store.set_halt("global", "a")
    second = sqlite_store.set_halt("global", "b")
    # An operator pruning the log must not hand out a generation a poller has already seen.
    with sqlite3.connect(sqlite_store.path) as conn:
        conn.execute("DELETE FROM halt_events WHERE seq = ?", (second,))
    assert sqlite_store.set_halt("global", "c") > second
