"""The allocator: sizing, rounding, bands, risk, optimistic state and its settlement."""

from __future__ import annotations

import numpy as np
import pytest
from execution_helpers import (
    REGISTRY,
    T0,
    make_book,
    one_stock_allocator,
    outcomes,
    portfolio,
    signals,
)

from tickwise.execution.allocator import Allocator, AllocatorConfig
from tickwise.model.ids import client_order_ids
from tickwise.model.instruments import AssetClass, InstrumentRegistry, Venue
from tickwise.model.orders import ExecutionBatch, OrderBatch, OrderState
from tickwise.model.signals import SignalBatch

# --- sizing -----------------------------------------------------------------------------------


def test_a_signal_sizes_the_order_from_equity_coefficient_weight_and_price() -> None:
    alloc = one_stock_allocator()
    orders = alloc.on_signals(signals([1], [1.0], [100.0], 1), now_ns=T0 + 99)
    assert len(orders) == 1
    assert orders.side[0] == 1 and orders.qty[0] == pytest.approx(10.0)  # 10,000*0.1/100
    assert orders.venue[0] == Venue.ALPACA and orders.price[0] == 100.0
    assert orders.ts_alloc[0] == T0 + 99
    assert (
        orders.ts_recv[0] == orders.ts_event[0] + 10
        and orders.ts_signal[0] == orders.ts_event[0] + 20
    )
    assert orders.client_order_id[0] == client_order_ids(orders.signal_id, [0])[0]


def test_holding_an_instrument_through_two_portfolios_nets_into_one_order() -> None:
    book = make_book([Venue.ALPACA], [10_000.0], [(0, 0, 0.5), (0, 1, 0.3)])
    both = [portfolio(0, {1: 0.2, 2: 0.8}), portfolio(1, {1: 0.5, 3: 0.5})]
    alloc = Allocator(book, both, REGISTRY)
    assert alloc.coefficients(1) == pytest.approx([0.5 * 0.2 + 0.3 * 0.5])
    orders = alloc.on_signals(signals([1], [1.0], [50.0], 1), T0)
    assert len(orders) == 1 and orders.qty[0] == pytest.approx(10_000 * 0.25 / 50.0)


def test_etrade_trades_whole_shares_only_rounding_toward_zero() -> None:
    alloc = one_stock_allocator(venue=Venue.ETRADE)
    orders = alloc.on_signals(signals([1], [1.0], [93.0], 1), T0)  # 10.75 shares wanted
    assert orders.qty.tolist() == [10.0]


def test_a_change_inside_the_band_sends_nothing() -> None:
    alloc = one_stock_allocator()
    alloc.on_signals(signals([1], [1.0], [100.0], 1), T0)
    # 0.98 of the weight: $980 target vs $1,000 held: $20 < 0.25% of $10,000.
    assert len(alloc.on_signals(signals([1], [0.98], [100.0], 2), T0)) == 0
    assert alloc.counters["below_band"] == 1


def test_binance_min_notional_drops_a_small_crypto_order() -> None:
    book = make_book([Venue.BINANCE], [1_000.0], [(0, 0, 0.1)])
    alloc = Allocator(book, [portfolio(0, {10: 0.04, 11: 0.96}, AssetClass.CRYPTO)], REGISTRY)
    assert len(alloc.on_signals(signals([10], [1.0], [30_000.0], 1), T0)) == 0  # $4 < $5
    assert alloc.counters["below_min_notional"] == 1


def test_exiting_sells_exactly_the_position_and_never_shorts() -> None:
    alloc = one_stock_allocator()
    bought = alloc.on_signals(signals([1], [1.0], [100.0], 1), T0)
    sold = alloc.on_signals(signals([1], [0.0], [105.0], 2), T0)
    assert sold.side.tolist() == [-1] and sold.qty[0] == pytest.approx(bought.qty[0])
    assert alloc.expected_positions(1) == pytest.approx([0.0])
    assert len(alloc.on_signals(signals([1], [0.0], [95.0], 3), T0)) == 0


def test_a_replayed_signal_id_is_ignored() -> None:
    alloc = one_stock_allocator()
    batch = signals([1], [1.0], [100.0], 1)
    assert len(alloc.on_signals(batch, T0)) == 1
    alloc.apply_executions(outcomes(alloc.on_signals(batch, T0), OrderState.REJECTED))
    assert alloc.counters["signals_replayed"] == 1


def test_two_signals_on_one_instrument_in_a_batch_see_each_other() -> None:
    alloc = one_stock_allocator()
    batch = SignalBatch.concat([signals([1], [1.0], [100.0], 1), signals([1], [0.5], [100.0], 2)])
    orders = alloc.on_signals(batch, T0)
    assert orders.side.tolist() == [1, -1]
    assert orders.qty == pytest.approx([10.0, 5.0])
    assert alloc.expected_positions(1) == pytest.approx([5.0])


def test_unusable_signals_are_counted_not_sized() -> None:
    alloc = one_stock_allocator()
    bad = signals([1, 1, 99], [1.0, 1.0, 1.0], [np.nan, -3.0, 10.0], 1)
    assert len(alloc.on_signals(bad, T0)) == 0
    assert alloc.counters["signals_invalid"] == 3


# --- market data: usable, fresh ----------------------------------------------------------------


def test_a_crossed_book_or_a_bad_quote_is_refused_as_invalid() -> None:
    alloc = one_stock_allocator()
    bad = signals([1, 1, 1, 1], [1.0] * 4, [100.0] * 4, 1)
    bad.bid[:] = [100.2, np.nan, -1.0, 99.9]
    bad.ask[:] = [100.1, 100.1, 100.1, np.inf]
    assert len(alloc.on_signals(bad, T0)) == 0
    assert alloc.counters["signals_invalid"] == 4
    locked = signals([1], [1.0], [100.0], 2)
    locked.bid[:] = locked.ask[:] = 100.0  # a locked book is a real quote
    assert len(alloc.on_signals(locked, T0)) == 1


def test_a_signal_exactly_as_old_as_allowed_trades_and_one_ns_older_does_not() -> None:
    limit_ns = 250 * 1_000_000
    batch = signals([1], [1.0], [100.0], 1)
    at_limit = one_stock_allocator(max_quote_age_ms=250.0)
    assert len(at_limit.on_signals(batch, int(batch.ts_event[0]) + limit_ns)) == 1
    past_limit = one_stock_allocator(max_quote_age_ms=250.0)
    assert len(past_limit.on_signals(batch, int(batch.ts_event[0]) + limit_ns + 1)) == 0
    assert past_limit.counters["signals_stale"] == 1
    assert past_limit.counters["signals_accepted"] == 0


def test_a_stale_signal_moves_neither_the_price_reference_nor_the_marks() -> None:
    alloc = one_stock_allocator(max_quote_age_ms=1_000.0, fee_buffer_bps=0.0)
    first = signals([1], [1.0], [100.0], 1)
    alloc.on_signals(first, int(first.ts_event[0]))
    old = signals([1], [1.0], [104.0], 2)
    assert len(alloc.on_signals(old, int(old.ts_event[0]) + 2_000_000_000)) == 0
    assert alloc.reference_prices()[1] == 100.0
    assert alloc.equity() == pytest.approx([10_000.0])  # still marked at 100


def test_a_zero_max_age_never_refuses_and_a_future_stamp_is_not_stale() -> None:
    off = one_stock_allocator(max_quote_age_ms=0.0)
    batch = signals([1], [1.0], [100.0], 1)
    assert len(off.on_signals(batch, int(batch.ts_event[0]) + 86_400 * 10**9)) == 1
    on = one_stock_allocator(max_quote_age_ms=1.0)
    assert len(on.on_signals(batch, int(batch.ts_event[0]) - 5_000_000)) == 1  # clocks apart


def test_the_default_age_admits_what_the_generated_market_stamps() -> None:
    """The generator stamps every tick with the clock it is polled at (in (last poll, now]),
    so a signal allocated one feed interval later is far inside the default age."""
    from tickwise.data.generator import MarketGenerator

    gen = MarketGenerator(REGISTRY, seed=3)
    gen.next_batch(T0)
    ticks = gen.next_batch(T0 + 5_000_000)  # one 5 ms feed batch
    assert len(ticks) > 0 and ticks.ts_event.min() > T0 and ticks.ts_event.max() <= T0 + 5_000_000
    alloc = one_stock_allocator()  # defaults
    batch = signals([1] * len(ticks), [1.0] * len(ticks), [100.0] * len(ticks), 0)
    batch.ts_event[:] = ticks.ts_event
    batch.signal_id[:] = np.arange(len(ticks))
    alloc.on_signals(batch, T0 + 5_000_000 + 50_000_000)  # allocated 50 ms after the feed cut
    assert alloc.counters["signals_stale"] == 0
    assert alloc.counters["signals_accepted"] == len(ticks)


# --- risk -------------------------------------------------------------------------------------


def test_a_buy_is_clipped_to_the_max_position_weight() -> None:
    book = make_book([Venue.ALPACA], [10_000.0], [(0, 0, 1.0)], max_position_weight=0.2)
    alloc = Allocator(book, [portfolio(0, {1: 0.5, 2: 0.5})], REGISTRY)
    orders = alloc.on_signals(signals([1], [1.0], [100.0], 1), T0)
    assert orders.qty == pytest.approx([20.0])  # $2,000 = 20% of equity, not $5,000
    assert alloc.counters["risk_max_position_clipped"] == 1


def test_an_order_over_the_max_order_notional_is_rejected() -> None:
    book = make_book([Venue.ALPACA], [10_000.0], [(0, 0, 1.0)], max_order_fraction=0.25)
    alloc = Allocator(book, [portfolio(0, {1: 0.5, 2: 0.5})], REGISTRY)
    assert len(alloc.on_signals(signals([1], [1.0], [100.0], 1), T0)) == 0
    assert alloc.counters["risk_max_order_notional"] == 1
    assert alloc.expected_positions(1) == pytest.approx([0.0])


def test_buys_are_clipped_to_the_expected_cash_with_a_fee_buffer() -> None:
    book = make_book([Venue.ALPACA], [10_000.0], [(0, 0, 1.0)])
    alloc = Allocator(
        book, [portfolio(0, {1: 0.5, 2: 0.5})], REGISTRY, AllocatorConfig(fee_buffer_bps=100)
    )
    first = alloc.on_signals(signals([1, 2], [1.0, 1.0], [100.0, 100.0], 1), T0)
    # $10,000 of buys plus a 1% buffer do not fit in $10,000 of cash: both are scaled.
    assert alloc.counters["risk_buying_power_clipped"] == 2
    assert (first.qty * first.price * 1.01).sum() <= 10_000.0 + 1e-6
    assert alloc.expected_cash()[0] >= -1e-6


def test_buying_power_can_reject_instead_of_clipping() -> None:
    book = make_book([Venue.ALPACA], [10_000.0], [(0, 0, 1.0)])
    config = AllocatorConfig(fee_buffer_bps=100, clip_to_buying_power=False)
    alloc = Allocator(book, [portfolio(0, {1: 0.5, 2: 0.5})], REGISTRY, config)
    assert len(alloc.on_signals(signals([1, 2], [1.0, 1.0], [100.0, 100.0], 1), T0)) == 0
    assert alloc.counters["risk_buying_power"] == 2


# --- executions -------------------------------------------------------------------------------


def test_a_rejected_order_is_returned_to_position_and_cash_so_it_is_retried() -> None:
    alloc = one_stock_allocator(fee_buffer_bps=0)
    orders = alloc.on_signals(signals([1], [1.0], [100.0], 1), T0)
    assert alloc.expected_cash() == pytest.approx([9_000.0])
    alloc.apply_executions(outcomes(orders, OrderState.REJECTED))
    assert alloc.expected_positions(1) == pytest.approx([0.0])
    assert alloc.expected_cash() == pytest.approx([10_000.0])
    assert alloc.open_orders() == 0
    assert len(alloc.on_signals(signals([1], [1.0], [100.0], 2), T0)) == 1


def test_a_fill_books_its_real_price_and_fee() -> None:
    alloc = one_stock_allocator(fee_buffer_bps=50)
    orders = alloc.on_signals(signals([1], [1.0], [100.0], 1), T0)
    alloc.apply_executions(outcomes(orders, OrderState.FILLED, orders.qty.copy(), 100.2, fee=0.3))
    assert alloc.expected_cash() == pytest.approx([10_000.0 - 10 * 100.2 - 0.3])
    assert alloc.expected_positions(1) == pytest.approx([10.0])


def test_a_cancel_after_a_partial_fill_keeps_only_the_filled_part() -> None:
    alloc = one_stock_allocator(fee_buffer_bps=0)
    orders = alloc.on_signals(signals([1], [1.0], [100.0], 1), T0)
    alloc.apply_executions(outcomes(orders, OrderState.PARTIALLY_FILLED, np.array([4.0])))
    alloc.apply_executions(outcomes(orders, OrderState.CANCELED))
    assert alloc.expected_positions(1) == pytest.approx([4.0])
    assert alloc.expected_cash() == pytest.approx([10_000.0 - 400.0])


def test_replayed_and_foreign_outcomes_change_nothing() -> None:
    alloc = one_stock_allocator(fee_buffer_bps=0)
    orders = alloc.on_signals(signals([1], [1.0], [100.0], 1), T0)
    filled = outcomes(orders, OrderState.FILLED, orders.qty.copy())
    alloc.apply_executions(ExecutionBatch.concat([filled, filled]))
    alloc.apply_executions(filled)
    assert alloc.expected_cash() == pytest.approx([9_000.0])
    assert alloc.counters["executions_replayed"] == 1  # the one inside the batch
    assert alloc.counters["executions_unmatched"] == 1  # the later one: signal closed
    stranger = outcomes(orders, OrderState.FILLED, orders.qty.copy())
    stranger.signal_id[:] += 12345
    alloc.apply_executions(stranger)
    assert alloc.counters["executions_unmatched"] == 2
    assert alloc.expected_cash() == pytest.approx([9_000.0])


# --- scale and sharding -----------------------------------------------------------------------


def test_sharded_allocators_make_the_same_orders_as_one(tiny_registry: InstrumentRegistry) -> None:
    from tickwise.store.seeding import generate_clients

    universe = generate_clients(tiny_registry, count=1_000, seed=11, all_follow_portfolio=True)
    batch = signals([0, 5, 44], [1.0, 0.7, 0.4], [180.0, 35.5, 2_500.0], 1)
    whole = Allocator(universe.book, universe.portfolios, tiny_registry).on_signals(batch, T0)
    ids = universe.book.client_id
    parts = [
        Allocator(universe.book.select(ids[lo:hi]), universe.portfolios, tiny_registry)
        for lo, hi in ((0, 300), (300, 700), (700, 1000))
    ]
    sharded = OrderBatch.concat([p.on_signals(batch, T0) for p in parts])
    assert len(whole) > 500
    assert sorted(whole.client_order_id.tolist()) == sorted(sharded.client_order_id.tolist())
    key = np.argsort(whole.client_order_id)
    skey = np.argsort(sharded.client_order_id)
    np.testing.assert_allclose(whole.qty[key], sharded.qty[skey])


def test_restore_sets_expected_positions_from_a_rebuilt_state() -> None:
    alloc = one_stock_allocator()
    skipped = alloc.restore(
        client=[0, 0, 7], instrument=[1, 5, 1], qty=[10.0, 3.0, 1.0], cash=[9_000.0]
    )
    assert skipped == 2  # instrument 5 is not held; client 7 is not in this book
    assert alloc.expected_positions(1) == pytest.approx([10.0])
    assert len(alloc.on_signals(signals([1], [1.0], [100.0], 1), T0)) == 0


def test_an_allocator_rebuilt_from_recorded_fills_matches_the_one_that_traded() -> None:
    # The allocator that traded: a buy, filled at a price and fee of the venue's own.
    live = one_stock_allocator()
    orders = live.on_signals(signals([1], [1.0], [100.0], 1), T0)
    assert len(orders) == 1
    fills = outcomes(orders, OrderState.FILLED, orders.qty.copy(), 101.0, fee=0.5)
    live.apply_executions(fills)
    # A fresh allocator restored from those fills (plus a non-fill row, which is ignored).
    rebuilt = one_stock_allocator()
    skipped = rebuilt.restore_fills(
        ExecutionBatch.concat([outcomes(orders, OrderState.ACKED), fills])
    )
    assert skipped == 0
    assert rebuilt.expected_positions(1) == pytest.approx(live.expected_positions(1))
    assert rebuilt.expected_cash() == pytest.approx(live.expected_cash())
    # Same state, same decisions: the next signal sizes the same order in both.
    nxt = signals([1], [0.5], [100.0], 2)
    a, b = live.on_signals(nxt, T0 + 1), rebuilt.on_signals(nxt, T0 + 1)
    assert a.qty.tolist() == pytest.approx(b.qty.tolist())
    assert a.side.tolist() == b.side.tolist()


def test_fills_of_orders_it_did_not_create_are_booked_once_after_a_restart() -> None:
    live = one_stock_allocator()
    first = live.on_signals(signals([1], [1.0], [100.0], 1), T0)
    second = live.on_signals(signals([1], [0.5], [104.0], 2), T0 + 1)
    assert len(first) == len(second) == 1
    recorded = outcomes(first, OrderState.FILLED, first.qty.copy(), 101.0, fee=0.5)
    late = outcomes(second, OrderState.FILLED, second.qty.copy(), 103.0, fee=0.25)
    live.apply_executions(ExecutionBatch.concat([recorded, late]))
    # Restarted while `second` was unanswered in the store: only `first` is restored; the
    # fill of `second` arrives afterwards (settled with the venue), then again (a replay).
    rebuilt = one_stock_allocator()
    rebuilt.restore_fills(recorded)
    rebuilt.apply_executions(late)
    rebuilt.apply_executions(ExecutionBatch.concat([late, recorded]))
    assert rebuilt.counters["late_fills_booked"] == 1
    assert rebuilt.expected_positions(1) == pytest.approx(live.expected_positions(1))
    assert rebuilt.expected_cash() == pytest.approx(live.expected_cash())
