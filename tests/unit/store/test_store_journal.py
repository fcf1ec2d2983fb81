"""Every back end: reference data, the write-ahead journal, executions, queries and runs, written
from several processes at once, and against a pure model of the journal."""

from __future__ import annotations

import itertools
import multiprocessing
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_helpers import make_execs, make_orders, make_registry

from tickwise.model.orders import (
    COID_DTYPE,
    ExecutionBatch,
    OrderBatch,
    OrderState,
    RejectReason,
    Side,
)
from tickwise.store import Store, generate_clients
from tickwise.store.base import STATE_RANK
from tickwise.store.rows import column_lists

# --- reference data ---------------------------------------------------------------------------


def test_instruments_round_trip(store: Store) -> None:
    registry = make_registry(12, 3)
    store.save_instruments(registry)
    loaded = store.load_instruments()
    assert list(loaded) == list(registry)
    store.save_instruments(make_registry(2, 0))  # a save replaces the set
    assert len(store.load_instruments()) == 2


def test_clients_round_trip(store: Store) -> None:
    universe = generate_clients(make_registry(43, 7), count=300, seed=3)
    store.save_clients(universe)
    store.save_clients(universe)  # a save replaces the set
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


def test_an_empty_store_loads_empty_books(store: Store) -> None:
    assert len(store.load_client_book()) == 0
    assert store.load_portfolios() == ()
    assert len(store.load_instruments()) == 0
    assert store.client_count() == 0


# --- journal ----------------------------------------------------------------------------------


def test_journaling_the_same_batch_twice_inserts_nothing_the_second_time(store: Store) -> None:
    orders = make_orders(signal=77, clients=list(range(500)))
    assert store.journal_orders(orders, "r1").all()
    assert not store.journal_orders(orders, "r1").any()
    assert not store.journal_orders(orders, "another-run").any()
    assert store.order_stats("r1")["journaled"] == 500
    assert store.order_stats("another-run")["journaled"] == 0


def test_only_new_ids_of_a_mixed_batch_are_inserted(store: Store) -> None:
    store.journal_orders(make_orders(5, [1, 3, 5]), "r1")
    mixed = make_orders(5, [6, 0, 1, 2, 3, 4, 5])
    inserted = store.journal_orders(mixed, "r1")
    assert inserted.tolist() == [True, True, False, True, False, True, False]
    assert store.order_stats("r1")["journaled"] == 7


def test_a_repeated_id_inside_one_batch_is_inserted_once(store: Store) -> None:
    batch = OrderBatch.concat([make_orders(9, [4, 5]), make_orders(9, [5, 6])])
    assert store.journal_orders(batch, "r1").tolist() == [True, True, False, True]
    assert store.order_stats("r1")["duplicate_client_order_ids"] == 0


def test_journaled_rows_keep_every_column(store: Store) -> None:
    orders = make_orders(11, [8, 9], side=-1, qty=1.25)
    orders.venue[:] = [1, 2]
    orders.instrument[:] = [7, 2**32 - 1]  # the widest instrument index
    orders.price[:] = [0.1, 12345.678901234]
    store.journal_orders(orders, "r1")
    back = store.unacked_orders("r1")
    for name in ("client_order_id", "signal_id", "client", "venue", "instrument", "side"):
        np.testing.assert_array_equal(getattr(back, name), getattr(orders, name))
        assert getattr(back, name).dtype == getattr(orders, name).dtype
    for name in ("qty", "price", "ts_event", "ts_recv", "ts_signal", "ts_alloc", "ts_journal"):
        np.testing.assert_array_equal(getattr(back, name), getattr(orders, name))
    assert back.client_order_id.dtype == COID_DTYPE


def test_ids_shorter_than_the_standard_width_are_journaled_too(store: Store) -> None:
    orders = make_orders(12, [1, 2, 3])
    orders.client_order_id[:] = [b"SHORT-1", b"A-LONGER-ID-2", b"SHORT-1"]
    assert store.journal_orders(orders, "").tolist() == [True, True, False]
    assert sorted(r.client_order_id for r in store.orders_by_client(2)) == ["A-LONGER-ID-2"]
    assert store.record_executions(make_execs(orders, OrderState.FILLED, 2.0, 1.0)) == 2
    assert store.orders_by_ids(["SHORT-1"])[0].state is OrderState.FILLED


def test_an_empty_batch_writes_nothing(store: Store) -> None:
    assert store.journal_orders(OrderBatch.empty(), "r1").tolist() == []
    assert store.record_executions(ExecutionBatch.empty()) == 0
    assert store.order_stats("r1")["journaled"] == 0


# --- executions and queries -------------------------------------------------------------------


def test_order_state_follows_the_most_advanced_event(store: Store) -> None:
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
    assert stats["fees"] == pytest.approx(0.02)
    assert stats["rejects_by_reason"] == {"insufficient_buying_power": 1}
    assert stats["duplicate_client_order_ids"] == 0
    assert stats["executions_without_order"] == 0
    unacked = store.unacked_orders()
    assert unacked.client_order_id.tolist() == waiting.client_order_id.tolist()


def test_a_replayed_fill_is_recorded_once(store: Store) -> None:
    orders = make_orders(31, [1, 2, 3])
    store.journal_orders(orders, "r1")
    fills = make_execs(orders, OrderState.FILLED, 2.0, 100.0)
    assert store.record_executions(fills) == 3
    assert store.record_executions(fills) == 0
    positions = store.positions_from_fills("r1")
    assert positions.as_dict() == {(1, 3): 2.0, (2, 3): 2.0, (3, 3): 2.0}


def test_a_batch_mixing_new_events_and_replays_keeps_the_new_ones(store: Store) -> None:
    orders = make_orders(32, [1, 2, 3])
    store.journal_orders(orders, "r1")
    store.record_executions(make_execs(orders.take(np.array([0])), OrderState.FILLED, 2.0, 1.0))
    acks = make_execs(orders, OrderState.ACKED)
    fills = make_execs(orders, OrderState.FILLED, 2.0, 1.0)
    # Acks are never unique; order 1's fill is a replay; orders 2 and 3 fill twice in the batch.
    batch = ExecutionBatch.concat([acks, fills, fills.take(np.array([1, 2]))])
    assert store.record_executions(batch) == 3 + 2
    assert store.positions_from_fills("r1").as_dict() == {(1, 3): 2.0, (2, 3): 2.0, (3, 3): 2.0}


def test_the_first_of_two_terminal_events_in_a_batch_wins(store: Store) -> None:
    orders = make_orders(33, [1])
    store.journal_orders(orders, "r1")
    canceled = make_execs(orders, OrderState.CANCELED)
    filled = make_execs(orders, OrderState.FILLED, 2.0, 100.0)
    assert store.record_executions(ExecutionBatch.concat([canceled, filled])) == 1
    (record,) = store.orders_by_ids(orders.client_order_id)
    assert record.state is OrderState.CANCELED and record.filled_qty == 0.0


def test_positions_net_buys_and_sells_per_run(store: Store) -> None:
    buys = make_orders(41, [1, 2], side=Side.BUY, qty=3.0)
    sells = make_orders(42, [1, 2], side=Side.SELL, qty=1.0)
    other_run = make_orders(43, [1], side=Side.BUY, qty=5.0)
    flat = make_orders(44, [3], side=Side.BUY, qty=1.0)
    flat_back = make_orders(45, [3], side=Side.SELL, qty=1.0)
    store.journal_orders(buys, "r1")
    store.journal_orders(sells, "r1")
    store.journal_orders(other_run, "r2")
    store.journal_orders(OrderBatch.concat([flat, flat_back]), "r1")
    store.record_executions(make_execs(buys, OrderState.FILLED, 3.0, 10.0))
    partial = make_execs(sells, OrderState.PARTIALLY_FILLED, 0.5, 11.0)
    rest = make_execs(sells, OrderState.FILLED, 0.5, 11.0)
    store.record_executions(ExecutionBatch.concat([partial, rest]))
    store.record_executions(make_execs(other_run, OrderState.FILLED, 5.0, 10.0))
    store.record_executions(
        make_execs(OrderBatch.concat([flat, flat_back]), OrderState.FILLED, 1.0)
    )
    assert store.positions_from_fills("r1").as_dict() == {(1, 3): 2.0, (2, 3): 2.0}  # 3 is flat
    everything = store.positions_from_fills()
    assert everything.as_dict() == {(1, 3): 7.0, (2, 3): 2.0}
    assert everything.client.dtype == np.int32 and everything.instrument.dtype == np.uint32
    assert len(store.positions_from_fills("no-such-run")) == 0


def test_recorded_fills_come_back_in_recording_order_with_their_orders(store: Store) -> None:
    first = make_orders(51, [1, 2], side=Side.BUY, qty=3.0)
    second = make_orders(52, [1], side=Side.SELL, qty=1.0)
    refused = make_orders(53, [2], side=Side.BUY, qty=9.0)
    store.journal_orders(OrderBatch.concat([first, refused]), "r1")
    store.journal_orders(second, "r2")
    store.record_executions(make_execs(first, OrderState.ACKED))  # acks carry no fill
    store.record_executions(make_execs(second, OrderState.FILLED, 1.0, 12.0))
    store.record_executions(make_execs(first, OrderState.FILLED, 3.0, 10.0))
    store.record_executions(make_execs(refused, OrderState.REJECTED))
    fills = store.recorded_fills()
    assert fills.client_order_id.tolist() == [
        *second.client_order_id.tolist(),
        *first.client_order_id.tolist(),
    ]
    assert fills.signal_id.tolist() == [52, 51, 51]
    assert fills.side.tolist() == [Side.SELL, Side.BUY, Side.BUY]
    assert fills.fill_qty.tolist() == [1.0, 3.0, 3.0]
    assert fills.fill_price.tolist() == [12.0, 10.0, 10.0]
    assert (fills.state == OrderState.FILLED).all()
    assert fills.ts_event.tolist() == second.ts_event.tolist() + first.ts_event.tolist()
    only_r1 = store.recorded_fills("r1")
    assert only_r1.client_order_id.tolist() == first.client_order_id.tolist()
    assert len(store.recorded_fills("no-such-run")) == 0


def test_orders_by_client_shows_state_fill_and_average_price(store: Store) -> None:
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
    assert record.run_id == "r1" and record.signal_id == 51 and record.qty == 4.0
    assert store.orders_by_client(8) == []


def test_orders_by_ids_come_in_the_order_asked_without_the_unknown(store: Store) -> None:
    orders = make_orders(52, list(range(1200)))  # more ids than one IN list holds
    store.journal_orders(orders, "r1")
    store.record_executions(make_execs(orders.take(np.arange(0, 1200, 2)), OrderState.ACKED))
    ids = orders.client_order_id.astype("U18").tolist()
    asked = [ids[1100], "NOT-JOURNALED", ids[3], ids[0], ids[3], *ids[500:1000]]
    records = store.orders_by_ids(asked)
    assert [r.client_order_id for r in records] == [
        ids[1100],
        ids[3],
        ids[0],
        ids[3],
        *ids[500:1000],
    ]
    assert records[0].state is OrderState.ACKED and records[1].state is OrderState.JOURNALED
    as_array = store.orders_by_ids(orders.client_order_id[[5, 4]])
    assert [r.client for r in as_array] == [5, 4]
    assert store.orders_by_ids([]) == []


def test_a_missing_fill_price_does_not_lose_the_event(store: Store) -> None:
    orders = make_orders(61, [1])
    store.journal_orders(orders, "r1")
    reject = make_execs(orders, OrderState.REJECTED, reason=RejectReason.VENUE_ERROR)
    reject.fill_price[:] = np.nan
    assert store.record_executions(reject) == 1
    assert store.order_stats("r1")["by_state"] == {"rejected": 1}


def test_executions_without_a_journaled_order_are_counted(store: Store) -> None:
    store.journal_orders(make_orders(62, [1]), "r1")
    assert store.record_executions(make_execs(make_orders(63, [2]), OrderState.ACKED)) == 1
    assert store.order_stats("r1")["executions_without_order"] == 1


# --- runs -------------------------------------------------------------------------------------


def test_a_run_records_its_config_and_summary(store: Store) -> None:
    store.start_run("r1", {"tier": "tiny", "clients": 1000})
    with pytest.raises(ValueError, match="already"):
        store.start_run("r1", "{}")
    store.start_run("r2", "{}")  # the failed start left the store usable
    store.finish_run("r1", '{"orders": 12}')
    run = store.get_run("r1")
    assert run is not None
    assert run["config"] == {"tier": "tiny", "clients": 1000}
    assert run["summary"] == {"orders": 12}
    assert run["finished_ns"] >= run["started_ns"]
    unfinished = store.get_run("r2")
    assert unfinished is not None and unfinished["summary"] is None
    assert unfinished["finished_ns"] is None
    with pytest.raises(KeyError):
        store.finish_run("nope", {})
    assert store.get_run("nope") is None


# --- several processes ------------------------------------------------------------------------


def _journal_worker(store: Store, worker: int, results: multiprocessing.Queue) -> None:
    inserted = 0
    for signal in range(20):
        # Both workers journal signal 0..19 for clients 0..99 (the same ids: one must lose)
        # plus clients of their own.
        clients = list(range(100)) + list(range(1000 * (worker + 1), 1000 * (worker + 1) + 200))
        inserted += int(store.journal_orders(make_orders(signal, clients), f"w{worker}").sum())
    # Both replay the same fill of a shared order: it must count once.
    store.record_executions(make_execs(make_orders(0, [7]), OrderState.FILLED, 2.0, 1.0))
    store.record_executions(
        make_execs(make_orders(0, [1000 * (worker + 1)]), OrderState.FILLED, 2.0, 1.0)
    )
    store.close()
    results.put(inserted)


def test_two_processes_journal_the_same_database_without_errors_or_doubles(store: Store) -> None:
    # The workers inherit this store, connection and all, through the fork: each must open its
    # own, and the parent's must survive them.
    ctx = multiprocessing.get_context("fork")
    results: multiprocessing.Queue = ctx.Queue()
    workers = [ctx.Process(target=_journal_worker, args=(store, w, results)) for w in (0, 1)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=120)
        assert p.exitcode == 0
    inserted = results.get(timeout=5) + results.get(timeout=5)
    shared, own = 20 * 100, 2 * 20 * 200
    assert inserted == shared + own
    total = store.order_stats("w0")["journaled"] + store.order_stats("w1")["journaled"]
    assert total == shared + own
    assert store.order_stats("w0")["duplicate_client_order_ids"] == 0
    assert store.positions_from_fills().as_dict() == {(7, 3): 2.0, (1000, 3): 2.0, (2000, 3): 2.0}


_examples = itertools.count()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(
        st.lists(st.tuples(st.integers(0, 3), st.integers(0, 30)), min_size=0, max_size=40),
        min_size=1,
        max_size=6,
    )
)
def test_the_journal_inserts_exactly_the_ids_never_seen_before(
    store: Store, batches: list[list[tuple[int, int]]]
) -> None:
    example = next(_examples)
    run, base = f"ids-{example}", 10 * example  # ids of their own per example
    seen: set[tuple[int, int]] = set()
    for pairs in batches:
        if not pairs:
            continue
        batch = OrderBatch.concat([make_orders(base + sig, [client]) for sig, client in pairs])
        expected = []
        for pair in pairs:
            expected.append(pair not in seen)
            seen.add(pair)
        assert store.journal_orders(batch, run).tolist() == expected
    stats = store.order_stats(run)
    assert stats["journaled"] == len(seen)
    assert stats["duplicate_client_order_ids"] == 0


# --- the journal against a model ------------------------------------------------------------

_EVENT_STATES = (
    OrderState.SENT,
    OrderState.UNKNOWN,
    OrderState.ACKED,
    OrderState.PARTIALLY_FILLED,
    OrderState.FILLED,
    OrderState.REJECTED,
    OrderState.CANCELED,
    OrderState.EXPIRED,
)
_journal_op = st.tuples(
    st.just("journal"),
    st.lists(st.tuples(st.integers(0, 2), st.integers(0, 5), st.sampled_from([1, -1])), max_size=8),
)
# (which journaled order, modulo how many there are; its new state; fill in quarter units)
_exec_op = st.tuples(
    st.just("exec"),
    st.lists(
        st.tuples(st.integers(0, 50), st.sampled_from(_EVENT_STATES), st.integers(1, 8)),
        max_size=8,
    ),
)


@dataclass
class _Model:
    """What the store should hold, kept the plain way: per order, its events in arrival order."""

    orders: dict[bytes, tuple[int, int]] = field(default_factory=dict)  # id -> (client, side)
    events: dict[bytes, list[tuple[OrderState, float]]] = field(default_factory=dict)

    def journal(self, ids: list[bytes], clients: list[int], sides: list[int]) -> list[bool]:
        inserted = []
        for coid, client, side in zip(ids, clients, sides, strict=True):
            inserted.append(coid not in self.orders)
            self.orders.setdefault(coid, (client, side))
            self.events.setdefault(coid, [])
        return inserted

    def record(self, coid: bytes, state: OrderState, qty: float) -> bool:
        terminal = [s for s, _ in self.events[coid] if s.terminal]
        if state.terminal and terminal:
            return False
        self.events[coid].append((state, qty))
        return True

    def state(self, coid: bytes) -> OrderState:
        if not self.events[coid]:
            return OrderState.JOURNALED
        return max((s for s, _ in self.events[coid]), key=lambda s: (int(STATE_RANK[s]), int(s)))

    def filled(self, coid: bytes) -> float:
        return sum(q for _, q in self.events[coid])

    def positions(self) -> dict[tuple[int, int], float]:
        net: dict[tuple[int, int], float] = {}
        for coid, (client, side) in self.orders.items():
            net[(client, 3)] = net.get((client, 3), 0.0) + side * self.filled(coid)
        return {k: v for k, v in net.items() if v != 0.0}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(st.one_of(_journal_op, _exec_op), min_size=1, max_size=10))
def test_any_interleaving_of_journal_and_executions_matches_the_model(
    store: Store, ops: list[tuple[str, list[tuple[int, ...]]]]
) -> None:
    example = next(_examples)
    run, base = f"model-{example}", 10 * example  # ids of their own per example
    model = _Model()
    for kind, items in ops:
        if kind == "journal" and items:
            _, clients, sides = zip(*items, strict=True)
            batch = OrderBatch.concat([make_orders(base + s, [c], side=d) for s, c, d in items])
            ids = batch.client_order_id.tolist()
            expected = model.journal(ids, list(clients), list(sides))
            assert store.journal_orders(batch, run).tolist() == expected
        elif kind == "exec" and items and model.orders:
            known = list(model.orders)
            picked = [known[pick % len(known)] for pick, _, _ in items]
            parts = []
            recorded = 0
            for coid, (_, state, units) in zip(picked, items, strict=True):
                qty = units / 4 if state in (OrderState.PARTIALLY_FILLED, OrderState.FILLED) else 0
                client, side = model.orders[coid]
                order = make_orders(0, [client], side=side)
                order.client_order_id[:] = coid
                parts.append(make_execs(order, state, qty, 10.0))
                recorded += model.record(coid, state, qty)
            assert store.record_executions(ExecutionBatch.concat(parts)) == recorded

    ids = list(model.orders)
    records = store.orders_by_ids(np.array(ids, dtype=COID_DTYPE))
    assert [r.client_order_id.encode() for r in records] == ids
    for record, coid in zip(records, ids, strict=True):
        assert record.state is model.state(coid)
        assert record.filled_qty == model.filled(coid)
    assert store.positions_from_fills(run).as_dict() == model.positions()
    by_state: dict[str, int] = {}
    for coid in ids:
        name = model.state(coid).name.lower()
        by_state[name] = by_state.get(name, 0) + 1
    assert store.order_stats(run)["by_state"] == by_state
    unacked = {c for c in ids if STATE_RANK[model.state(c)] < STATE_RANK[OrderState.ACKED]}
    assert set(store.unacked_orders(run).client_order_id.tolist()) == unacked


def test_recent_answered_orders_and_fills_of_a_client_or_an_instrument_come_newest_first(
    store: Store,
) -> None:
    batches = []
    for signal in range(60, 66):
        batch = make_orders(signal, [7, 8], qty=1.0 + signal % 3)
        batch.ts_journal[:] += signal  # each signal journaled later than the one before
        batch.instrument[:] = 3 if signal % 2 else 4
        batches.append(batch)
        store.journal_orders(batch, "r1")
    for batch in batches[:4]:
        store.record_executions(
            make_execs(batch, OrderState.FILLED, 1.0, 50.0 + batch.signal_id[0])
        )

    newest = store.recent_orders(client=7, limit=3)
    assert [r.signal_id for r in newest] == [63, 62, 61]  # 64 and 65 are not answered yet
    assert all(r.client == 7 and r.state is OrderState.FILLED for r in newest)
    on_three = store.recent_orders(instrument=3, limit=100)
    assert sorted({r.signal_id for r in on_three}) == [61, 63] and len(on_three) == 4
    assert [r.signal_id for r in store.recent_orders(client=8, instrument=4)] == [62, 60]
    assert store.recent_orders(client=7, limit=0) == []
    fills = store.recent_fills(client=8, limit=10)
    assert [f.price for f in fills] == [113.0, 112.0, 111.0, 110.0]  # recorded last, shown first
    assert all(f.client == 8 and f.qty == 1.0 and f.side is Side.BUY for f in fills)
    assert [f.instrument for f in store.recent_fills(instrument=3)] == [3, 3, 3, 3]
    assert store.recent_fills(client=99) == [] and store.recent_orders(instrument=99) == []
    with pytest.raises(ValueError, match="whose rows"):
        store.recent_fills()


def test_a_signals_outcome_counts_its_orders_and_their_last_times(store: Store) -> None:
    fanned = make_orders(70, list(range(1, 6)))
    fanned.ts_journal[:] += np.arange(5)
    fanned.ts_alloc[:] -= np.arange(5)
    store.journal_orders(fanned, "r1")
    store.journal_orders(make_orders(71, [1]), "r1")
    answered = fanned.take(np.arange(3))
    store.record_executions(make_execs(answered, OrderState.ACKED))
    store.record_executions(make_execs(answered.take(np.array([0])), OrderState.FILLED, 2.0, 9.0))

    out = store.signal_outcome(70)
    assert out.journaled == 5 and out.answered == 3
    assert out.last_journal_ns == int(fanned.ts_journal.max())
    assert out.first_journal_ns == int(fanned.ts_journal.min())
    assert out.last_alloc_ns == int(fanned.ts_alloc.max())
    assert out.first_sent_ns == int(answered.ts_alloc.min()) + 10
    assert out.last_sent_ns == int(answered.ts_alloc.max()) + 10  # as make_execs stamps them
    assert out.last_ack_ns == int(answered.ts_alloc.max()) + 20
    nothing = store.signal_outcome(99)
    assert (nothing.journaled, nothing.answered, nothing.last_ack_ns) == (0, 0, 0)


@given(
    st.lists(st.integers(-(2**62), 2**62), max_size=40),
    st.lists(st.sampled_from([0.0, -0.0, 1.5, 1e300]), max_size=40),
    st.integers(0, 40),
)
def test_column_lists_are_the_arrays_values(
    ints: list[int], floats: list[float], same: int
) -> None:
    arrays = [
        np.array(ints, np.int64),
        np.array(floats, np.float64),
        np.full(same, 7, np.int8),
        np.full(same, 2**61, np.int64),
    ]
    lists = column_lists(arrays)
    for array, values in zip(arrays, lists, strict=True):
        assert values == array.tolist()
        assert all(type(v) is type(w) for v, w in zip(values, array.tolist(), strict=True))
