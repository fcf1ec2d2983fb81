"""The grid kernels: one strategy step, many (instrument, parameter set) pairs, CPU or GPU.

`simulate` runs one strategy over one instrument's ticks with one parameter set: it calls the
strategy's own step kernel (the function the live shard runs) on every tick, turns each weight
change into an order, fills the order by the fill model (`costs.py`) and keeps the account:
cash, shares, the equity sampled on a fixed clock, drawdown, turnover, round trips, exposure.
It writes raw accumulators (`ACC_*`) that `metrics.py` turns into ratios.

The same Python source is compiled twice: with `numba.njit` for the CPU grid (`prange` over
every (instrument, set) pair) and, through `tickwise.backtest.gpu`, as a CUDA device function
for the GPU grid (one thread per pair). It therefore uses only scalars, array indexing and
`math`, and allocates nothing.

Per tick, in this order: (1) close the equity samples whose time has come, valued at the mark
before the tick; (2) update the book (bid, ask, last) with the tick; (3) fill the pending order
if this tick is later than its signal tick and at least `latency_ns` after it; (4) step the
strategy; a new target weight becomes the pending order (replacing an unfilled one). So an order
never fills on the tick that caused it, and nothing a step sees comes from a later tick.

Accounting starts with 1.0 of cash per (instrument, set); the target weight w in [0, 1] means
holding shares worth w of current equity, sized at the mark of the fill tick. The mark is the mid
when both quotes are known, else the last trade.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numba as nb
import numpy as np

from tickwise.strategy.api import StrategySpec
from tickwise.strategy.kernels import WEIGHT

# Raw accumulators written by `simulate`, one row per (instrument, set).
ACC_EQUITY = 0  # final equity (start = 1.0)
ACC_SUM_R = 1  # sum of sampled period returns
ACC_SUM_R2 = 2  # sum of squared period returns
ACC_SUM_DOWN2 = 3  # sum of squared negative period returns
ACC_N_R = 4  # number of sampled periods
ACC_MAX_DD = 5  # maximum drawdown, fraction of the running peak
ACC_TURNOVER = 6  # traded notional / equity, summed over fills
ACC_FILLS = 7  # orders filled
ACC_ROUND_TRIPS = 8  # flat -> long -> flat cycles closed
ACC_WINS = 9  # round trips that made money (after fees)
ACC_EXPOSED_S = 10  # seconds with a position
ACC_SPAN_S = 11  # seconds from the first to the last tick
ACC_SIGNALS = 12  # target-weight changes emitted by the strategy
ACC_FEES = 13  # fees paid, in units of the starting equity
N_ACC = 14

# Columns of the optional recording of one pair's signals, fills and equity samples.
REC_SIGNAL_TICK = 0  # index (within the instrument) of the tick that changed the weight
REC_SIGNAL_WEIGHT = 1
N_SIGNAL_COLS = 2
FILL_TICK = 0  # index of the fill tick
FILL_SIGNAL_TICK = 1
FILL_PRICE = 2
FILL_QTY = 3  # signed shares
FILL_FEE = 4
FILL_WEIGHT = 5
FILL_EQUITY = 6  # equity after the fill
N_FILL_COLS = 7
CURVE_TS = 0
CURVE_EQUITY = 1
N_CURVE_COLS = 2

NS = 1e9


def _simulate_source(step: Any, init_state: Any) -> Any:
    """The device-agnostic Python function; `step`/`init_state` are bound by closure."""

    def simulate(
        state: Any,
        params: Any,
        price: Any,
        size: Any,
        kind: Any,
        ts: Any,
        lo: int,
        hi: int,
        fee: float,
        half_spread: float,
        latency_ns: int,
        sample_ns: int,
        trade_from: int,
        acc: Any,
        rec_signals: Any,
        rec_fills: Any,
        rec_curve: Any,
        recording: bool,
    ) -> None:
        init_state(state, params)
        cash = 1.0
        shares = 0.0
        weight = 0.0  # weight of the position as last filled
        pending = False
        pending_w = 0.0
        pending_tick = 0
        pending_ts = 0
        bid = math.nan
        ask = math.nan
        last = math.nan
        peak = 1.0
        max_dd = 0.0
        prev_eq = 1.0
        sum_r = 0.0
        sum_r2 = 0.0
        sum_down2 = 0.0
        n_r = 0
        turnover = 0.0
        fills = 0
        trips = 0
        wins = 0
        entry_eq = 1.0
        exposed_ns = 0.0
        fees = 0.0
        signals = 0
        n_sig = 0
        n_fill = 0
        n_curve = 0
        next_sample = 0
        prev_ts = 0
        first_ts = 0
        trading = False
        for i in range(lo, hi):
            t = ts[i]
            p = price[i]
            k = kind[i]
            # (0) the account opens at `trade_from`: the strategy may have warmed before it, and
            # a weight it already holds then is bought at once (as live, after a hot swap)
            if not trading and t >= trade_from:
                trading = True
                next_sample = t + sample_ns
                prev_ts = t
                first_ts = t
                if state[WEIGHT] != 0.0:
                    pending = True
                    pending_w = state[WEIGHT]
                    pending_tick = i - 1
                    pending_ts = t + latency_ns
            # (1) equity samples due before this tick, at the mark before it
            if trading and t >= next_sample:
                mark = last
                if bid > 0.0 and ask > 0.0:
                    mark = 0.5 * (bid + ask)
                eq = cash + shares * mark if shares != 0.0 else cash
                if prev_eq > 0.0:
                    r = eq / prev_eq - 1.0
                    sum_r += r
                    sum_r2 += r * r
                    if r < 0.0:
                        sum_down2 += r * r
                    n_r += 1
                prev_eq = eq
                if eq > peak:
                    peak = eq
                elif peak > 0.0 and 1.0 - eq / peak > max_dd:
                    max_dd = 1.0 - eq / peak
                if recording and n_curve < rec_curve.shape[0]:
                    rec_curve[n_curve, CURVE_TS] = float(t)
                    rec_curve[n_curve, CURVE_EQUITY] = eq
                    n_curve += 1
                # one sample per gap: a quiet night is one period, not many empty ones
                next_sample = t - (t - next_sample) % sample_ns + sample_ns
            if shares != 0.0:
                exposed_ns += float(t - prev_ts)
            if trading:
                prev_ts = t
            # (2) the book
            if p > 0.0 and p < math.inf:
                if k == 0:
                    last = p
                elif k == 1:
                    bid = p
                elif k == 2:
                    ask = p
            # (3) the pending order fills on a later tick, latency permitting
            if pending and i > pending_tick and t >= pending_ts and (last > 0.0 or bid > 0.0):
                mark = last
                if bid > 0.0 and ask > 0.0:
                    mark = 0.5 * (bid + ask)
                if not mark > 0.0:
                    mark = bid if bid > 0.0 else ask
                equity = cash + shares * mark
                gap = pending_w * equity - shares * mark  # value to buy (+) or sell (-)
                qty = 0.0
                fill_px = mark
                if equity > 0.0 and gap != 0.0:
                    ref = p if (k == 0 and p > 0.0) else mark
                    quoted = ask > 0.0 and bid > 0.0
                    if gap > 0.0:  # buy at the ask; fee included so cash never goes negative
                        fill_px = ask if quoted else ref * (1.0 + half_spread)
                        qty = gap / (fill_px * (1.0 + fee))
                    else:
                        fill_px = bid if quoted else ref * (1.0 - half_spread)
                        qty = -shares if pending_w == 0.0 else gap / mark
                if qty != 0.0:
                    notional = abs(qty) * fill_px
                    fee_paid = notional * fee
                    was_flat = shares == 0.0
                    if was_flat:
                        entry_eq = equity
                    cash -= qty * fill_px + fee_paid
                    shares = 0.0 if pending_w == 0.0 else shares + qty
                    fees += fee_paid
                    turnover += notional / equity
                    fills += 1
                    after = cash + shares * mark
                    if shares == 0.0 and not was_flat:
                        trips += 1
                        if after > entry_eq:
                            wins += 1
                    if recording and n_fill < rec_fills.shape[0]:
                        rec_fills[n_fill, FILL_TICK] = float(i - lo)
                        rec_fills[n_fill, FILL_SIGNAL_TICK] = float(pending_tick - lo)
                        rec_fills[n_fill, FILL_PRICE] = fill_px
                        rec_fills[n_fill, FILL_QTY] = qty
                        rec_fills[n_fill, FILL_FEE] = fee_paid
                        rec_fills[n_fill, FILL_WEIGHT] = pending_w
                        rec_fills[n_fill, FILL_EQUITY] = after
                        n_fill += 1
                weight = pending_w
                pending = False
            # (4) the strategy, exactly as live: a signal is a change of the state's weight
            before = state[WEIGHT]
            w = step(state, params, p, size[i], k, t)
            if w != before:
                if recording and n_sig < rec_signals.shape[0]:
                    rec_signals[n_sig, REC_SIGNAL_TICK] = float(i - lo)
                    rec_signals[n_sig, REC_SIGNAL_WEIGHT] = w
                    n_sig += 1
                if trading:
                    signals += 1
                if trading and (w != weight or pending):
                    pending = w != weight
                    pending_w = w
                    pending_tick = i
                    pending_ts = t + latency_ns
        mark = last
        if bid > 0.0 and ask > 0.0:
            mark = 0.5 * (bid + ask)
        eq = cash + shares * mark if shares != 0.0 else cash
        if eq < peak and peak > 0.0 and 1.0 - eq / peak > max_dd:
            max_dd = 1.0 - eq / peak
        acc[ACC_EQUITY] = eq
        acc[ACC_SUM_R] = sum_r
        acc[ACC_SUM_R2] = sum_r2
        acc[ACC_SUM_DOWN2] = sum_down2
        acc[ACC_N_R] = float(n_r)
        acc[ACC_MAX_DD] = max_dd
        acc[ACC_TURNOVER] = turnover
        acc[ACC_FILLS] = float(fills)
        acc[ACC_ROUND_TRIPS] = float(trips)
        acc[ACC_WINS] = float(wins)
        acc[ACC_EXPOSED_S] = exposed_ns / NS
        acc[ACC_SPAN_S] = float(ts[hi - 1] - first_ts) / NS if trading else 0.0
        acc[ACC_SIGNALS] = float(signals)
        acc[ACC_FEES] = fees
        return

    return simulate


class CpuKernels:
    """The CPU-compiled kernels of one strategy family (built once per family and process)."""

    def __init__(self, spec: StrategySpec) -> None:
        self.spec = spec
        simulate = nb.njit(cache=False)(_simulate_source(spec.step, spec.init_state))
        state_size = spec.state_size

        @nb.njit(parallel=True, cache=False, nogil=True)
        def grid(
            params: Any,
            price: Any,
            size: Any,
            kind: Any,
            ts: Any,
            offsets: Any,
            fee: Any,
            half_spread: float,
            latency_ns: int,
            sample_ns: int,
            trade_from: int,
            order: Any,
            out: Any,
        ) -> None:
            n_sets = params.shape[0]
            no_sig = np.empty((0, N_SIGNAL_COLS))
            no_fill = np.empty((0, N_FILL_COLS))
            no_curve = np.empty((0, N_CURVE_COLS))
            # `order` lists the instruments heaviest first: with small chunks, the long
            # histories start early and the short ones fill the gaps at the end.
            for n in nb.prange(order.shape[0] * n_sets):
                k = order[n // n_sets]
                j = n - (n // n_sets) * n_sets
                state = np.empty(state_size)
                simulate(
                    state, params[j], price, size, kind, ts, offsets[k], offsets[k + 1],
                    fee[k], half_spread, latency_ns, sample_ns, trade_from, out[k, j],
                    no_sig, no_fill, no_curve, False,
                )  # fmt: skip

        @nb.njit(cache=False, nogil=True)
        def record(
            params: Any,
            price: Any,
            size: Any,
            kind: Any,
            ts: Any,
            lo: int,
            hi: int,
            fee: float,
            half_spread: float,
            latency_ns: int,
            sample_ns: int,
            trade_from: int,
            acc: Any,
            rec_signals: Any,
            rec_fills: Any,
            rec_curve: Any,
        ) -> None:
            state = np.empty(state_size)
            simulate(
                state, params, price, size, kind, ts, lo, hi, fee, half_spread,
                latency_ns, sample_ns, trade_from, acc, rec_signals, rec_fills, rec_curve, True,
            )  # fmt: skip

        @nb.njit(parallel=True, cache=False, nogil=True)
        def pairs(
            params: Any,
            price: Any,
            size: Any,
            kind: Any,
            ts: Any,
            offsets: Any,
            fee: Any,
            half_spread: float,
            latency_ns: int,
            sample_ns: int,
            trade_from: int,
            pair_k: Any,
            pair_j: Any,
            out: Any,
        ) -> None:
            """Explicit (instrument, set) pairs: out[n] for instrument pair_k[n], set pair_j[n]."""
            no_sig = np.empty((0, N_SIGNAL_COLS))
            no_fill = np.empty((0, N_FILL_COLS))
            no_curve = np.empty((0, N_CURVE_COLS))
            for n in nb.prange(pair_k.shape[0]):
                k = pair_k[n]
                state = np.empty(state_size)
                simulate(
                    state, params[pair_j[n]], price, size, kind, ts, offsets[k], offsets[k + 1],
                    fee[k], half_spread, latency_ns, sample_ns, trade_from, out[n],
                    no_sig, no_fill, no_curve, False,
                )  # fmt: skip

        self.grid: Any = grid
        self.record: Any = record
        self.pairs: Any = pairs


@functools.cache
def cpu_kernels(name: str) -> CpuKernels:
    """Compiled CPU kernels for the registered strategy `name` (cached per process)."""
    from tickwise.strategy.api import get_strategy

    return CpuKernels(get_strategy(name))
