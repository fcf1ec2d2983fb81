"""SQLite store: migrations, round trips, the write-ahead journal, executions and queries."""

from __future__ import annotations

import multiprocessing
import pickle
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from store_helpers import make_registry

from tickwise.model.ids import client_order_ids
from tickwise.model.orders import (
    COID_DTYPE,
    ExecutionBatch,
    OrderBatch,
    OrderState,
    RejectReason,
    Side,
)
from tickwise.store import SQLiteStore, StoreError, generate_clients, open_store
from tickwise.store.sqlite_schema import LATEST_VERSION

T0 = 1_700_000_000_000_000_000


def make_orders(signal: int, clients: list[int], side: int = 1, qty: float = 2.0) -> OrderBatch:
    n = len(clients)
    ts = np.full(n, T0, np.int64)
    return OrderBatch(
        client_order_id=client_order_ids(np.full(n, signal), clients),
        signal_id=np.full(n, signal, np.int64),
        client=np.array(clients, np.int32),
        venue=np.zeros(n, np.uint8),
        instrument=np.full(n, 3, np.uint32),
        side=np.full(n, side, np.int8),
        qty=np.full(n, qty),
        price=np.full(n, 100.0),
        ts_event=ts,
        ts_recv=ts + 1,
        ts_signal=ts + 2,
        ts_alloc=ts + 3,
        ts_journal=ts + 4,
        ts_sent=np.zeros(n, np.int64),
    )


def make_execs(
    orders: OrderBatch,
    state: OrderState,
    fill_qty: float = 0.0,
    fill_price: float = 0.0,
    reason: RejectReason = RejectReason.NONE,
) -> ExecutionBatch:
    n = len(orders)
    return ExecutionBatch(
        client_order_id=orders.client_order_id.copy(),
        signal_id=orders.signal_id.copy(),
        client=orders.client.copy(),
        venue=orders.venue.copy(),
        instrument=orders.instrument.copy(),
        side=orders.side.copy(),
        state=np.full(n, state, np.int8),
        reason=np.full(n, reason, np.int8),
        fill_qty=np.full(n, fill_qty),
        fill_price=np.full(n, fill_price),
        fee=np.full(n, 0.01 if fill_qty else 0.0),
        ts_event=orders.ts_event.copy(),
        ts_recv=orders.ts_recv.copy(),
        ts_sent=orders.ts_alloc + 10,
        ts_ack=orders.ts_alloc + 20,
    )


# --- lifecycle and migrations -----------------------------------------------------------------


def test_a_new_file_is_migrated_to_the_latest_version_once(tmp_path: Path) -> None:
    path = tmp_path / "db" / "tickwise.sqlite"
    first = SQLiteStore(path)
    assert first.schema_version() == LATEST_VERSION
    first.close()
    again = SQLiteStore(path)
    assert again.migrate() == LATEST_VERSION
    rows = sqlite3.connect(path).execute("SELECT version FROM schema_version").fetchall()
    assert [r[0] for r in rows] == list(range(1, LATEST_VERSION + 1))
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    again.close()


def test_a_schema_newer_than_the_code_refuses_to_open(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (999, 'future', 0)")
    with pytest.raises(StoreError, match="newer"):
        SQLiteStore(path)


def test_open_store_understands_sqlite_urls_and_paths(tmp_path: Path) -> None:
    for url in (f"sqlite:///{tmp_path}/a.sqlite", str(tmp_path / "b.sqlite")):
        with open_store(url) as store:
            assert store.client_count() == 0
    assert (tmp_path / "a.sqlite").exists() and (tmp_path / "b.sqlite").exists()
    with open_store("sqlite:///:memory:") as store:
        assert store.schema_version() == LATEST_VERSION


def test_open_store_rejects_postgres_for_now_and_unknown_schemes() -> None:
    with pytest.raises(NotImplementedError, match="PostgreSQL"):
        open_store("postgresql://user@host/tickwise")
    with pytest.raises(ValueError, match="scheme"):
        open_store("mysql://host/db")
    with pytest.raises(ValueError):
        open_store("sqlite:///")


def test_a_pickled_store_reopens_the_same_file(store: SQLiteStore) -> None:
    store.start_run("r1", {"tier": "tiny"})
    clone = pickle.loads(pickle.dumps(store))
    assert clone.get_run("r1") is not None
    clone.close()


# --- reference data ---------------------------------------------------------------------------


def test_instruments_round_trip(store: SQLiteStore) -> None:
    registry = make_registry(12, 3)
    store.save_instruments(registry)
    loaded = store.load_instruments()
    assert list(loaded) == list(registry)
    store.save_instruments(make_registry(2, 0))  # a save replaces the set
    assert len(store.load_instruments()) == 2


def test_clients_round_trip(store: SQLiteStore) -> None:
    universe = generate_clients(make_registry(43, 7), count=300, seed=3)
    store.save_clients(universe)
    loaded = store.load_clients()
    assert store.client_count() == 300
    for name in (
        "client_id",
        "venue",
        "equity",
        "max_order_notional",
        "max_position_weight",
        "sub_client",
        "sub_portfolio",
        "sub_allocation",
    ):
        np.testing.assert_array_equal(getattr(loaded.book, name), getattr(universe.book, name))
        assert getattr(loaded.book, name).dtype == getattr(universe.book, name).dtype
    assert loaded.portfolios == universe.portfolios
    assert loaded.accounts == universe.accounts
    assert loaded.names == universe.names
    assert store.load_portfolios() == universe.portfolios


def test_an_empty_store_loads_empty_books(store: SQLiteStore) -> None:
    assert len(store.load_client_book()) == 0
    assert store.load_portfolios() == ()
    assert len(store.load_instruments()) == 0


# --- journal ----------------------------------------------------------------------------------


def test_journaling_the_same_batch_twice_inserts_nothing_the_second_time(
    store: SQLiteStore,
) -> None:
    orders = make_orders(signal=77, clients=list(range(500)))
    assert store.journal_orders(orders, "r1").all()
    assert not store.journal_orders(orders, "r1").any()
    assert not store.journal_orders(orders, "another-run").any()
    assert store.order_stats("r1")["journaled"] == 500


def test_only_new_ids_of_a_mixed_batch_are_inserted(store: SQLiteStore) -> None:
    store.journal_orders(make_orders(5, [1, 3, 5]), "r1")
    mixed = make_orders(5, [0, 1, 2, 3, 4, 5, 6])
    inserted = store.journal_orders(mixed, "r1")
    assert inserted.tolist() == [True, False, True, False, True, False, True]
    assert store.order_stats("r1")["journaled"] == 7


def test_a_repeated_id_inside_one_batch_is_inserted_once(store: SQLiteStore) -> None:
    batch = OrderBatch.concat([make_orders(9, [4, 5]), make_orders(9, [5, 6])])
    assert store.journal_orders(batch, "r1").tolist() == [True, True, False, True]
    assert store.order_stats("r1")["duplicate_client_order_ids"] == 0


def test_journaled_rows_keep_every_column(store: SQLiteStore) -> None:
    orders = make_orders(11, [8, 9], side=-1, qty=1.25)
    store.journal_orders(orders, "r1")
    back = store.unacked_orders("r1")
    for name in ("client_order_id", "signal_id", "client", "venue", "instrument", "side"):
        np.testing.assert_array_equal(getattr(back, name), getattr(orders, name))
    for name in ("qty", "price", "ts_event", "ts_recv", "ts_signal", "ts_alloc", "ts_journal"):
        np.testing.assert_array_equal(getattr(back, name), getattr(orders, name))
    assert back.client_order_id.dtype == COID_DTYPE


# --- executions and queries -------------------------------------------------------------------


def test_order_state_follows_the_most_advanced_event(store: SQLiteStore) -> None:
    filled = make_orders(21, [1, 2])
    rejected = make_orders(22, [1])
    waiting = make_orders(23, [2])
    for batch in (filled, rejected, waiting):
        store.journal_orders(batch, "r1")
    # The fill arrives before the ack; the ack must not move the order back.
    store.record_executions(make_execs(filled, OrderState.FILLED, 2.0, 101.0))
    store.record_executions(make_execs(filled, OrderState.ACKED))
    store.record_executions(
        make_execs(rejected, OrderState.REJECTED, reason=RejectReason.INSUFFICIENT_BUYING_POWER)
    )
    stats = store.order_stats("r1")
    assert stats["by_state"] == {"filled": 2, "rejected": 1, "journaled": 1}
    assert stats["fills"] == 2
    assert stats["filled_notional"] == pytest.approx(2 * 2.0 * 101.0)
    assert stats["rejects_by_reason"] == {"insufficient_buying_power": 1}
    assert stats["duplicate_client_order_ids"] == 0
    assert stats["executions_without_order"] == 0
    unacked = store.unacked_orders()
    assert unacked.client_order_id.tolist() == waiting.client_order_id.tolist()


def test_a_replayed_fill_is_recorded_once(store: SQLiteStore) -> None:
    orders = make_orders(31, [1, 2, 3])
    store.journal_orders(orders, "r1")
    fills = make_execs(orders, OrderState.FILLED, 2.0, 100.0)
    assert store.record_executions(fills) == 3
    assert store.record_executions(fills) == 0
    positions = store.positions_from_fills("r1")
    assert positions.as_dict() == {(1, 3): 2.0, (2, 3): 2.0, (3, 3): 2.0}


def test_positions_net_buys_and_sells_per_run(store: SQLiteStore) -> None:
    buys = make_orders(41, [1, 2], side=Side.BUY, qty=3.0)
    sells = make_orders(42, [1, 2], side=Side.SELL, qty=1.0)
    other_run = make_orders(43, [1], side=Side.BUY, qty=5.0)
    store.journal_orders(buys, "r1")
    store.journal_orders(sells, "r1")
    store.journal_orders(other_run, "r2")
    store.record_executions(make_execs(buys, OrderState.FILLED, 3.0, 10.0))
    partial = make_execs(sells, OrderState.PARTIALLY_FILLED, 0.5, 11.0)
    rest = make_execs(sells, OrderState.FILLED, 0.5, 11.0)
    store.record_executions(ExecutionBatch.concat([partial, rest]))
    store.record_executions(make_execs(other_run, OrderState.FILLED, 5.0, 10.0))
    assert store.positions_from_fills("r1").as_dict() == {(1, 3): 2.0, (2, 3): 2.0}
    everything = store.positions_from_fills()
    assert everything.as_dict() == {(1, 3): 7.0, (2, 3): 2.0}
    assert everything.client.dtype == np.int32 and everything.instrument.dtype == np.uint32


def test_orders_by_client_shows_state_fill_and_average_price(store: SQLiteStore) -> None:
    orders = make_orders(51, [7], qty=4.0)
    store.journal_orders(orders, "r1")
    first = make_execs(orders, OrderState.PARTIALLY_FILLED, 1.0, 100.0)
    second = make_execs(orders, OrderState.FILLED, 3.0, 104.0)
    store.record_executions(ExecutionBatch.concat([first, second]))
    (record,) = store.orders_by_client(7)
    assert record.state is OrderState.FILLED
    assert record.filled_qty == pytest.approx(4.0)
    assert record.avg_fill_price == pytest.approx(103.0)
    assert record.fees == pytest.approx(0.02)
    assert record.side is Side.BUY
    assert store.orders_by_client(8) == []


def test_a_missing_fill_price_does_not_lose_the_event(store: SQLiteStore) -> None:
    orders = make_orders(61, [1])
    store.journal_orders(orders, "r1")
    reject = make_execs(orders, OrderState.REJECTED, reason=RejectReason.VENUE_ERROR)
    reject.fill_price[:] = np.nan
    assert store.record_executions(reject) == 1
    assert store.order_stats("r1")["by_state"] == {"rejected": 1}


# --- runs -------------------------------------------------------------------------------------


def test_a_run_records_its_config_and_summary(store: SQLiteStore) -> None:
    store.start_run("r1", {"tier": "tiny", "clients": 1000})
    with pytest.raises(ValueError, match="already"):
        store.start_run("r1", "{}")
    store.finish_run("r1", '{"orders": 12}')
    run = store.get_run("r1")
    assert run is not None
    assert run["config"] == {"tier": "tiny", "clients": 1000}
    assert run["summary"] == {"orders": 12}
    assert run["finished_ns"] >= run["started_ns"]
    with pytest.raises(KeyError):
        store.finish_run("nope", {})
    assert store.get_run("nope") is None


# --- several processes ------------------------------------------------------------------------


def _journal_worker(path: str, worker: int, results: multiprocessing.Queue) -> None:
    store = SQLiteStore(path)
    inserted = 0
    for signal in range(20):
        # Both workers journal signal 0..19 for clients 0..99 (the same ids: one must lose)
        # plus clients of their own.
        clients = list(range(100)) + list(range(1000 * (worker + 1), 1000 * (worker + 1) + 200))
        inserted += int(store.journal_orders(make_orders(signal, clients), f"w{worker}").sum())
    store.record_executions(
        make_execs(make_orders(0, [1000 * (worker + 1)]), OrderState.FILLED, 2.0, 1.0)
    )
    store.close()
    results.put(inserted)


def test_two_processes_journal_the_same_file_without_errors_or_doubles(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite")
    SQLiteStore(path).close()
    ctx = multiprocessing.get_context("fork")
    results: multiprocessing.Queue = ctx.Queue()
    workers = [ctx.Process(target=_journal_worker, args=(path, w, results)) for w in (0, 1)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=60)
        assert p.exitcode == 0
    inserted = results.get(timeout=5) + results.get(timeout=5)
    shared, own = 20 * 100, 2 * 20 * 200
    assert inserted == shared + own
    store = SQLiteStore(path)
    total = store.order_stats("w0")["journaled"] + store.order_stats("w1")["journaled"]
    assert total == shared + own
    assert store.order_stats("w0")["duplicate_client_order_ids"] == 0
    assert len(store.positions_from_fills()) == 2
    store.close()


@settings(max_examples=40, deadline=None)
@given(
    batches=st.lists(
        st.lists(st.tuples(st.integers(0, 3), st.integers(0, 30)), min_size=0, max_size=40),
        min_size=1,
        max_size=6,
    )
)
def test_the_journal_inserts_exactly_the_ids_never_seen_before(
    batches: list[list[tuple[int, int]]],
) -> None:
    store = SQLiteStore(":memory:")
    seen: set[tuple[int, int]] = set()
    for pairs in batches:
        if not pairs:
            continue
        batch = OrderBatch.concat([make_orders(sig, [client]) for sig, client in pairs])
        expected = []
        for pair in pairs:
            expected.append(pair not in seen)
            seen.add(pair)
        assert store.journal_orders(batch, "r").tolist() == expected
    stats = store.order_stats("r")
    assert stats["journaled"] == len(seen)
    assert stats["duplicate_client_order_ids"] == 0
    store.close()
