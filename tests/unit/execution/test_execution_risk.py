"""Pre-trade risk checks, one function at a time."""

from __future__ import annotations

import numpy as np

from tickwise.execution.risk import (
    RISK_REASONS,
    below_band,
    below_min_notional,
    cap_sells_at_position,
    clip_to_buying_power,
    clip_to_max_position,
    exceeds_max_order_notional,
    market_data_usable,
    round_down_to_increment,
    stale,
)
from tickwise.model.orders import RejectReason

BUY, SELL = 1, -1


def a(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def sides(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int8)


def test_rounding_goes_toward_zero_and_survives_float_noise() -> None:
    qty = round_down_to_increment(a(0.3, 2.99, 7.0, 0.0000004, -1.0), a(0.1, 1.0, 1.0, 1e-5, 1.0))
    np.testing.assert_allclose(qty, [0.3, 2.0, 7.0, 0.0, 0.0])


def test_a_sell_never_exceeds_the_position() -> None:
    qty = cap_sells_at_position(
        a(5.0, 5.0, 5.0), sides(SELL, SELL, BUY), a(3.0, 9.0, 0.0), a(1, 1, 1)
    )
    np.testing.assert_array_equal(qty, [3.0, 5.0, 5.0])


def test_band_and_min_notional_drop_small_orders() -> None:
    equity = a(10_000.0, 10_000.0)
    assert below_band(a(24.0, 25.0), equity, 0.0025).tolist() == [True, False]
    assert below_min_notional(a(4.99, 5.0), a(5.0, 5.0)).tolist() == [True, False]


def test_a_buy_is_clipped_to_the_max_position_weight_but_a_sell_is_not() -> None:
    # Equity 10,000 at 20% -> at most $2,000 = 20 shares at $100; 15 already held.
    qty = clip_to_max_position(
        a(10.0, 3.0, 10.0),
        sides(BUY, BUY, SELL),
        position=a(15.0, 15.0, 30.0),
        price=a(100.0, 100.0, 100.0),
        equity=a(10_000.0, 10_000.0, 10_000.0),
        max_position_weight=a(0.2, 0.2, 0.2),
        increment=a(1.0, 1.0, 1.0),
    )
    np.testing.assert_array_equal(qty, [5.0, 3.0, 10.0])


def test_a_buy_over_the_limit_of_a_full_position_becomes_zero() -> None:
    qty = clip_to_max_position(a(4.0), sides(BUY), a(25.0), a(100.0), a(10_000.0), a(0.2), a(1.0))
    np.testing.assert_array_equal(qty, [0.0])


def test_orders_over_the_max_order_notional_are_flagged() -> None:
    flagged = exceeds_max_order_notional(a(2_500.0, 2_500.01), a(2_500.0, 2_500.0))
    assert flagged.tolist() == [False, True]


def test_buying_power_scales_all_buys_of_a_client_together() -> None:
    # Client 0 has $1,000 for two $1,000 buys (fee buffer 0): each is halved.
    # Client 1 can afford its buy; its sell is never touched.
    qty = clip_to_buying_power(
        a(10.0, 10.0, 5.0, 50.0),
        sides(BUY, BUY, BUY, SELL),
        client_row=np.array([0, 0, 1, 1]),
        price=a(100.0, 100.0, 100.0, 100.0),
        cash=a(1_000.0, 600.0),
        fee_buffer=0.0,
        increment=a(1.0, 1.0, 1.0, 1.0),
    )
    np.testing.assert_array_equal(qty, [5.0, 5.0, 5.0, 50.0])


def test_buying_power_counts_the_fee_buffer_and_can_reject_instead() -> None:
    args = dict(
        side=sides(BUY),
        client_row=np.array([0]),
        price=a(100.0),
        cash=a(1_000.0),
        fee_buffer=0.01,
        increment=a(1.0),
    )
    clipped = clip_to_buying_power(a(10.0), **args)  # type: ignore[arg-type]
    rejected = clip_to_buying_power(a(10.0), clip=False, **args)  # type: ignore[arg-type]
    np.testing.assert_array_equal(clipped, [9.0])  # $1,010 needed, 9 shares fit
    np.testing.assert_array_equal(rejected, [0.0])


def test_negative_cash_buys_nothing() -> None:
    qty = clip_to_buying_power(a(1.0), sides(BUY), np.array([0]), a(10.0), a(-50.0), 0.0, a(0.001))
    np.testing.assert_array_equal(qty, [0.0])


def test_each_check_names_its_reject_reason() -> None:
    assert RISK_REASONS["max_order_notional"] is RejectReason.RISK_MAX_ORDER_NOTIONAL
    assert RISK_REASONS["buying_power"] is RejectReason.RISK_BUYING_POWER
    assert RISK_REASONS["max_position"] is RejectReason.RISK_MAX_POSITION


def test_market_data_needs_finite_positive_prices_and_an_uncrossed_book() -> None:
    usable = market_data_usable(
        price=a(100.0, 100.0, 100.0, 0.0, 100.0, 100.0),
        bid=a(99.9, 100.0, 100.1, 99.9, np.nan, 0.0),
        ask=a(100.1, 100.0, 100.0, 100.1, 100.1, 100.1),
    )
    assert usable.tolist() == [True, True, False, False, False, False]


def test_data_older_than_the_limit_is_stale_and_zero_disables() -> None:
    ts = np.array([1_000, 1_500, 1_501, 9_999], dtype=np.int64)
    assert stale(ts, now_ns=2_000, max_age_ns=500).tolist() == [True, False, False, False]
    assert not stale(ts, now_ns=10**18, max_age_ns=0).any()


def test_the_age_check_does_not_overflow_on_absurd_timestamps() -> None:
    ts = np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max], dtype=np.int64)
    assert stale(ts, now_ns=1_700_000_000_000_000_000, max_age_ns=1).tolist() == [True, False]


def test_the_stateful_controls_name_their_reject_reasons() -> None:
    assert RISK_REASONS["price_band"] is RejectReason.RISK_PRICE_BAND
    assert RISK_REASONS["stale_data"] is RejectReason.RISK_STALE_DATA
    assert RISK_REASONS["max_daily_loss"] is RejectReason.RISK_MAX_DAILY_LOSS
    assert RISK_REASONS["halted"] is RejectReason.RISK_HALTED
    assert RISK_REASONS["throttled"] is RejectReason.RISK_THROTTLED


def test_reject_codes_are_appended_never_renumbered() -> None:
    """Codes are stored in journals and execution rows: old ones must keep their numbers."""
    assert RejectReason.VENUE_ERROR == 10
    new = [
        RejectReason.RISK_PRICE_BAND,
        RejectReason.RISK_STALE_DATA,
        RejectReason.RISK_MAX_DAILY_LOSS,
        RejectReason.RISK_HALTED,
        RejectReason.RISK_THROTTLED,
    ]
    assert [int(r) for r in new] == [11, 12, 13, 14, 15]
    assert max(RejectReason) < 128  # they travel as int8
