"""Every back end: migrations (fresh, repeated, concurrent, older and newer databases), pickling,
closing, and one store object shared by threads."""

from __future__ import annotations

import multiprocessing
import pickle
import threading
from collections.abc import Callable

import numpy as np
import pytest
from store_helpers import Backend, make_orders

from tickwise.model.orders import OrderState
from tickwise.store import Store, StoreError
from tickwise.store.base import rank_keys
from tickwise.store.migrations import STEPS
from tickwise.store.postgres_schema import LATEST_VERSION as POSTGRES_LATEST
from tickwise.store.rows import EXECUTION_COLUMNS, ORDER_COLUMNS
from tickwise.store.sqlite_schema import LATEST_VERSION

_SCHEMA_VERSION = (
    "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, description TEXT NOT NULL,"
    " applied_ns BIGINT NOT NULL)"
)


def test_both_back_ends_know_the_same_migrations(backend: Backend) -> None:
    assert [(n, d) for n, d, _ in backend.migrations] == list(STEPS)
    assert LATEST_VERSION == POSTGRES_LATEST == STEPS[-1][0]


def test_a_new_database_is_migrated_to_the_latest_version_once(backend: Backend) -> None:
    first = backend.open()
    assert first.schema_version() == LATEST_VERSION
    again = backend.open()
    assert again.migrate() == LATEST_VERSION
    rows = backend.execute("SELECT version, description FROM schema_version ORDER BY version")
    assert rows == list(STEPS)


def test_a_schema_newer_than_the_code_refuses_to_open(backend: Backend) -> None:
    backend.open().close()
    backend.execute("INSERT INTO schema_version VALUES (999, 'future', 0)")
    with pytest.raises(StoreError, match="newer"):
        backend.open()


def _order_indexes(backend: Backend) -> set[str]:
    """The names of the secondary indexes on the orders table."""
    if backend.name == "sqlite":
        query = (
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'orders' UNION"
            " SELECT name FROM exec.sqlite_master WHERE type = 'index' AND tbl_name = 'orders'"
        )
    else:
        query = (
            "SELECT indexname FROM pg_indexes"
            " WHERE tablename = 'orders' AND schemaname = current_schema()"
        )
    return {
        r[0] for r in backend.execute(query) if not str(r[0]).startswith(("sqlite_", "orders_pkey"))
    }


def _old_fill(backend: Backend) -> None:
    """One order of run "old" and its fill, written as an older release wrote them."""
    state = int(OrderState.FILLED)
    rank = int(rank_keys(np.array([state], np.int8))[0])
    backend.execute(
        f"INSERT INTO orders ({', '.join(ORDER_COLUMNS)})"
        " VALUES ('Xold', 'old', 1, 7, 0, 3, 1, 2.0, 100.0, 1, 2, 3, 4, 5)"
    )
    backend.execute(
        f"INSERT INTO executions ({', '.join(EXECUTION_COLUMNS)})"
        f" VALUES ('Xold', 7, 3, 1, {state}, {rank}, 0, 2.0, 100.0, 0.1, 6, 7)"
    )


@pytest.mark.parametrize("previous", [2, 4, 6])
def test_an_older_database_gains_the_new_tables_and_keeps_its_data(
    backend: Backend, previous: int
) -> None:
    backend.execute(_SCHEMA_VERSION)  # the schema as an older release wrote it
    for number, description, script in backend.migrations[:previous]:
        backend.run_script(script)
        backend.execute(f"INSERT INTO schema_version VALUES ({number}, '{description}', 0)")
    backend.execute("INSERT INTO runs (run_id, started_ns, config_json) VALUES ('old', 1, '{}')")
    _old_fill(backend)

    store = backend.open()
    assert store.schema_version() == LATEST_VERSION
    assert store.get_run("old") is not None
    stats = store.order_stats("old")  # the fill joins its order wherever each is kept
    assert (stats["journaled"], stats["fills"], stats["by_state"]) == (1, 1, {"filled": 1})
    fills = store.recorded_fills("old")
    assert (fills.client.tolist(), fills.fill_qty.tolist()) == ([7], [2.0])
    assert len(store.unsettled_orders("old")) == 0
    assert _order_indexes(backend) == {"orders_by_run"}  # step 6's two are dropped by step 7
    assert store.set_halt("global", "migrated") == 1
    store.save_checkpoint("shard-0", b"state")
    assert store.credential_count() == 0 and store.retune_history() == []
    store.close()

    again = backend.open()  # reopening applies nothing twice
    assert again.migrate() == LATEST_VERSION
    assert [r[0] for r in backend.execute("SELECT version FROM schema_version")] == list(
        range(1, LATEST_VERSION + 1)
    )
    assert again.halt_generation() == 1 and again.checkpoint_names() == ["shard-0"]


def _open_together(
    opener: Callable[[], Store], barrier: threading.Barrier, results: multiprocessing.Queue
) -> None:
    barrier.wait(timeout=60)
    store = opener()
    results.put(store.schema_version())
    store.close()


def test_processes_opening_a_new_database_together_migrate_it_once(backend: Backend) -> None:
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(4)
    results: multiprocessing.Queue = ctx.Queue()
    workers = [
        ctx.Process(target=_open_together, args=(backend.opener, barrier, results))
        for _ in range(4)
    ]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=120)
        assert p.exitcode == 0
    assert [results.get(timeout=5) for _ in workers] == [LATEST_VERSION] * 4
    assert backend.execute("SELECT COUNT(*) FROM schema_version") == [(LATEST_VERSION,)]


def test_a_pickled_store_reopens_the_same_database(store: Store) -> None:
    store.start_run("r1", {"tier": "tiny"})
    clone = pickle.loads(pickle.dumps(store))
    assert clone is not store and type(clone) is type(store)
    assert clone.get_run("r1") is not None
    clone.close()
    assert store.get_run("r1") is not None  # the original keeps its own connection


def test_close_is_idempotent_and_a_closed_store_reconnects_on_use(store: Store) -> None:
    store.close()
    store.close()
    assert store.schema_version() == LATEST_VERSION
    with store as same:
        assert same is store
    assert store.client_count() == 0


def test_threads_share_one_store(store: Store) -> None:
    inserted = [0] * 4

    def journal(worker: int) -> None:
        for signal in range(10):
            clients = [*range(50), 1000 + 100 * worker + signal]
            inserted[worker] += int(store.journal_orders(make_orders(signal, clients), "t").sum())

    threads = [threading.Thread(target=journal, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sum(inserted) == 10 * 50 + 4 * 10
    assert store.order_stats("t")["journaled"] == sum(inserted)
