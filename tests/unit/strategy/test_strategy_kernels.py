"""The shared step-kernel helpers: header bookkeeping, time-based smoothing, warm-up, holding."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from tickwise.model.ticks import TickKind
from tickwise.strategy import kernels as k
from tickwise.strategy import trend
from tickwise.strategy.trend import TREND

T0 = 1_700_000_000_000_000_000
S = 1_000_000_000


def fresh_header() -> npt.NDArray[np.float64]:
    state = np.empty(k.HEADER_SIZE, np.float64)
    k.init_header(state)
    return state


def test_quotes_update_the_header_but_only_trades_are_decision_prices() -> None:
    state = fresh_header()
    assert math.isnan(k.observe(state, 99.0, TickKind.BID, T0, False))
    assert math.isnan(k.observe(state, 101.0, TickKind.ASK, T0 + 1, False))
    assert k.observe(state, 100.5, TickKind.TRADE, T0 + 2, False) == 100.5
    assert (state[k.BID], state[k.ASK], state[k.LAST_PRICE]) == (99.0, 101.0, 100.5)
    assert state[k.TICKS] == 3
    assert state[k.LAST_TS] == float(T0 + 2)


def test_a_mid_deciding_strategy_decides_on_quotes_once_both_sides_are_known() -> None:
    state = fresh_header()
    assert math.isnan(k.observe(state, 99.0, TickKind.BID, T0, True))
    assert k.observe(state, 101.0, TickKind.ASK, T0 + 1, True) == 100.0
    assert math.isnan(k.observe(state, 100.5, TickKind.TRADE, T0 + 2, True))


def test_bad_prices_and_unknown_kinds_are_counted_but_ignored() -> None:
    state = fresh_header()
    for price, kind in ((0.0, 0), (-1.0, 0), (np.nan, 0), (np.inf, 1), (100.0, 7)):
        assert math.isnan(k.observe(state, price, kind, T0, False))
    assert state[k.TICKS] == 5
    assert math.isnan(state[k.BID]) and math.isnan(state[k.LAST_PRICE])


def test_ema_follows_elapsed_time_not_the_number_of_ticks() -> None:
    # A step from 100 to 110 at t = 0, observed for 30 s by a slow and by a busy tape.
    def ema_after(ticks_per_s: int) -> float:
        state = np.empty(trend.STATE_SIZE)
        params = TREND.params.from_mapping({"fast_s": 10.0, "slow_s": 60.0})
        trend.init_state(state, params)
        trend.step(state, params, 100.0, 1.0, TickKind.TRADE, T0 - S)
        for ts in T0 + np.arange(30 * ticks_per_s + 1) * (S // ticks_per_s):
            trend.step(state, params, 110.0, 1.0, TickKind.TRADE, int(ts))
        return float(state[trend.FAST])

    # The 100 held for 1 s before the step, then 110 for 30 s.
    expected = 110.0 + (100.0 - 110.0) * math.exp(-30.0 / 10.0)
    assert abs(ema_after(1) - expected) < 1e-9
    assert abs(ema_after(50) - expected) < 1e-9


def test_trades_sharing_a_timestamp_count_once_the_last_one_held() -> None:
    state = fresh_header()
    assert k.advance_clock(state, T0) == -1.0
    k.end_decision(state, 100.0)
    assert k.advance_clock(state, T0) == 0.0
    k.end_decision(state, 101.0)
    assert k.advance_clock(state, T0 + 2 * S) == 2.0
    assert state[k.EVAL_PRICE] == 101.0
    assert k.ema_update(100.0, 101.0, 2.0, 4.0) == 101.0 - math.exp(-0.5)


def test_out_of_order_ticks_count_as_no_elapsed_time() -> None:
    state = fresh_header()
    k.advance_clock(state, T0 + 5 * S)
    assert k.advance_clock(state, T0) == 0.0
    assert state[k.EVAL_TS] == float(T0 + 5 * S)


def test_warm_needs_both_the_time_and_the_decision_count() -> None:
    state = fresh_header()
    k.advance_clock(state, T0)
    k.advance_clock(state, T0 + 59 * S)
    assert not k.warm_since(state, 60.0, 2.0)
    k.advance_clock(state, T0 + 60 * S)
    assert k.warm_since(state, 60.0, 2.0)
    assert not k.warm_since(state, 60.0, 4.0)


def test_restart_warmup_keeps_quotes_weight_and_hold_clock() -> None:
    state = fresh_header()
    k.observe(state, 99.0, TickKind.BID, T0, False)
    k.advance_clock(state, T0)
    k.commit_weight(state, 1.0, T0, 5.0)
    k.restart_warmup(state)
    assert state[k.WEIGHT] == 1.0 and state[k.BID] == 99.0 and state[k.CHANGE_TS] == float(T0)
    assert math.isnan(state[k.FIRST_TS]) and state[k.DECISIONS] == 0


def test_weight_changes_respect_the_minimum_holding_time_and_bounds() -> None:
    state = fresh_header()
    assert k.commit_weight(state, 1.0, T0, 30.0) == 1.0
    assert k.commit_weight(state, 0.0, T0 + 29 * S, 30.0) == 1.0
    assert k.commit_weight(state, 0.0, T0 + 30 * S, 30.0) == 0.0
    assert k.commit_weight(state, 7.0, T0 + 90 * S, 30.0) == 1.0
    assert k.commit_weight(state, -3.0, T0 + 200 * S, 30.0) == 0.0


def test_batch_runner_skips_foreign_rows_and_flags_changes() -> None:
    params = TREND.params.from_mapping({"fast_s": 2.0, "slow_s": 10.0, "min_hold_s": 1.0})
    states = TREND.new_states(np.stack([params, params]))
    n = 40
    ts = T0 + np.arange(n, dtype=np.int64) * S
    price = 100.0 + np.arange(n, dtype=np.float64)  # a steady climb: row 0 goes long
    row = np.where(np.arange(n) % 4 == 3, -1, 0).astype(np.int64)
    weight = np.empty(n)
    changed = np.empty(n, np.bool_)
    runner = k.batch_runner(TREND.step)
    runner(
        states,
        np.stack([params, params]),
        row,
        price,
        np.ones(n),
        np.zeros(n, np.uint8),
        ts,
        weight,
        changed,
    )
    assert np.isnan(weight[row < 0]).all() and not changed[row < 0].any()
    assert changed.sum() == 1 and weight[row >= 0][-1] == 1.0
    assert states[1, k.TICKS] == 0 and states[0, k.TICKS] == (row == 0).sum()
    assert k.batch_runner(TREND.step) is runner
