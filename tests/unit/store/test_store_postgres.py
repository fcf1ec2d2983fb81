"""What only the PostgreSQL back end has: URLs and schemas, its column types, the binary COPY of
the hot path, forks, lost connections."""

from __future__ import annotations

import multiprocessing
import threading
import uuid

import numpy as np
import psycopg
import pytest
from store_helpers import make_orders

from pg_support import drop_schema, ensure_postgres, new_schema_name, with_search_path
from tickwise.store import Store, StoreError, open_store
from tickwise.store.postgres import PostgresStore, binary_copy
from tickwise.store.postgres_schema import EXECUTION_TYPES, LATEST_VERSION, ORDER_TYPES
from tickwise.store.rows import EXECUTION_COLUMNS, ORDER_COLUMNS

# --- URLs and schemas -------------------------------------------------------------------------


def test_open_store_understands_postgres_urls(postgres_url: str) -> None:
    rest = postgres_url.split("://", 1)[1]
    for scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        with open_store(f"{scheme}://{rest}") as store:
            assert isinstance(store, PostgresStore)
            assert store.schema_version() == LATEST_VERSION


def test_the_url_search_path_keeps_each_schema_apart(postgres_url: str) -> None:
    server = ensure_postgres()
    other_schema = new_schema_name()
    try:
        with PostgresStore(postgres_url) as one, PostgresStore(server, schema=other_schema) as two:
            one.start_run("only-in-one", {})
            assert two.get_run("only-in-one") is None
            assert one.get_run("only-in-one") is not None
        with psycopg.connect(server) as conn:
            tables = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (other_schema,),
            ).fetchall()
        assert ("orders",) in tables  # schema= created the schema and put the tables there
    finally:
        drop_schema(server, other_schema)


def test_a_search_path_naming_no_existing_schema_is_refused() -> None:
    url = with_search_path(ensure_postgres(), new_schema_name())
    with pytest.raises(StoreError, match="no schema of the search_path exists"):
        PostgresStore(url)


def test_the_password_never_shows() -> None:
    store = PostgresStore("postgresql://tickwise:sekrit@127.0.0.1:1/db", migrate=False)
    assert "sekrit" not in repr(store) and "tickwise@127.0.0.1:1/db" in repr(store)
    with pytest.raises(StoreError, match="cannot connect") as info:
        store.schema_version()
    assert "sekrit" not in str(info.value)
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        PostgresStore("postgresql://[::1/db", migrate=False)


def _open_schema(
    server: str, schema: str, barrier: threading.Barrier, q: multiprocessing.Queue
) -> None:
    barrier.wait(timeout=60)
    with PostgresStore(server, schema=schema) as store:
        q.put(store.schema_version())


def test_processes_creating_one_schema_together_create_and_migrate_it_once() -> None:
    server = ensure_postgres()
    schema = new_schema_name()
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(4)
    results: multiprocessing.Queue = ctx.Queue()
    workers = [
        ctx.Process(target=_open_schema, args=(server, schema, barrier, results)) for _ in range(4)
    ]
    try:
        for p in workers:
            p.start()
        for p in workers:
            p.join(timeout=120)
            assert p.exitcode == 0
        assert [results.get(timeout=5) for _ in workers] == [LATEST_VERSION] * 4
        with psycopg.connect(with_search_path(server, schema)) as conn:
            assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone() == (
                LATEST_VERSION,
            )
    finally:
        drop_schema(server, schema)


# --- the hot path's binary COPY ---------------------------------------------------------------


def test_the_copy_types_are_the_journal_column_types(postgres_url: str) -> None:
    PostgresStore(postgres_url).close()
    with psycopg.connect(postgres_url) as conn:
        for table, names, types in (
            ("orders", ORDER_COLUMNS, ORDER_TYPES),
            ("executions", EXECUTION_COLUMNS, EXECUTION_TYPES),
        ):
            rows = conn.execute(
                "SELECT column_name, udt_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name = %s"
                " AND column_name <> 'seq' ORDER BY ordinal_position",
                (table,),
            ).fetchall()
            assert rows == list(zip(names, types, strict=True))


def test_binary_copy_lays_out_every_row_alike() -> None:
    data = binary_copy(
        ("text", "int2", "int8", "float8"),
        [np.array([b"AB", b"CD"]), np.array([1, -1]), np.array([2**40, 0]), np.array([0.5, 1.0])],
    )
    assert data is not None
    assert data.startswith(b"PGCOPY\n\xff\r\n\x00" + bytes(8)) and data.endswith(b"\xff\xff")
    first_row = (
        b"\x00\x04"  # four fields
        + b"\x00\x00\x00\x02AB"
        + b"\x00\x00\x00\x02\x00\x01"
        + b"\x00\x00\x00\x08"
        + (2**40).to_bytes(8, "big")
        + b"\x00\x00\x00\x08"
        + np.array(0.5, ">f8").tobytes()
    )
    assert data[19 : 19 + len(first_row)] == first_row
    assert len(data) == 19 + 2 * len(first_row) + 2


def test_binary_copy_declines_text_of_uneven_length() -> None:
    assert binary_copy(("text",), [np.array([b"AB", b"C"])]) is None
    assert binary_copy(("text",), [np.full(2, b"")]) is None


# --- forks and lost connections ---------------------------------------------------------------


def _use_then_exit(store: Store, q: multiprocessing.Queue) -> None:
    q.put(store.client_count())
    store.close()


def _close_then_exit(store: Store, q: multiprocessing.Queue) -> None:
    store.close()  # closing what the fork handed over must not close the parent's session
    q.put(0)


def test_a_forked_child_leaves_the_parents_session_alone(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    pid = store._read("SELECT pg_backend_pid()")[0][0]
    ctx = multiprocessing.get_context("fork")
    results: multiprocessing.Queue = ctx.Queue()
    for target in (_use_then_exit, _close_then_exit):
        child = ctx.Process(target=target, args=(store, results))
        child.start()
        child.join(timeout=60)
        assert child.exitcode == 0 and results.get(timeout=5) == 0
    assert store._read("SELECT pg_backend_pid()")[0][0] == pid  # the same session, alive
    assert store.journal_orders(make_orders(1, [1]), "r").all()
    store.close()


def test_a_lost_connection_is_replaced_on_the_next_call(postgres_url: str) -> None:
    name = f"tickwise-test-{uuid.uuid4().hex[:8]}"
    store = PostgresStore(f"{postgres_url}&application_name={name}")
    store.start_run("r1", {})
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (name,),
        )
    with pytest.raises(psycopg.OperationalError):
        store.get_run("r1")
    assert store.get_run("r1") is not None  # a new session
    store.close()
