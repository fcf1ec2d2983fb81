"""The fat-finger band: the check itself, how the reference follows a real move, and the
allocator refusing an out-of-band signal for every holder."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from execution_helpers import REGISTRY, T0, make_book, portfolio, signals

from tickwise.execution.allocator import Allocator, AllocatorConfig
from tickwise.execution.price_band import PriceBand
from tickwise.model.instruments import Venue
from tickwise.model.signals import SignalBatch


def admit(band: PriceBand, instruments: Sequence[int], prices: Sequence[float]) -> list[bool]:
    mask = band.admit(np.array(instruments, dtype=np.intp), np.array(prices, dtype=np.float64))
    return [bool(x) for x in mask]


def seeded(band_share: float, confirmations: int = 3, n: int = 4) -> PriceBand:
    """A band whose instruments 0..n-1 all have reference 100."""
    band = PriceBand(n, band_share, confirmations)
    assert admit(band, range(n), [100.0] * n) == [True] * n
    return band


def test_the_first_signal_seeds_the_reference() -> None:
    band = PriceBand(3, 0.1, 3)
    assert np.isnan(band.reference()).all()
    assert admit(band, [2], [250.0]) == [True]
    assert band.reference()[2] == 250.0 and np.isnan(band.reference()[:2]).all()


def test_the_band_edge_is_inside_and_one_cent_beyond_is_outside() -> None:
    band = seeded(0.25)
    assert admit(band, [0, 1, 2, 3], [125.0, 75.0, 125.01, 74.99]) == [True, True, False, False]
    np.testing.assert_array_equal(band.reference(), [125.0, 75.0, 100.0, 100.0])


def test_an_accepted_price_becomes_the_reference() -> None:
    band = seeded(0.1, n=1)
    assert admit(band, [0], [109.0]) == [True]
    assert admit(band, [0], [119.0]) == [True]  # within 10 % of 109, not of 100
    assert band.reference()[0] == 119.0


def test_a_lone_bad_print_is_refused_and_leaves_the_reference() -> None:
    band = seeded(0.1, n=1)
    assert admit(band, [0], [1_000.0]) == [False]  # a decimal slip
    assert band.reference()[0] == 100.0
    assert admit(band, [0], [101.0]) == [True]  # the good prices after it still trade


def test_a_lasting_move_is_followed_after_the_confirmations() -> None:
    band = seeded(0.1, confirmations=3, n=1)
    assert admit(band, [0], [130.0]) == [False]
    assert admit(band, [0], [131.0]) == [False]
    assert band.reference()[0] == 100.0
    assert admit(band, [0], [129.0]) == [False]  # the third agreeing signal confirms 129
    assert band.reference()[0] == 129.0
    assert admit(band, [0], [132.0]) == [True]


def test_a_disagreeing_refusal_restarts_the_run() -> None:
    band = seeded(0.1, confirmations=2, n=1)
    assert admit(band, [0], [130.0]) == [False]
    assert admit(band, [0], [300.0]) == [False]  # not within 10 % of 130: a new run of one
    assert band.reference()[0] == 100.0
    assert admit(band, [0], [310.0]) == [False]  # agrees with 300: the run of two confirms
    assert band.reference()[0] == 310.0


def test_an_accepted_signal_clears_the_run() -> None:
    band = seeded(0.1, confirmations=2, n=1)
    assert admit(band, [0], [130.0]) == [False]
    assert admit(band, [0], [100.0]) == [True]
    assert admit(band, [0], [130.0]) == [False]  # one again, not two
    assert band.reference()[0] == 100.0


def test_one_confirmation_moves_the_reference_to_each_refused_price() -> None:
    band = seeded(0.1, confirmations=1, n=1)
    assert admit(band, [0], [150.0]) == [False]
    assert band.reference()[0] == 150.0
    assert admit(band, [0], [151.0]) == [True]


def test_instruments_keep_their_own_references_and_runs() -> None:
    band = seeded(0.1, confirmations=2, n=2)
    assert admit(band, [0, 1], [150.0, 101.0]) == [False, True]
    assert admit(band, [1, 0], [150.0, 151.0]) == [False, False]
    np.testing.assert_array_equal(band.reference(), [151.0, 101.0])


def test_a_zero_band_accepts_every_price_but_keeps_the_reference_current() -> None:
    band = seeded(0.0, n=1)
    assert admit(band, [0], [5_000.0]) == [True]
    assert band.reference()[0] == 5_000.0


@pytest.mark.parametrize(("share", "confirmations"), [(-0.1, 3), (float("nan"), 3), (0.1, 0)])
def test_a_band_needs_a_share_and_at_least_one_confirmation(
    share: float, confirmations: int
) -> None:
    with pytest.raises(ValueError, match=r"band|confirmations"):
        PriceBand(2, share, confirmations)


# --- in the allocator ---------------------------------------------------------------------------


def three_clients(**config: float) -> Allocator:
    book = make_book([Venue.ALPACA] * 3, [10_000.0] * 3, [(c, 0, 1.0) for c in range(3)])
    return Allocator(book, [portfolio(0, {1: 0.5, 2: 0.5})], REGISTRY, AllocatorConfig(**config))


def test_an_out_of_band_signal_is_refused_for_every_holder_and_counted_once() -> None:
    alloc = three_clients(price_band_pct=10.0)
    assert len(alloc.on_signals(signals([1], [0.5], [100.0], 1), T0)) == 3
    assert len(alloc.on_signals(signals([1], [1.0], [111.0], 2), T0)) == 0
    c = alloc.counters
    assert c["signals_price_band"] == 1 and c["signals_accepted"] == 1 and c["candidates"] == 3
    assert alloc.reference_prices()[1] == 100.0


def test_the_allocator_trades_again_once_a_move_is_confirmed() -> None:
    alloc = three_clients(price_band_pct=10.0, price_band_confirmations=2, fee_buffer_bps=0.0)
    alloc.on_signals(signals([1], [0.5], [100.0], 1), T0)
    assert len(alloc.on_signals(signals([1], [1.0], [150.0], 2), T0)) == 0
    assert len(alloc.on_signals(signals([1], [1.0], [151.0], 3), T0)) == 0
    orders = alloc.on_signals(signals([1], [1.0], [152.0], 4), T0)
    assert len(orders) == 3 and (orders.price == 152.0).all()
    assert alloc.counters["signals_price_band"] == 2


def test_two_signals_of_one_batch_are_banded_in_order() -> None:
    alloc = three_clients(price_band_pct=10.0)
    batch = SignalBatch.concat([signals([1], [0.5], [100.0], 1), signals([1], [1.0], [200.0], 2)])
    orders = alloc.on_signals(batch, T0)
    assert len(orders) == 3 and (orders.price == 100.0).all()  # the second is out of band
    assert alloc.counters["signals_price_band"] == 1


def test_a_zero_band_lets_any_valid_price_through() -> None:
    alloc = three_clients(price_band_pct=0.0, max_daily_loss_pct=0.0)
    alloc.on_signals(signals([1], [0.5], [100.0], 1), T0)
    assert len(alloc.on_signals(signals([1], [0.8], [400.0], 2), T0)) == 3
    assert alloc.counters["signals_price_band"] == 0
