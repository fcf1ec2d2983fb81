"""Synthetic tick streams and turnover measurement for choosing strategy defaults.

Every weight change fans out to thousands of client orders, so a strategy's defaults are chosen
for its turnover: on an instrument of median activity (about 10 trades/s) the target weight
should change about once every 1 to 5 minutes. `random_walk_ticks` makes such a tape (a
geometric random walk with a quoted spread, bid/ask bounce, price increments and millisecond
timestamps) and `run_single` / `changes_per_minute` measure a parameter set on it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tickwise.model.ticks import TickBatch, TickKind
from tickwise.strategy.api import StrategySpec
from tickwise.strategy.kernels import batch_runner

# A stock moving ~2 % over a 6.5 h session: 0.02 / sqrt(23,400 s).
TYPICAL_VOL_PER_SQRT_S = 1.3e-4
START_NS = 1_700_000_000_000_000_000


def random_walk_ticks(
    seconds: float,
    trades_per_s: float = 10.0,
    quotes_per_trade: float = 4.0,
    vol_per_sqrt_s: float = TYPICAL_VOL_PER_SQRT_S,
    start_price: float = 100.0,
    tick_size: float = 0.01,
    spread_ticks: int = 1,
    instrument: int = 0,
    start_ns: int = START_NS,
    resolution_ns: int = 1_000_000,
    seed: int = 0,
) -> TickBatch:
    """A trades-and-quotes tape for one instrument over `seconds`, in time order.

    Events arrive as a Poisson process; the mid follows a geometric random walk; quotes are the
    mid +/- half the spread rounded to `tick_size`, and trades print at the bid or the ask at
    random. Timestamps are truncated to `resolution_ns`, so bursts share a timestamp as on real
    feeds.
    """
    rng = np.random.default_rng(seed)
    rate = trades_per_s * (1.0 + quotes_per_trade)
    n = int(rng.poisson(rate * seconds))
    t_s = np.sort(rng.uniform(0.0, seconds, n))
    dt = np.diff(t_s, prepend=0.0)
    log_mid = np.cumsum(rng.normal(0.0, vol_per_sqrt_s, n) * np.sqrt(dt))
    mid = start_price * np.exp(log_mid)
    half = 0.5 * spread_ticks * tick_size
    bid = np.floor((mid - half) / tick_size + 0.5) * tick_size
    ask = np.maximum(np.floor((mid + half) / tick_size + 0.5) * tick_size, bid + tick_size)
    is_trade = rng.uniform(size=n) < 1.0 / (1.0 + quotes_per_trade)
    buy = rng.uniform(size=n) < 0.5
    quote_side_bid = rng.uniform(size=n) < 0.5
    kind = np.where(
        is_trade, TickKind.TRADE, np.where(quote_side_bid, TickKind.BID, TickKind.ASK)
    ).astype(np.uint8)
    price = np.where(is_trade, np.where(buy, ask, bid), np.where(quote_side_bid, bid, ask))
    size = np.where(is_trade, rng.integers(1, 10, n) * 100.0, rng.integers(1, 50, n) * 100.0)
    ts = start_ns + (t_s * 1e9).astype(np.int64) // resolution_ns * resolution_ns
    return TickBatch.from_arrays(
        instrument=np.full(n, instrument, np.uint32),
        ts_event=ts,
        price=np.round(price, 10),
        size=size,
        kind=kind,
    )


def run_single(
    spec: StrategySpec, params: npt.ArrayLike, ticks: TickBatch
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Weights and change flags of one fresh strategy over `ticks` (all for one instrument)."""
    vec = spec.validate(params)
    states = spec.new_states(vec)
    weights = np.empty(len(ticks), np.float64)
    changed = np.empty(len(ticks), np.bool_)
    batch_runner(spec.step)(
        states,
        vec.reshape(1, -1),
        np.zeros(len(ticks), np.int64),
        ticks.price,
        ticks.size,
        ticks.kind,
        ticks.ts_event,
        weights,
        changed,
    )
    return weights, changed


def changes_per_minute(spec: StrategySpec, params: npt.ArrayLike, ticks: TickBatch) -> float:
    """Weight changes per minute after warm-up: the turnover the allocator will see."""
    _, changed = run_single(spec, params, ticks)
    if len(ticks) < 2:
        return 0.0
    warm_ns = spec.warmup_s(params) * 1e9
    span_ns = float(ticks.ts_event[-1] - ticks.ts_event[0]) - warm_ns
    if span_ns <= 0:
        return 0.0
    return float(changed.sum()) / (span_ns / 60e9)
