"""Max daily loss: the incremental mark-to-market equity, the day boundary, and the allocator
refusing buys (never sells) to a client past its limit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from execution_helpers import REGISTRY, T0, make_book, outcomes, portfolio, signals

from tickwise.execution.allocator import Allocator, AllocatorConfig
from tickwise.execution.daily_loss import DAY_NS, DailyLoss
from tickwise.model.instruments import Venue
from tickwise.model.orders import OrderState


def rows(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.intp)


def a(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


# --- the tracker --------------------------------------------------------------------------------


def test_the_first_clock_reading_starts_the_day_and_a_new_utc_date_starts_the_next() -> None:
    loss = DailyLoss(a(1.0), 1, 0.05)
    midnight = (T0 // DAY_NS + 1) * DAY_NS
    assert not loss.new_day(midnight - 1)
    assert not loss.new_day(midnight - 2)  # a clock a little behind is still the same day
    assert loss.new_day(midnight)
    assert not loss.new_day(midnight + DAY_NS - 1)
    assert not loss.new_day(midnight - 10)  # back across midnight: no new day
    assert loss.new_day(midnight + DAY_NS)


def test_marks_and_moves_keep_equity_and_a_first_mark_is_not_a_gain() -> None:
    cash = a(1_000.0, 1_000.0)
    loss = DailyLoss(cash, 2, 0.05)
    # Client 0 holds 10 of instrument 0 from before any price (a restored position).
    loss.remark(rows(0), a(5.0), sig=rows(0, 0), row=rows(0, 1), position=a(10.0, 0.0))
    np.testing.assert_allclose(loss.equity(cash), [1_050.0, 1_000.0])
    np.testing.assert_allclose(loss.start_equity(), [1_050.0, 1_000.0])
    loss.remark(rows(0), a(4.0), sig=rows(0, 0), row=rows(0, 1), position=a(10.0, 0.0))
    np.testing.assert_allclose(loss.equity(cash), [1_040.0, 1_000.0])
    np.testing.assert_allclose(loss.start_equity(), [1_050.0, 1_000.0])  # a real loss of 10
    loss.moved(rows(1), a(3.0), 0)  # client 1 bought 3 at the mark (cash is the caller's)
    np.testing.assert_allclose(loss.equity(a(1_000.0, 988.0)), [1_040.0, 1_000.0])


def test_the_loss_limit_edge_is_allowed_and_a_cent_beyond_is_not() -> None:
    loss = DailyLoss(a(1_000.0, 1_000.0), 1, 0.05)
    over = loss.over_limit(rows(0, 1), a(950.0, 949.99))
    assert over.tolist() == [False, True]
    assert not DailyLoss(a(1_000.0), 1, 0.0).over_limit(rows(0), a(1.0)).any()


def test_rebase_recomputes_the_marked_positions_and_starts_the_day_there() -> None:
    cash = a(500.0)
    loss = DailyLoss(cash, 2, 0.05)
    loss.remark(rows(0, 1), a(10.0, 20.0), sig=rows(), row=rows(), position=a())
    loss.rebase(cash, row=rows(0, 0), position=a(3.0, 2.0), instrument=rows(0, 1))
    np.testing.assert_allclose(loss.equity(cash), [500.0 + 30.0 + 40.0])
    np.testing.assert_allclose(loss.start_equity(), [570.0])


@pytest.mark.parametrize("limit", [-0.01, 1.5, float("nan")])
def test_the_limit_is_a_share(limit: float) -> None:
    with pytest.raises(ValueError, match="limit"):
        DailyLoss(a(1.0), 1, limit)


# --- in the allocator ---------------------------------------------------------------------------


def one_client(**config: Any) -> Allocator:
    """One client with $10,000 all in a portfolio holding stock 1 only; half invested at $100
    (50 shares, $5,000 cash left). No fee buffer, a wide band, no age limit."""
    settings: dict[str, Any] = {
        "fee_buffer_bps": 0.0,
        "price_band_pct": 20.0,
        "max_quote_age_ms": 0.0,
        "max_daily_loss_pct": 5.0,
    }
    settings.update(config)
    book = make_book([Venue.ALPACA], [10_000.0], [(0, 0, 1.0)])
    alloc = Allocator(book, [portfolio(0, {1: 1.0})], REGISTRY, AllocatorConfig(**settings))
    bought = alloc.on_signals(signals([1], [0.5], [100.0], 1), T0)
    assert bought.qty.tolist() == [50.0] and alloc.equity() == pytest.approx([10_000.0])
    return alloc


def test_a_loss_of_exactly_the_limit_still_buys() -> None:
    alloc = one_client()
    orders = alloc.on_signals(signals([1], [1.0], [90.0], 2), T0)  # loses $500 = 5.00 %
    assert orders.side.tolist() == [1]
    assert alloc.counters["risk_max_daily_loss"] == 0


def test_past_the_limit_buys_are_refused_and_sells_still_go() -> None:
    alloc = one_client()
    assert len(alloc.on_signals(signals([1], [1.0], [89.99], 2), T0)) == 0  # loses $500.50
    assert alloc.counters["risk_max_daily_loss"] == 1
    assert alloc.equity() == pytest.approx([5_000.0 + 50 * 89.99])
    sold = alloc.on_signals(signals([1], [0.2], [89.9], 3), T0)
    assert sold.side.tolist() == [-1] and sold.qty[0] == pytest.approx(50 - 2_000.0 / 89.9)
    assert alloc.counters["risk_max_daily_loss"] == 1


def test_a_refused_fat_finger_price_does_not_mark_the_positions() -> None:
    alloc = one_client()
    assert len(alloc.on_signals(signals([1], [1.0], [10.0], 2), T0)) == 0  # out of band
    assert alloc.equity() == pytest.approx([10_000.0])
    assert alloc.on_signals(signals([1], [1.0], [100.5], 3), T0).side.tolist() == [1]
    assert alloc.counters["risk_max_daily_loss"] == 0


def test_a_new_utc_day_starts_from_the_equity_at_its_start() -> None:
    alloc = one_client()
    alloc.on_signals(signals([1], [1.0], [89.99], 2), T0)
    assert alloc.counters["risk_max_daily_loss"] == 1
    next_day = (T0 // DAY_NS + 1) * DAY_NS
    orders = alloc.on_signals(signals([1], [1.0], [89.99], 3), next_day)
    assert orders.side.tolist() == [1]
    assert alloc.day_start_equity() == pytest.approx([5_000.0 + 50 * 89.99])


def test_a_zero_limit_never_refuses_a_buy() -> None:
    alloc = one_client(max_daily_loss_pct=0.0, price_band_pct=0.0)
    assert alloc.on_signals(signals([1], [1.0], [50.0], 2), T0).side.tolist() == [1]  # -25 %
    assert alloc.counters["risk_max_daily_loss"] == 0


def test_fills_at_a_worse_price_and_returned_remainders_move_the_equity() -> None:
    alloc = one_client()
    more = alloc.on_signals(signals([1], [0.7], [100.0], 2), T0)  # 20 more shares
    assert more.qty.tolist() == [20.0]
    alloc.apply_executions(outcomes(more, OrderState.PARTIALLY_FILLED, a(5.0), 101.0, fee=1.0))
    assert alloc.equity() == pytest.approx([10_000.0 - 5.0 - 1.0])
    alloc.apply_executions(outcomes(more, OrderState.CANCELED))  # 15 never filled
    assert alloc.equity() == pytest.approx([10_000.0 - 6.0])
    assert alloc.expected_positions(1) == pytest.approx([55.0])


def test_restored_positions_count_from_their_first_price_not_as_a_gain() -> None:
    book = make_book([Venue.ALPACA], [10_000.0], [(0, 0, 1.0)])
    config = AllocatorConfig(fee_buffer_bps=0.0, max_quote_age_ms=0.0)
    alloc = Allocator(book, [portfolio(0, {1: 1.0})], REGISTRY, config)
    alloc.restore(client=[0], instrument=[1], qty=[50.0], cash=[5_000.0])
    assert alloc.equity() == pytest.approx([5_000.0]) and alloc.day_start_equity() == [5_000.0]
    alloc.on_signals(signals([1], [0.5], [100.0], 1), T0)
    assert alloc.equity() == pytest.approx([10_000.0])
    assert alloc.day_start_equity() == pytest.approx([10_000.0])
    assert alloc.on_signals(signals([1], [1.0], [94.0], 2), T0).side.tolist() == [1]  # -3 %
