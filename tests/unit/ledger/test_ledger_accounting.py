"""The ledger as a book of account: conservation, idempotent replays, order independence, PnL."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickwise.ledger import MICROS, Ledger, to_micros
from tickwise.model.ids import client_order_ids
from tickwise.model.orders import ExecutionBatch, OrderState

CLIENTS = [3, 7, 11]
START_CASH = [10_000.0, 2_500.5, 0.0]


def fills(
    client: Sequence[int],
    instrument: Sequence[int],
    side: Sequence[int],
    qty: Sequence[float],
    price: Sequence[float],
    fee: Sequence[float] | None = None,
    signal: Sequence[int] | None = None,
) -> ExecutionBatch:
    n = len(client)
    sig = np.arange(1, n + 1, dtype=np.int64) if signal is None else np.asarray(signal, np.int64)
    zeros = np.zeros(n, np.int64)
    return ExecutionBatch(
        client_order_id=client_order_ids(sig, np.asarray(client)),
        signal_id=sig,
        client=np.asarray(client, np.int32),
        venue=np.zeros(n, np.uint8),
        instrument=np.asarray(instrument, np.uint32),
        side=np.asarray(side, np.int8),
        state=np.full(n, OrderState.FILLED, np.int8),
        reason=np.zeros(n, np.int8),
        fill_qty=np.asarray(qty, np.float64),
        fill_price=np.asarray(price, np.float64),
        fee=np.zeros(n) if fee is None else np.asarray(fee, np.float64),
        ts_event=zeros,
        ts_recv=zeros,
        ts_sent=zeros,
        ts_ack=zeros,
    )


# Quantities in 1/8 units and prices in cents keep the dict model's sums exact.
fill_rows = st.lists(
    st.tuples(
        st.sampled_from(CLIENTS),
        st.integers(0, 2),
        st.sampled_from([1, -1]),
        st.integers(1, 80).map(lambda k: k / 8),
        st.integers(1, 50_000).map(lambda c: c / 100),
        st.integers(0, 300).map(lambda c: c / 100),
    ),
    min_size=1,
    max_size=40,
)


def batch_of(rows: list[tuple[int, int, int, float, float, float]]) -> ExecutionBatch:
    client, inst, side, qty, price, fee = (list(col) for col in zip(*rows, strict=True))
    return fills(client, inst, side, qty, price, fee)


@settings(max_examples=150, deadline=None)
@given(fill_rows)
def test_cash_plus_cost_basis_equals_start_plus_realised_for_every_client(rows: list) -> None:
    ledger = Ledger(CLIENTS, START_CASH)
    ledger.apply(batch_of(rows))
    cost = ledger.cost_basis_u()
    for row, client in enumerate(CLIENTS):
        snap = ledger.snapshot(client)
        assert snap.cash_u + int(cost[row]) == to_micros(START_CASH[row]) + snap.realised_u
    model: dict[tuple[int, int], float] = {}
    for client, inst, side, qty, _, _ in rows:
        model[(client, inst)] = model.get((client, inst), 0.0) + side * qty
    for client in CLIENTS:
        expected = {i: q for (c, i), q in model.items() if c == client and q != 0.0}
        assert ledger.snapshot(client).positions == expected
    assert ledger.totals()["fees_usd"] == pytest.approx(sum(r[5] for r in rows))


@settings(max_examples=100, deadline=None)
@given(fill_rows, st.data())
def test_replaying_fills_after_a_reconnect_changes_nothing(rows: list, data: st.DataObject) -> None:
    batch = batch_of(rows)
    ledger = Ledger(CLIENTS, START_CASH)
    ledger.apply(batch)
    before = [ledger.snapshot(c) for c in CLIENTS]
    replay = data.draw(st.lists(st.integers(0, len(rows) - 1), min_size=1, max_size=10))
    applied = ledger.apply(batch.take(np.asarray(replay)))
    assert applied == 0
    assert [ledger.snapshot(c) for c in CLIENTS] == before
    assert ledger.counters["duplicate_fills"] == len(replay)


@settings(max_examples=100, deadline=None)
@given(fill_rows, st.randoms(use_true_random=False))
def test_interleaving_of_different_clients_fills_does_not_matter(
    rows: list, rnd: random.Random
) -> None:
    batch = batch_of(rows)
    # Shuffle the rows but keep each client's own fills in their original order.
    labels = [r[0] for r in rows]
    rnd.shuffle(labels)
    queues = {c: [i for i, r in enumerate(rows) if r[0] == c] for c in CLIENTS}
    order = np.asarray([queues[c].pop(0) for c in labels])
    in_order, shuffled = Ledger(CLIENTS, START_CASH), Ledger(CLIENTS, START_CASH)
    in_order.apply(batch)
    shuffled.apply(batch.take(order[:5]))
    shuffled.apply(batch.take(order[5:]))
    assert [in_order.snapshot(c) for c in CLIENTS] == [shuffled.snapshot(c) for c in CLIENTS]


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 10_000).map(lambda k: k / 16),
    st.integers(1, 1_000_000).map(lambda c: c / 100),
    st.integers(1, 1_000_000).map(lambda c: c / 100),
    st.integers(0, 500).map(lambda c: c / 100),
    st.integers(0, 500).map(lambda c: c / 100),
)
def test_buy_then_sell_all_realises_the_price_difference_less_fees(
    qty: float, buy: float, sell: float, fee_in: float, fee_out: float
) -> None:
    ledger = Ledger([1], [1e9])
    ledger.apply(fills([1, 1], [0, 0], [1, -1], [qty, qty], [buy, sell], [fee_in, fee_out]))
    snap = ledger.snapshot(1)
    expected = int(to_micros(qty * sell) - to_micros(qty * buy) - to_micros(fee_in + 0.0))
    expected -= int(to_micros(fee_out))
    assert snap.realised_u == expected
    assert snap.realised_usd == pytest.approx((sell - buy) * qty - fee_in - fee_out, abs=1e-5)
    assert snap.positions == {}
    assert snap.cash_u == to_micros(1e9) + snap.realised_u


def test_partial_sell_releases_average_cost_and_marks_the_rest() -> None:
    ledger = Ledger([1], [10_000.0])
    ledger.apply(fills([1, 1, 1], [0, 0, 0], [1, 1, -1], [10, 30, 20], [100.0, 120.0, 130.0]))
    snap = ledger.snapshot(1)
    assert snap.positions == {0: 20.0}
    assert snap.avg_cost[0] == pytest.approx(115.0)
    assert snap.realised_usd == pytest.approx(20 * (130.0 - 115.0))
    ledger.mark([0], [110.0])
    assert ledger.snapshot(1).unrealised_usd == pytest.approx(20 * (110.0 - 115.0))
    assert ledger.totals()["unrealised_pnl_usd"] == pytest.approx(-100.0)


def test_a_sell_beyond_the_position_flips_it_short_at_the_sell_price() -> None:
    ledger = Ledger([1], [1_000.0])
    ledger.apply(fills([1, 1], [2, 2], [1, -1], [1, 3], [100.0, 110.0]))
    snap = ledger.snapshot(1)
    assert snap.positions == {2: -2.0}
    assert snap.avg_cost[2] == pytest.approx(110.0)
    assert snap.realised_usd == pytest.approx(10.0)


def test_cash_is_rounded_half_even_to_the_micro_dollar() -> None:
    ledger = Ledger([1], [0.0])
    # 0.5 µ$ rounds to 0 and 1.5 µ$ to 2 (half-even), not both up.
    ledger.apply(fills([1, 1], [0, 1], [-1, -1], [1.0, 1.0], [0.5e-6, 1.5e-6]))
    assert ledger.snapshot(1).cash_u == 2
    assert MICROS == 1_000_000


def test_rejected_rows_and_unknown_clients() -> None:
    ledger = Ledger([1], [100.0])
    rejected = fills([1], [0], [1], [0.0], [0.0])
    assert ledger.apply(rejected) == 0
    with pytest.raises(ValueError, match="unknown client 9"):
        ledger.apply(fills([1, 9], [0, 0], [1, 1], [1.0, 1.0], [1.0, 1.0]))
    assert ledger.snapshot(1).cash_u == to_micros(100.0)
    assert ledger.totals()["fills_applied"] == 0
