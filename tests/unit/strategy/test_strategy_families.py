"""The built-in families on scripted tapes, and their turnover on a realistic random walk."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from tickwise.model.ticks import TickBatch
from tickwise.strategy import STRATEGIES, get_strategy
from tickwise.strategy.api import StrategySpec
from tickwise.strategy.breakout import BREAKOUT
from tickwise.strategy.calibration import changes_per_minute, random_walk_ticks, run_single
from tickwise.strategy.mean_reversion import MEAN_REVERSION
from tickwise.strategy.trend import TREND

T0 = 1_700_000_000_000_000_000
S = 1_000_000_000


def trades_each_second(prices: npt.ArrayLike) -> TickBatch:
    p = np.asarray(prices, dtype=np.float64)
    ts = T0 + np.arange(p.size, dtype=np.int64) * S
    return TickBatch.from_arrays(np.zeros(p.size), ts, p, np.full(p.size, 100.0), np.zeros(p.size))


def wiggle(n: int, seed: int = 0, scale: float = 0.02) -> npt.NDArray[np.float64]:
    """Small noise around zero, so variances are not degenerate."""
    return np.random.default_rng(seed).normal(0.0, scale, n)


def first_change_s(spec: StrategySpec, params: npt.ArrayLike, tape: TickBatch) -> float:
    _, changed = run_single(spec, params, tape)
    hits = np.flatnonzero(changed)
    return float((tape.ts_event[hits[0]] - T0) / S) if hits.size else float("inf")


def test_trend_goes_long_in_an_uptrend_and_flat_when_it_turns() -> None:
    flat = 100.0 + wiggle(120)
    up = 100.0 * np.exp(np.linspace(0.0, 0.01, 120))
    down = up[-1] * np.exp(np.linspace(0.0, -0.01, 120))
    tape = trades_each_second(np.concatenate([flat, up, down]))
    weights, changed = run_single(TREND, TREND.defaults(), tape)
    changes = np.flatnonzero(changed)
    assert weights[119] == 0.0
    assert changes.size == 2
    assert 120 < changes[0] < 240 and weights[changes[0]] == 1.0
    assert changes[1] > 240 and weights[-1] == 0.0


def test_trend_waits_for_its_slow_window_before_trading() -> None:
    climb = trades_each_second(100.0 * np.exp(np.linspace(0.0, 0.02, 200)))
    params = TREND.params.from_mapping({"slow_s": 90.0})
    assert first_change_s(TREND, params, climb) == 90.0
    assert first_change_s(TREND, TREND.defaults(), climb) == 60.0


def test_mean_reversion_buys_the_dip_and_exits_on_the_way_back() -> None:
    # A steady sine around 100: its z-score never reaches -sqrt(2), so only the dip can trigger.
    calm = 100.0 + 0.03 * np.sin(np.arange(200) * 2 * np.pi / 7)
    dip = np.linspace(100.0, 99.6, 10)
    recover = np.linspace(99.6, 100.2, 60)
    tape = trades_each_second(np.concatenate([calm, dip, recover, 100.2 + wiggle(60, 1)]))
    params = MEAN_REVERSION.params.from_mapping(
        {"lookback_s": 60.0, "entry_z": 2.0, "min_hold_s": 5.0}
    )
    weights, changed = run_single(MEAN_REVERSION, params, tape)
    changes = np.flatnonzero(changed)
    assert changes.size >= 2
    assert 200 <= changes[0] < 210 and weights[changes[0]] == 1.0
    assert changes[1] >= 210 and weights[changes[1]] == 0.0
    assert weights[-1] == 0.0


def test_breakout_enters_above_the_channel_and_leaves_on_the_trailing_stop() -> None:
    calm = 100.0 + wiggle(300, scale=0.02)
    breakout = np.linspace(100.1, 100.6, 20)
    pullback = np.linspace(100.6, 100.3, 20)
    tape = trades_each_second(np.concatenate([calm, breakout, pullback]))
    params = BREAKOUT.params.from_mapping({"entry": 0.0005, "stop": 0.002, "min_hold_s": 5.0})
    weights, changed = run_single(BREAKOUT, params, tape)
    changes = np.flatnonzero(changed)
    assert changes.size == 2
    assert changes[0] == 300 and weights[300] == 1.0
    # Flat once a trade is 0.2 % under the 100.6 peak.
    assert weights[changes[1]] == 0.0
    assert tape.price[changes[1]] < 100.6 * (1 - 0.002) <= tape.price[changes[1] - 1]


@pytest.mark.parametrize("name", ["trend", "mean_reversion", "breakout"])
def test_no_trade_before_warm_and_weights_stay_in_unit_interval(name: str) -> None:
    spec = get_strategy(name)
    tape = random_walk_ticks(900, vol_per_sqrt_s=5e-4, seed=3)
    weights, changed = run_single(spec, spec.defaults(), tape)
    warm_ns = spec.warmup_s(spec.defaults()) * S
    early = tape.ts_event - tape.ts_event[0] < warm_ns
    assert (weights[early] == 0.0).all() and not changed[early].any()
    assert set(np.unique(weights)) <= {0.0, 1.0}


@pytest.mark.parametrize("name", ["trend", "mean_reversion", "breakout"])
def test_changes_are_never_closer_than_the_minimum_holding_time(name: str) -> None:
    spec = get_strategy(name)
    params = spec.params.from_mapping({"min_hold_s": 20.0})
    tape = random_walk_ticks(1800, vol_per_sqrt_s=6e-4, seed=5)
    _, changed = run_single(spec, params, tape)
    when = tape.ts_event[changed]
    assert when.size >= 5
    assert np.diff(when).min() >= 20 * S


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_defaults_change_weight_every_one_to_five_minutes_on_a_median_tape(name: str) -> None:
    # About 10 trades/s (plus quotes) and 2 %/day of volatility, two hours, two seeds.
    spec = get_strategy(name)
    rates = [
        changes_per_minute(spec, spec.defaults(), random_walk_ticks(7200, seed=seed))
        for seed in (11, 12)
    ]
    minutes_per_change = 1.0 / np.mean(rates)
    assert 1.0 <= minutes_per_change <= 5.0


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_turnover_barely_depends_on_the_tick_rate(name: str) -> None:
    spec = get_strategy(name)
    slow_tape, busy_tape = (random_walk_ticks(5400, trades_per_s=r, seed=21) for r in (3, 30))
    slow = changes_per_minute(spec, spec.defaults(), slow_tape)
    busy = changes_per_minute(spec, spec.defaults(), busy_tape)
    assert 0.5 < slow / busy < 2.0
