"""Kill switch in the allocator: desk-wide, per client and per portfolio halts."""

from __future__ import annotations

import numpy as np
from execution_helpers import REGISTRY, T0, make_book, portfolio, signals

from tickwise.execution.allocator import Allocator, AllocatorConfig
from tickwise.execution.holdings import build_holdings, entries_through
from tickwise.model.instruments import Venue
from tickwise.model.orders import OrderBatch

# Client 0 holds stock 1 through both portfolios (netted), 2 through p0 and 3 through p1;
# client 1 holds 1 and 3 through p1 only; client 2 holds 1 and 2 through p0 only.
BOOK = make_book(
    [Venue.ALPACA] * 3,
    [10_000.0] * 3,
    [(0, 0, 0.5), (0, 1, 0.5), (1, 1, 1.0), (2, 0, 1.0)],
)
PORTFOLIOS = [portfolio(0, {1: 0.5, 2: 0.5}), portfolio(1, {1: 0.5, 3: 0.5})]


def allocator() -> Allocator:
    return Allocator(BOOK, PORTFOLIOS, REGISTRY, AllocatorConfig(fee_buffer_bps=0.0))


def pairs(orders: OrderBatch) -> set[tuple[int, int]]:
    return set(zip(orders.client.tolist(), orders.instrument.tolist(), strict=True))


def test_a_global_halt_stops_every_order_until_it_is_lifted() -> None:
    alloc = allocator()
    alloc.set_halts(True, [], [])
    assert len(alloc.on_signals(signals([1, 2, 3], [1.0] * 3, [100.0] * 3, 1), T0)) == 0
    assert alloc.counters["halted"] == 7  # every (client, instrument) pair had a trade to do
    alloc.set_halts(False, [], [])
    orders = alloc.on_signals(signals([1, 2, 3], [1.0] * 3, [100.0] * 3, 2), T0)
    assert len(orders) == 7 and alloc.counters["halted"] == 7


def test_a_client_halt_stops_that_client_only_and_unknown_ids_are_ignored() -> None:
    alloc = allocator()
    alloc.set_halts(False, [], [1, 99])
    orders = alloc.on_signals(signals([1, 3], [1.0, 1.0], [100.0, 100.0], 1), T0)
    assert pairs(orders) == {(0, 1), (2, 1), (0, 3)}
    assert alloc.counters["halted"] == 2


def test_a_portfolio_halt_freezes_the_pairs_it_trades_netting_included() -> None:
    alloc = allocator()
    alloc.set_halts(False, [0], [])
    orders = alloc.on_signals(signals([1, 2, 3], [1.0] * 3, [100.0] * 3, 1), T0)
    # Stock 1 of clients 0 and 2 comes (also) from p0; client 0's stock 3 is p1's alone.
    assert pairs(orders) == {(1, 1), (0, 3), (1, 3)}
    assert alloc.counters["halted"] == 4


def test_a_portfolio_halt_never_sells_down_the_halted_share() -> None:
    alloc = allocator()
    alloc.on_signals(signals([1, 2, 3], [1.0] * 3, [100.0] * 3, 1), T0)
    held = alloc.expected_positions(1).copy()
    alloc.set_halts(False, [0], [])
    same = alloc.on_signals(signals([1, 2, 3], [1.0] * 3, [100.0] * 3, 2), T0)
    assert len(same) == 0 and alloc.counters["halted"] == 0  # nothing to do, nothing refused
    lower = alloc.on_signals(signals([1], [0.5], [100.0], 3), T0)
    assert pairs(lower) == {(1, 1)} and lower.side.tolist() == [-1]
    assert alloc.counters["halted"] == 2
    np.testing.assert_allclose(alloc.expected_positions(1)[[0, 2]], held[[0, 2]])


def test_a_new_set_of_halts_replaces_the_old_one() -> None:
    alloc = allocator()
    alloc.set_halts(True, [0], [0, 1, 2])
    alloc.set_halts(False, [], [2])
    orders = alloc.on_signals(signals([1], [1.0], [100.0], 1), T0)
    assert pairs(orders) == {(0, 1), (1, 1)}


def test_prices_keep_moving_the_references_while_halted() -> None:
    alloc = allocator()  # the default 10 % band
    alloc.on_signals(signals([1], [0.2], [100.0], 1), T0)
    alloc.set_halts(True, [], [])
    assert len(alloc.on_signals(signals([1], [0.5], [108.0], 2), T0)) == 0
    alloc.set_halts(False, [], [])
    orders = alloc.on_signals(signals([1], [0.5], [116.0], 3), T0)  # 16 % from 100, 7 % from 108
    assert len(orders) == 3 and alloc.counters["signals_price_band"] == 0


# --- the holdings lookups behind it -------------------------------------------------------------


def test_locate_finds_held_pairs_and_nothing_else() -> None:
    holdings = build_holdings(BOOK, PORTFOLIOS, len(REGISTRY))
    found, entry = holdings.locate([0, 1, 1, 2, -1, 3, 0], [1, 1, 2, 2, 1, 1, 99])
    assert found.tolist() == [True, True, False, True, False, False, False]
    inst = holdings.instrument_of_entries()
    assert inst[entry[found]].tolist() == [1, 1, 2]
    assert holdings.row[entry[found]].tolist() == [0, 1, 2]


def test_entries_through_a_portfolio_are_its_subscribers_times_its_members() -> None:
    holdings = build_holdings(BOOK, PORTFOLIOS, len(REGISTRY))
    marked = entries_through(holdings, BOOK, PORTFOLIOS, [1, 42])
    inst = holdings.instrument_of_entries()
    got = set(zip(holdings.row[marked].tolist(), inst[marked].tolist(), strict=True))
    assert got == {(0, 1), (0, 3), (1, 1), (1, 3)}
    assert not entries_through(holdings, BOOK, PORTFOLIOS, [42]).any()
