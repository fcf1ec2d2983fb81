"""The write-ahead journal: what it returns is committed, and nothing is journaled twice."""

from __future__ import annotations

import numpy as np
import pytest

from tickwise.execution.journal import Journal
from tickwise.model.ids import client_order_ids
from tickwise.model.orders import OrderBatch
from tickwise.store.sqlite import SQLiteStore

T0 = 1_700_000_000_000_000_000


def make_orders(signal: int, clients: list[int]) -> OrderBatch:
    n = len(clients)
    ts = np.full(n, T0, np.int64)
    return OrderBatch(
        client_order_id=client_order_ids(np.full(n, signal), clients),
        signal_id=np.full(n, signal, np.int64),
        client=np.array(clients, np.int32),
        venue=np.zeros(n, np.uint8),
        instrument=np.ones(n, np.uint32),
        side=np.ones(n, np.int8),
        qty=np.full(n, 3.0),
        price=np.full(n, 10.0),
        ts_event=ts,
        ts_recv=ts,
        ts_signal=ts,
        ts_alloc=ts + 5,
        ts_journal=np.zeros(n, np.int64),
        ts_sent=np.zeros(n, np.int64),
    )


class FakeClock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def test_the_same_batch_twice_is_journaled_once(store: SQLiteStore) -> None:
    journal = Journal(store, "run-1", clock=FakeClock(T0 + 500))
    orders = make_orders(7, list(range(1_000)))
    first = journal.write(orders, now_ns=T0 + 100)
    second = journal.write(make_orders(7, list(range(1_000))), now_ns=T0 + 200)
    assert len(first) == 1_000 and len(second) == 0
    assert journal.counters == {"orders_journaled": 1_000, "duplicate_client_order_ids": 1_000}
    assert journal.duplicates == 1_000
    assert store.order_stats("run-1")["journaled"] == 1_000


def test_only_new_orders_come_back_in_batch_order(store: SQLiteStore) -> None:
    journal = Journal(store, "run-1")
    journal.write(make_orders(8, [2, 4]), now_ns=T0)
    fresh = journal.write(make_orders(8, [1, 2, 3, 4, 5]), now_ns=T0)
    assert fresh.client.tolist() == [1, 3, 5]
    assert journal.duplicates == 2


def test_returned_orders_carry_the_commit_time_and_the_store_the_write_time(
    store: SQLiteStore,
) -> None:
    journal = Journal(store, "run-1", clock=FakeClock(T0 + 900))
    fresh = journal.write(make_orders(9, [1]), now_ns=T0 + 100)
    assert fresh.ts_journal.tolist() == [T0 + 900]
    assert store.unacked_orders("run-1").ts_journal.tolist() == [T0 + 100]


def test_an_empty_batch_touches_nothing(store: SQLiteStore) -> None:
    journal = Journal(store, "run-1")
    assert len(journal.write(OrderBatch.empty(), now_ns=T0)) == 0
    assert store.order_stats("run-1")["journaled"] == 0


def test_a_journal_needs_a_run_id(store: SQLiteStore) -> None:
    with pytest.raises(ValueError):
        Journal(store, "")
