"""Parity and causality: the backtester's signals are the live shard's, and never see ahead."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tickwise.strategy  # noqa: F401  (registers the built-in strategies)
from tickwise.backtest import FillModel, GridBacktester, TickSeries
from tickwise.backtest.lookahead import LookaheadReport, check_lookahead
from tickwise.data.generator import GeneratorConfig, MarketGenerator
from tickwise.data.universe import build_universe
from tickwise.model.ticks import TickBatch
from tickwise.strategy import StrategyShard

T0 = 1_700_000_000_000_000_000

GRIDS = {
    "trend": "fast_s=3|10,slow_s=20|60,min_hold_s=1|5",
    "mean_reversion": "lookback_s=15|60,entry_z=0.8|1.5,exit_z=0|0.5,min_hold_s=1",
    "breakout": "lookback_s=15|60,entry=0|0.0002,stop=0.0005,min_hold_s=1",
}


def _market(seed: int) -> tuple[Any, TickBatch]:
    registry = build_universe(4, 2)
    gen = MarketGenerator(registry, GeneratorConfig(tick_rate=80.0), seed=seed)
    return registry, gen.generate(T0, T0 + 600 * 10**9)


@pytest.mark.parametrize("strategy", sorted(GRIDS))
def test_the_live_shard_emits_exactly_the_backtesters_signals(strategy: str) -> None:
    registry, batch = _market(seed=21)
    series = TickSeries.from_batch(batch, registry, instruments=range(len(registry)))
    bt = GridBacktester(strategy, FillModel(), device="cpu")
    rng = np.random.default_rng(5)
    compared = 0
    for params in bt.param_sets(GRIDS[strategy]):
        shard = StrategyShard(np.arange(len(registry)), strategy, [params] * len(registry))
        cuts = np.sort(rng.choice(len(batch), size=40, replace=False))
        bounds = zip([0, *cuts], [*cuts, len(batch)], strict=True)
        parts = [batch.take(np.arange(a, b)) for a, b in bounds]
        live = [shard.on_batch(part, 0) for part in parts]
        inst = np.concatenate([s.instrument for s in live]).astype(np.int64)
        ts = np.concatenate([s.ts_event for s in live])
        weight = np.concatenate([s.target_weight for s in live])
        for k in range(len(registry)):
            rec = bt.record(series, k, params)
            mine = inst == k
            assert np.array_equal(ts[mine], rec.signal_ts), (strategy, params, k)
            assert np.array_equal(weight[mine], rec.signal_weight), (strategy, params, k)
            compared += int(rec.signal_ts.size)
    assert compared > 50, f"{strategy}: too few signals to prove anything ({compared})"


@pytest.mark.parametrize("strategy", sorted(GRIDS))
def test_no_builtin_strategy_looks_ahead(strategy: str) -> None:
    registry, batch = _market(seed=8)
    series = TickSeries.from_batch(batch, registry)
    bt = GridBacktester(strategy, FillModel(latency_ms=5.0), device="cpu")
    params = bt.param_sets(GRIDS[strategy])[0]
    report = check_lookahead(bt, series, params)
    assert report.ok, report.problems
    assert report.signals_compared > 20 and len(report.cuts) >= 6 * len(series)


class _PeekingBacktester:
    """Signals from a whole-history statistic (price above the series mean): look-ahead."""

    class spec:  # noqa: N801  (mimics GridBacktester.spec)
        name = "peeking"

    def record(self, series: TickSeries, k: int, params: Any) -> Any:
        lo, hi = int(series.offsets[k]), int(series.offsets[k + 1])
        price, ts = series.price[lo:hi], series.ts[lo:hi]
        above = price > price.mean()
        change = np.flatnonzero(np.diff(above.astype(np.int8)) != 0) + 1
        empty = np.empty(0, np.int64)

        class Rec:
            symbol = series.symbols[k]
            signal_ts = ts[change]
            signal_weight = above[change].astype(np.float64)
            fills = {"tick": empty, "signal_tick": empty}

        return Rec()


def test_the_guard_catches_a_strategy_that_uses_the_future() -> None:
    registry, batch = _market(seed=8)
    series = TickSeries.from_batch(batch, registry)
    report: LookaheadReport = check_lookahead(_PeekingBacktester(), series, [])  # type: ignore[arg-type]
    assert not report.ok
    assert "cut at" in report.problems[0]
