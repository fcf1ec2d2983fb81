"""What only the SQLite back end has: its file, WAL mode, store URLs and paths."""

from __future__ import annotations

import pickle
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from store_helpers import make_execs, make_orders

from tickwise.model.orders import OrderState
from tickwise.store import SQLiteStore, StoreError, open_store
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


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_the_executions_are_kept_in_a_file_of_their_own(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "tickwise.sqlite")
    assert store.executions_path == str(tmp_path / "tickwise.executions.sqlite")
    orders = make_orders(1, [1, 2])
    store.journal_orders(orders, "r1")
    store.record_executions(make_execs(orders, OrderState.FILLED, 2.0, 100.0))
    assert store.order_stats("r1")["by_state"] == {"filled": 2}  # joined across the two
    store.close()
    # The journal's chunks in the main file; the orders written out from them beside the
    # executions they are read with.
    assert {"order_chunks", "journal_keys"} <= _tables(tmp_path / "tickwise.sqlite")
    assert not {"orders", "executions"} & _tables(tmp_path / "tickwise.sqlite")
    assert _tables(tmp_path / "tickwise.executions.sqlite") == {
        "executions",
        "orders",
        "journal_expanded",
    }
    with sqlite3.connect(store.executions_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT COUNT(*) FROM executions").fetchone()[0] == 2


def _holding_write_lock(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def test_the_journal_and_the_executions_never_wait_for_each_other(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite", busy_timeout_ms=100)
    first, second = make_orders(1, [1, 2]), make_orders(2, [1, 2])
    store.journal_orders(first, "r1")
    store.close()  # the lock holders below start no transaction before the store's are open

    ledger = _holding_write_lock(store.executions_path)  # the ledger is writing
    assert store.journal_orders(second, "r1").all()  # the journal goes on
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        store.record_executions(make_execs(first, OrderState.ACKED))
    ledger.execute("ROLLBACK")

    allocator = _holding_write_lock(store.path)  # an allocator is journaling
    assert store.record_executions(make_execs(first, OrderState.ACKED)) == 2
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        store.journal_orders(make_orders(3, [1]), "r1")
    allocator.execute("ROLLBACK")
    assert store.order_stats("r1")["by_state"] == {"acked": 2, "journaled": 2}


def test_a_store_without_its_executions_file_refuses_to_open(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    SQLiteStore(path).close()
    for leftover in tmp_path.glob("s.executions.sqlite*"):
        leftover.unlink()
    with pytest.raises(StoreError, match=r"executions file .* is missing"):
        SQLiteStore(path)


def _journal_pages(store: SQLiteStore) -> int:
    """Journal 80,000 orders (over 1,000 pages, at which a commit checkpoints); the pages of
    the main database file then."""
    for signal in range(80):
        store.journal_orders(make_orders(signal, list(range(1000))), "r1")
    return Path(store.path).stat().st_size // 4096


@pytest.mark.parametrize("order_path", [False, True])
def test_the_order_path_leaves_checkpoints_to_maintain(tmp_path: Path, order_path: bool) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite")
    if order_path:
        store = pickle.loads(pickle.dumps(store.on_order_path()))  # as an actor receives it
    pages = _journal_pages(store)
    if not order_path:
        assert pages > 500  # a commit copied the log into the file
        return
    assert pages < 100  # on the order path no commit did
    store.maintain()
    assert Path(store.path).stat().st_size // 4096 > 500  # upkeep did, off the path
    assert store.order_stats("r1")["journaled"] == 80_000
    store.close()


def test_the_order_path_takes_the_lock_when_released_and_gives_up_at_the_timeout(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite", busy_timeout_ms=5_000).on_order_path()
    store.journal_orders(make_orders(1, [1]), "r1")
    holder = _holding_write_lock(store.path)
    releaser = threading.Timer(0.2, lambda: holder.execute("COMMIT"))
    releaser.start()
    assert store.journal_orders(make_orders(2, [1]), "r1").all()  # waited, then wrote
    releaser.join()

    # Only the journal's writer waits its own way; reads and executions keep SQLite's handler.
    timeouts = {
        kind: conn.execute("PRAGMA busy_timeout").fetchone()[0]
        for kind, conn in store._conns.items()
    }
    assert timeouts == {"reader": 5_000, "main": 0}

    impatient = SQLiteStore(store.path, busy_timeout_ms=100).on_order_path()
    holder = _holding_write_lock(store.path)
    began = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        impatient.journal_orders(make_orders(3, [1]), "r1")
    assert time.monotonic() - began >= 0.1  # it waited its timeout, no less
    holder.execute("ROLLBACK")
    assert store.order_stats("r1")["journaled"] == 2
