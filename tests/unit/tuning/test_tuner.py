"""The tuner without Ray: it follows a regime change, and failures never touch live params."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pytest

import tickwise.strategy  # noqa: F401  (registers the built-in strategies)
from tickwise.backtest import FillModel
from tickwise.data.generator import GeneratorConfig, MarketGenerator
from tickwise.data.universe import build_universe
from tickwise.model.ticks import TickBatch
from tickwise.strategy import StrategyShard, get_strategy
from tickwise.tuning.space import SearchSpaceError, sample_sets
from tickwise.tuning.tuner import Tuner, TunerConfig
from tickwise.tuning.walkforward import WalkForwardConfig

T0 = 1_700_000_000 * 10**9
PHASE_S = 600
# Fast trend parameters, as if fitted on a trending market: they whipsaw once it mean-reverts.
START = np.array([3.0, 15.0, 0.00005, 3.0])
REGISTRY = build_universe(4, 2)
N = len(REGISTRY)


def _tuner(clock: Any, **walk: Any) -> Tuner:
    cfg = TunerConfig(
        every_s=60,
        every_ticks=10**9,
        sets=256,
        sample_s=5.0,
        walk=WalkForwardConfig(**{"train_s": 240, "valid_s": 60, "warmup_s": 60,
                                  "min_ticks": 100, **walk}),
    )  # fmt: skip
    return Tuner(
        REGISTRY, {"trend": (np.arange(N), START)}, cfg, FillModel(fee_bps=5.0), "t", clock
    )


def _log_pnl(ticks: TickBatch, signals: list[Any]) -> np.ndarray:
    """Each instrument's log return, holding each signal's weight from the next tick on."""
    inst = np.concatenate([s.instrument for s in signals]).astype(np.int64)
    ts = np.concatenate([s.ts_event for s in signals])
    weight = np.concatenate([s.target_weight for s in signals])
    out = np.zeros(N)
    for k in range(N):
        mine = ticks.instrument == k
        price, t = ticks.price[mine], ticks.ts_event[mine]
        held = np.zeros(price.size)
        for start, w in zip(
            np.searchsorted(t, ts[inst == k], "right"), weight[inst == k], strict=True
        ):
            held[start:] = w
        gross = np.log1p(held[:-1] * np.diff(price) / price[:-1]).sum()
        out[k] = gross - np.abs(np.diff(held, prepend=0.0)).sum() * 7e-4  # spread + fee
    return out


@cache
def _regime_run(tuned: bool) -> tuple[np.ndarray, tuple[tuple[int, str], ...]]:
    """Trend for PHASE_S seconds, then mean reversion; live shard fed second by second."""
    gen = MarketGenerator(
        REGISTRY,
        GeneratorConfig(tick_rate=120.0, equity_vol_bps=3.0, crypto_vol_bps=3.0, jumps_per_hour=0),
        seed=3,
    )
    gen.set_regime(np.arange(N), drift_per_s=np.where(np.arange(N) % 2 == 0, 4e-4, -4e-4))
    shard = StrategyShard(np.arange(N), "trend", [START] * N)
    now = [0.0]
    tuner = _tuner(lambda: now[0]) if tuned else None
    ticks, signals, swaps = [], [], []
    gen.next_batch(T0)
    for second in range(1, 2 * PHASE_S + 1):
        if second == PHASE_S:
            gen.set_regime(np.arange(N), drift_per_s=0.0, mean_reversion=0.05)
        batch = gen.next_batch(T0 + second * 10**9)
        ticks.append(batch)
        signals.append(shard.on_batch(batch, 0))
        now[0] = second
        if tuner is None:
            continue
        tuner.append(batch)
        due = tuner.due()
        if due.size and second > 360:  # a full window first
            for r in tuner.tune(due):
                if r.decision == "swap":
                    shard.set_params(r.instrument, np.array(r.winner_params))
                    assert np.array_equal(shard.get_params(r.instrument), r.winner_params)
                    swaps.append((second, r.symbol))
    return _log_pnl(TickBatch.concat(ticks), signals), tuple(swaps)


def test_after_a_regime_change_the_tuner_swaps_and_beats_frozen_parameters() -> None:
    frozen, no_swaps = _regime_run(tuned=False)
    tuned, swaps = _regime_run(tuned=True)
    assert no_swaps == ()
    after = {symbol for second, symbol in swaps if second > PHASE_S}
    assert len(after) >= N // 2, swaps  # most instruments got new parameters after the change
    assert tuned.sum() > frozen.sum() + 0.02, (tuned, frozen)


def test_a_search_space_without_a_valid_point_is_refused() -> None:
    with pytest.raises(SearchSpaceError, match="no valid point"):
        sample_sets(get_strategy("trend"), 64, "fast_s=100:120,slow_s=10:50")
    with pytest.raises(SearchSpaceError, match="bounds"):
        sample_sets(get_strategy("trend"), 64, "fast_s=0.1:5")


def _fed_tuner(seconds: int, rate: float, **walk: Any) -> Tuner:
    gen = MarketGenerator(REGISTRY, GeneratorConfig(tick_rate=rate), seed=1)
    now = [0.0]
    tuner = _tuner(lambda: now[0], **walk)
    tuner.append(gen.generate(T0, T0 + seconds * 10**9))
    now[0] = 1e6  # everything is due
    return tuner


def test_a_window_with_too_few_ticks_fails_and_keeps_the_live_parameters() -> None:
    tuner = _fed_tuner(400, rate=6.0, min_ticks=5000)
    records = tuner.tune(tuner.due())
    assert len(records) == N and all(r.decision == "failed" for r in records)
    assert all("too few ticks" in r.reason for r in records)
    assert all(np.array_equal(tuner.live_params(i), START) for i in range(N))
    assert tuner.stats.failed == N


def test_a_crash_mid_search_is_counted_and_the_live_parameters_stay(monkeypatch: Any) -> None:
    tuner = _fed_tuner(400, rate=120.0)

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("kernel blew up")

    monkeypatch.setattr("tickwise.tuning.tuner.walk_forward", explode)
    records = tuner.tune(tuner.due())
    assert {r.decision for r in records} == {"failed"}
    assert "kernel blew up" in records[0].reason
    assert tuner.stats.errors == 1
    assert all(np.array_equal(tuner.live_params(i), START) for i in range(N))


def test_schedule_takes_the_most_overdue_first_and_respects_the_batch() -> None:
    now = [0.0]
    tuner = _tuner(lambda: now[0])
    gen = MarketGenerator(REGISTRY, GeneratorConfig(tick_rate=120.0), seed=2)
    tuner.append(gen.generate(T0, T0 + 400 * 10**9))
    assert tuner.due().size == 0  # nothing is due before every_s
    now[0] = 61.0
    first = tuner.due()
    assert first.size == N
    tuner.tune(first[:2])
    remaining = tuner.due()
    assert set(remaining.tolist()) == set(first[2:].tolist())
    assert tuner.stats.runs == 2 and tuner.stats.sets_evaluated == 2 * 256
