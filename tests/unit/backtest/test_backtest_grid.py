"""The grid backtester: fill model, accounting, metrics, ranking and bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from toggle import toggle_spec, unregister

import tickwise.strategy  # noqa: F401  (registers the built-in strategies)
from tickwise.backtest import BacktestInputError, FillModel, GridBacktester, TickSeries
from tickwise.backtest.objectives import score
from tickwise.data.generator import GeneratorConfig, MarketGenerator
from tickwise.data.universe import build_universe
from tickwise.model.instruments import AssetClass
from tickwise.model.ticks import TickKind

T0 = 1_700_000_000_000_000_000
MS = 1_000_000


@pytest.fixture(autouse=True)
def _toggle_registered_only_here() -> Iterator[None]:
    """The test strategy exists for these tests only, not for the rest of the suite."""
    toggle_spec()
    yield
    unregister()


def _tape(prices: list[float], kinds: list[int] | None = None, step_ms: int = 1) -> TickSeries:
    n = len(prices)
    return TickSeries(
        symbols=("X",),
        offsets=np.array([0, n], np.int64),
        ts=T0 + np.arange(n, dtype=np.int64) * step_ms * MS,
        price=np.asarray(prices, np.float64),
        size=np.ones(n),
        kind=np.asarray(kinds if kinds is not None else [0] * n, np.int64),
        asset_class=np.array([AssetClass.EQUITY], np.uint8),
    )


@cache
def _market() -> TickSeries:
    registry = build_universe(4, 2)
    gen = MarketGenerator(registry, GeneratorConfig(tick_rate=60.0), seed=11)
    return TickSeries.from_batch(gen.generate(T0, T0 + 900 * 10**9), registry)


def test_an_order_fills_on_the_next_tick_at_the_spread_with_fees() -> None:
    prices = [100.0, 101.0, 102.0, 104.0, 103.0, 105.0, 106.0]
    bt = GridBacktester("test_toggle", FillModel(spread_bps=20.0, fee_bps=10.0), device="cpu")
    rec = bt.record(_tape(prices), 0, [3])
    # the weight toggles on ticks 3 and 6 (counting from 1): signals on indexes 2 and 5
    assert rec.signal_tick.tolist() == [2, 5]
    assert rec.fills["tick"].tolist() == [3, 6]  # never on the signal tick
    buy_px, sell_px = 104.0 * 1.001, 106.0 * 0.999
    assert rec.fills["price"].tolist() == pytest.approx([buy_px, sell_px])
    shares = 1.0 / (buy_px * 1.001)  # all-in, the fee included
    assert rec.fills["qty"].tolist() == pytest.approx([shares, -shares])
    fees = [shares * buy_px * 0.001, shares * sell_px * 0.001]
    assert rec.fills["fee"].tolist() == pytest.approx(fees)
    final = shares * sell_px * (1 - 0.001)
    assert rec.metrics["total_return"] == pytest.approx(final - 1.0)
    assert rec.metrics["round_trips"] == 1
    assert rec.metrics["hit_rate"] == (1.0 if final > 1.0 else 0.0)
    assert rec.metrics["fees"] == pytest.approx(sum(fees))


def test_quotes_set_the_fill_price_and_latency_delays_the_fill() -> None:
    b, a, t = TickKind.BID, TickKind.ASK, TickKind.TRADE
    kinds = [b, a, t, t, b, a, t, t, t]
    prices = [99.0, 101.0, 100.0, 100.5, 100.0, 102.0, 101.0, 101.5, 101.2]
    bt = GridBacktester("test_toggle", FillModel(latency_ms=2.5, fee_bps=0.0), device="cpu")
    rec = bt.record(_tape(prices, [int(k) for k in kinds]), 0, [3])
    # signal on tick index 2 (t = 2 ms): the first tick at >= 4.5 ms is index 5 (an ask update)
    assert rec.fills["tick"][0] == 5
    assert rec.fills["price"][0] == 102.0  # the ask after the update
    # the second signal (index 5) fills at index 8 (>= 7.5 ms) at the bid, 100.0
    assert rec.fills["tick"][1] == 8
    assert rec.fills["price"][1] == 100.0


@settings(max_examples=40, deadline=None)
@given(
    prices=st.lists(st.floats(1.0, 1000.0), min_size=2, max_size=60),
    period=st.integers(1, 7),
)
def test_equity_is_the_product_of_round_trip_price_ratios(prices: list[float], period: int) -> None:
    """With no spread and no fee, equity = product of exit/entry prices: an oracle by hand."""
    bt = GridBacktester("test_toggle", FillModel(spread_bps=0.0, fee_bps=0.0), device="cpu")
    rec = bt.record(_tape(prices), 0, [period])
    equity, entry = 1.0, None
    n = len(prices)
    for i in range(n):
        if (i + 1) % period == 0 and i + 1 < n:  # signal on i, fill on i + 1
            if entry is None:
                entry = prices[i + 1]
            else:
                equity *= prices[i + 1] / entry
                entry = None
    if entry is not None:
        equity *= prices[-1] / entry
    assert rec.metrics["total_return"] == pytest.approx(equity - 1.0, rel=1e-9, abs=1e-12)
    signals = sum(1 for i in range(n) if (i + 1) % period == 0)
    assert rec.metrics["signals"] == signals
    assert rec.metrics["trades"] == sum(1 for i in range(n - 1) if (i + 1) % period == 0)


def test_the_grid_agrees_with_the_replay_of_each_pair() -> None:
    series = _market()
    bt = GridBacktester("trend", FillModel(latency_ms=20.0), sample_s=30.0, device="cpu")
    sets = bt.param_sets("fast_s=3|8,slow_s=20|45,min_hold_s=2")
    result = bt.run(series, sets)
    assert result.metrics["signals"].sum() > 20  # the market gives it something to do
    for k in range(len(series)):
        for j in range(len(sets)):
            rec = bt.record(series, k, sets[j])
            for name, value in rec.metrics.items():
                assert result.metrics[name][k, j] == pytest.approx(value, nan_ok=True), name
            assert rec.equity[-1] == pytest.approx(1.0 + rec.metrics["total_return"])


def test_metrics_are_consistent() -> None:
    series = _market()
    bt = GridBacktester("mean_reversion", FillModel(), sample_s=30.0, device="cpu")
    r = bt.run(series, bt.param_sets("lookback_s=20|60,entry_z=1|2,min_hold_s=2"))
    m = r.metrics
    assert np.all((m["exposure"] >= 0) & (m["exposure"] <= 1))
    assert np.all((m["max_drawdown"] >= 0) & (m["max_drawdown"] < 1))
    assert np.all(m["trades"] <= m["signals"])
    assert np.all(m["round_trips"] <= m["trades"] // 2 + 1)
    traded = m["trades"] > 0
    assert np.all(m["turnover"][traded] > 0) and np.all(m["turnover"][~traded] == 0)
    assert np.all(m["fees"] >= 0)
    hit = m["hit_rate"][m["round_trips"] > 0]
    assert np.all((hit >= 0) & (hit <= 1))


def test_ranking_follows_the_objective_and_the_turnover_penalty() -> None:
    series = _market()
    bt = GridBacktester("trend", sample_s=30.0, device="cpu")
    r = bt.run(series, bt.param_sets("fast_s=3|8|15,slow_s=20|45|90,min_hold_s=2"))
    top = r.top(5)
    assert [row["score"] for row in top] == sorted((row["score"] for row in top), reverse=True)
    assert top[0]["score"] == pytest.approx(float(r.score.max()))
    penalised = score(r.metrics, "sharpe", turnover_penalty=1.0)
    assert np.allclose(penalised, r.metrics["sharpe"] - r.metrics["turnover"])
    with pytest.raises(BacktestInputError, match="unknown objective"):
        score(r.metrics, "alpha")


def test_bad_input_is_refused_with_a_clear_message() -> None:
    with pytest.raises(BacktestInputError, match="unknown strategy 'nope'"):
        GridBacktester("nope")
    bt = GridBacktester("trend", device="cpu")
    with pytest.raises(BacktestInputError, match="no valid parameter set"):
        bt.param_sets("fast_s=100,slow_s=20")  # fast must be faster than slow
    with pytest.raises(BacktestInputError, match="no ticks"):
        bt.run(_market().until(T0 - 1), "fast_s=5")
    with pytest.raises(BacktestInputError, match="grid"):
        bt.param_sets("fast_s=5:1:1")
    with pytest.raises(BacktestInputError, match="device"):
        GridBacktester("trend", device="tpu")


def test_a_forced_gpu_without_one_is_a_clear_error() -> None:
    from tickwise.backtest.gpu import gpu_available

    if gpu_available():
        pytest.skip("a GPU is visible here")
    with pytest.raises(BacktestInputError, match="no CUDA GPU"):
        GridBacktester("trend", device="gpu")


_GPU_CHECK = """
import numpy as np, sys
sys.path.insert(0, {here!r})
import tickwise.strategy
from tickwise.backtest import FillModel, GridBacktester, TickSeries
from tickwise.data.generator import GeneratorConfig, MarketGenerator
from tickwise.data.universe import build_universe
reg = build_universe(2, 1)
gen = MarketGenerator(reg, GeneratorConfig(tick_rate=15.0), seed=4)
series = TickSeries.from_batch(gen.generate({t0}, {t0} + 300 * 10**9), reg)
for name, grid in [("trend", "fast_s=3|8,slow_s=30,min_hold_s=2"),
                   ("mean_reversion", "lookback_s=20,entry_z=1|2,min_hold_s=2"),
                   ("breakout", "lookback_s=20|60,min_hold_s=2")]:
    cpu = GridBacktester(name, FillModel(latency_ms=10.0), device="cpu")
    gpu = GridBacktester(name, FillModel(latency_ms=10.0), device="gpu")
    sets = cpu.param_sets(grid)
    a, b = cpu.run(series, sets), gpu.run(series, sets)
    assert gpu.device == "gpu"
    for m in a.metrics:
        assert np.allclose(a.metrics[m], b.metrics[m], equal_nan=True, rtol=1e-12), m
    print(name, int(a.metrics["signals"].sum()))
"""


def test_the_gpu_kernel_matches_the_cpu_kernel_in_the_cuda_simulator() -> None:
    """The CUDA build of every strategy, run by numba's CUDA simulator, equals the CPU build."""
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    code = _GPU_CHECK.format(here=str(Path(__file__).parent), t0=T0)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    counts = [int(line.split()[1]) for line in out.stdout.splitlines()]
    assert len(counts) == 3 and all(c > 0 for c in counts), out.stdout


def test_the_account_opens_at_trade_from_with_the_weight_the_strategy_holds() -> None:
    """Before `trade_from` the strategy only warms; a weight it holds then is bought at once."""
    prices = [100.0, 101.0, 102.0, 104.0, 103.0, 105.0, 106.0, 107.0]
    bt = GridBacktester("test_toggle", FillModel(spread_bps=0.0, fee_bps=0.0), device="cpu")
    tape = _tape(prices)
    rec = bt.record(tape, 0, [3], trade_from_ns=int(tape.ts[4]))
    assert rec.signal_tick.tolist() == [2, 5]  # the strategy's own signals are all recorded
    # weight 1 since tick 2: bought on the opening tick 4; the signal on 5 sells on tick 6
    assert rec.fills["tick"].tolist() == [4, 6]
    assert rec.metrics["signals"] == 1  # only signals while trading count
    assert rec.metrics["total_return"] == pytest.approx(106.0 / 103.0 - 1.0)
    grid = bt.run(tape, [[3]], trade_from_ns=int(tape.ts[4]))
    assert grid.metrics["total_return"][0, 0] == pytest.approx(rec.metrics["total_return"])
    pairs = bt.run_pairs(tape, np.array([[3.0]]), np.array([0]), np.array([0]), int(tape.ts[4]))
    assert pairs["total_return"][0] == pytest.approx(rec.metrics["total_return"])
