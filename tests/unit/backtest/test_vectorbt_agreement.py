"""tickwise's grid backtester and vectorbt agree trade for trade on the same prices.

Runs the agreement check of `benchmarks/bench_backtest_vectorbt.py` (its alignment of the two
tools' conventions is the thing under test) on generated price paths and, under the `data`
marker, on a slice of real SPY ticks and a day of SPY minute bars. Skips without vectorbt.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from tickwise.backtest import FillModel, GridBacktester
from tickwise.data.readers import default_data_root

pytest.importorskip("vectorbt")

BENCH = Path(__file__).resolve().parents[3] / "benchmarks" / "bench_backtest_vectorbt.py"


def _bench() -> ModuleType:
    name = "bench_backtest_vectorbt"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


B = _bench()


def _sets(fast: list[float], slow: list[float]) -> np.ndarray:
    bt = GridBacktester("trend", device="cpu")
    return bt.spec.grid({"fast_s": fast, "slow_s": slow, "band": [0.0], "min_hold_s": [1.0]})


def _agreement(
    prices: np.ndarray, sets: np.ndarray, fee_bps: float, bt: GridBacktester | None = None
) -> dict[str, Any]:
    bt = bt or B.tickwise_backtester(fee_bps)
    series = B.as_tick_series(prices)
    tw = B.tickwise_outcome(B.run_tickwise(bt, series, sets))
    vb = B.run_vectorbt(prices, sets, fee_bps)
    out: dict[str, Any] = B.compare(tw, vb.outcome)
    out["fills"] = [B.compare_fills(bt, series, sets, j, vb.portfolio) for j in range(len(sets))]
    return out


def _random_walk(seed: int, n: int, vol: float, tick: float | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    prices = 100.0 * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    return np.round(prices / tick) * tick if tick else prices


GRID = _sets([2.0, 3.5, 7.0, 20.0], [10.0, 25.0, 60.0])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_generated_path_agrees_set_for_set_and_fill_for_fill(seed: int) -> None:
    prices = _random_walk(seed, 3_000, 1e-3)
    result = _agreement(prices, GRID, fee_bps=5.0)
    assert result["ok"], result
    assert result["sets_same_orders"] == len(GRID)
    assert result["orders_total"] > 100  # the grid trades: the check compares something
    assert all(f["same"] and f["fills"] > 0 for f in result["fills"])
    assert result["max_rel_dev_total_return"] <= 1e-9


def _moves_and_plateaus(
    seed: int, segments: int = 6, move: int = 150, flat: int = 800
) -> np.ndarray:
    """A cent-grid price that moves, then stands still for `flat` prices, and again."""
    rng = np.random.default_rng(seed)
    steps = [
        part for _ in range(segments) for part in (rng.normal(0.0, 1e-3, move), np.zeros(flat))
    ]
    return np.round(100.0 * np.exp(np.cumsum(np.concatenate(steps))), 2)


@pytest.mark.parametrize("seed", [1, 2])
def test_ties_on_a_standing_price_resolve_alike_with_the_exact_ema(seed: int) -> None:
    # On a long plateau both EMAs converge to the price: fast - slow is decided by rounding.
    prices = _moves_and_plateaus(seed)
    ties = B.own_ewm_ties(prices, GRID)
    assert ties["sets_with_a_different_decision"] > 0
    assert ties["max_rel_gap_fast_slow_there"] < 1e-13
    bt = B.tickwise_backtester(1.0)
    tw = B.tickwise_outcome(B.run_tickwise(bt, B.as_tick_series(prices), GRID))
    exact = B.compare(tw, B.run_vectorbt(prices, GRID, 1.0, "exact").outcome)
    own = B.compare(tw, B.run_vectorbt(prices, GRID, 1.0, "vectorbt").outcome)
    assert exact["ok"], exact
    assert exact["orders_total"] > 100
    assert not own["ok"]  # vectorbt's own ewm_mean trades differently at some ties


def test_vectorbt_own_ewm_is_the_same_ema_up_to_rounding() -> None:
    prices = _random_walk(11, 5_000, 1e-3)
    ties = B.own_ewm_ties(prices, GRID)
    assert 0.0 < ties["max_rel_dev_ema"] < 1e-12
    # any decision it flips sits on a tie: fast and slow within rounding of each other
    assert ties["max_rel_gap_fast_slow_there"] < 1e-12


def test_the_span_gives_vectorbt_the_same_alpha() -> None:
    taus = np.array([2.0, 10.0, 600.0, 3600.0])
    span = B.ema_span(taus)
    np.testing.assert_allclose(2.0 / (span + 1.0), 1.0 - np.exp(-1.0 / taus), rtol=1e-12)


def test_warm_up_starts_where_slow_s_seconds_have_passed() -> None:
    np.testing.assert_array_equal(B.warm_index(np.array([10.0, 10.5, 1e6]), 100), [10, 11, 100])


def test_a_fill_one_price_late_is_caught() -> None:
    # the check must fail when one side fills later than the other (here tickwise, by latency)
    prices = _random_walk(5, 2_000, 1e-3)
    late = GridBacktester(
        "trend", FillModel(latency_ms=1_500.0, spread_bps=0.0, fee_bps=5.0), device="cpu"
    )
    result = _agreement(prices, GRID, fee_bps=5.0, bt=late)
    assert not result["ok"]
    assert result["sets_total_return_within_rtol"] < len(GRID)


def test_a_fee_mismatch_is_caught() -> None:
    prices = _random_walk(6, 2_000, 1e-3)
    bt = B.tickwise_backtester(5.0)
    series = B.as_tick_series(prices)
    tw = B.tickwise_outcome(B.run_tickwise(bt, series, GRID))
    vb = B.run_vectorbt(prices, GRID, 6.0)
    result = B.compare(tw, vb.outcome)
    assert not result["ok"]
    assert result["sets_same_orders"] == len(GRID)  # same trades, other PnL


def _spy(source: str, session: str) -> np.ndarray:
    root = default_data_root()
    if root is None:
        pytest.skip("recorded market data not available (set TICKWISE_DATA)")
    try:
        return np.asarray(B.load_spy_prices(source, 1, session, root).values)
    except B.BenchInputError as exc:
        pytest.skip(f"SPY {source} not available: {exc}")


@pytest.mark.data
def test_real_spy_trade_ticks_agree() -> None:
    prices = _spy("ticks", "regular")[:6_000]
    sets = _sets([2.0, 5.0, 20.0, 60.0], [10.0, 50.0, 200.0])
    result = _agreement(prices, sets, fee_bps=1.0)
    assert result["ok"], result
    assert result["orders_total"] > 100


@pytest.mark.data
def test_a_real_day_of_spy_minute_bars_agrees() -> None:
    prices = _spy("minutes", "extended")  # 04:00-20:00: 960 bars, closes carried forward
    assert prices.size == 960
    sets = _sets([2.0, 3.0, 5.0, 8.0], [10.0, 20.0, 40.0])
    result = _agreement(prices, sets, fee_bps=1.0)
    assert result["ok"], result
    assert result["orders_total"] > 20
