"""The step-kernel toolkit: state layout, shared njit helpers and the batch-runner factory.

A strategy's whole memory is one float64 vector (`state`). Its first `HEADER_SIZE` slots have the
same meaning for every strategy, so the shard, the backtester and the tuner can read the last
quote, the current weight and the warm-up clock without knowing the strategy; the slots after the
header belong to the strategy.

Every helper here takes and returns plain scalars and 1-D float64 arrays and never allocates, so
a step function built from them compiles in numba's CPU mode (called from other @njit code, also
under `prange`) and as a `numba.cuda` device function.

Time: tick timestamps are int64 ns; the state stores them as float64 ns, which is exact to about
0.25 us for present-day dates: ample for time constants measured in seconds, and rounded the
same way on every path, so live and backtest agree bit for bit.

Smoothing is continuous-time: over a gap of `dt` seconds an EMA with time constant `tau` moves a
fraction `alpha = 1 - exp(-dt / tau)` of the way towards the price that prevailed during the gap
(the previous decision price). This is the exact EMA of the piecewise-constant price path, so
a strategy's behaviour does not depend on the tick rate, and trades sharing a timestamp count
once (the last one wins) instead of being over-weighted.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numba as nb
import numpy as np

# Header slots, shared by every strategy.
BID = 0  # last bid price (NaN until seen)
ASK = 1  # last ask price (NaN until seen)
LAST_PRICE = 2  # last trade price (NaN until seen)
LAST_TS = 3  # ts_event of the last tick of any kind, ns
TICKS = 4  # ticks seen, all kinds
WEIGHT = 5  # current target weight in [0, 1]
DECISIONS = 6  # decision prices seen since the last (re)warm-up
FIRST_TS = 7  # ts of the first decision price since the last (re)warm-up, ns
CHANGE_TS = 8  # ts of the last weight change, ns (-inf before the first)
EVAL_TS = 9  # ts of the previous decision price, ns: the EMA clock
EVAL_PRICE = 10  # the previous decision price: the price that prevailed since EVAL_TS
HEADER_SIZE = 11

TRADE = 0
BID_KIND = 1
ASK_KIND = 2

NS_PER_S = 1e9
# The smallest standard deviation a z-score divides by, as a fraction of price: guards a
# division by zero on a stale price without changing any realistic decision.
SD_FLOOR_FRACTION = 1e-6


@nb.njit(cache=True, inline="always")
def init_header(state: Any) -> None:
    """Reset the header to "nothing seen": no quote, weight 0, warm-up not started."""
    state[BID] = np.nan
    state[ASK] = np.nan
    state[LAST_PRICE] = np.nan
    state[LAST_TS] = np.nan
    state[TICKS] = 0.0
    state[WEIGHT] = 0.0
    state[DECISIONS] = 0.0
    state[FIRST_TS] = np.nan
    state[CHANGE_TS] = -np.inf
    state[EVAL_TS] = np.nan
    state[EVAL_PRICE] = np.nan


@nb.njit(cache=True, inline="always")
def restart_warmup(state: Any) -> None:
    """Forget the warm-up clock (after new parameters) but keep quotes, weight and hold clock."""
    state[DECISIONS] = 0.0
    state[FIRST_TS] = np.nan
    state[EVAL_TS] = np.nan
    state[EVAL_PRICE] = np.nan


@nb.njit(cache=True, inline="always")
def observe(state: Any, price: float, kind: int, ts_ns: int, on_mid: bool) -> float:
    """Record one tick in the header and return its decision price, or NaN if it has none.

    Trades update the last price, quotes the bid or ask. With `on_mid` False the decision price
    is the trade price (quotes return NaN); with `on_mid` True it is the mid after a quote once
    both sides are known (trades return NaN). Non-positive or non-finite prices and unknown
    kinds are counted but otherwise ignored.
    """
    state[TICKS] += 1.0
    if not (price > 0.0 and price < np.inf):
        return np.nan
    state[LAST_TS] = float(ts_ns)
    if kind == TRADE:
        state[LAST_PRICE] = price
        if on_mid:
            return np.nan
        return price
    if kind == BID_KIND:
        state[BID] = price
    elif kind == ASK_KIND:
        state[ASK] = price
    else:
        return np.nan
    if not on_mid:
        return np.nan
    bid = state[BID]
    ask = state[ASK]
    if bid > 0.0 and ask > 0.0:
        return 0.5 * (bid + ask)
    return np.nan


@nb.njit(cache=True, inline="always")
def advance_clock(state: Any, ts_ns: int) -> float:
    """Start a decision: elapsed seconds since the previous decision price, or -1.0 on the first.

    Out-of-order timestamps count as no elapsed time. The caller reads `state[EVAL_PRICE]` (the
    price that prevailed over the gap) and then stores the new price with `end_decision`.
    """
    t = float(ts_ns)
    state[DECISIONS] += 1.0
    last = state[EVAL_TS]
    if math.isnan(last):  # first decision since (re)warm-up
        state[FIRST_TS] = t
        state[EVAL_TS] = t
        return -1.0
    dt = (t - last) / NS_PER_S
    if dt <= 0.0:
        return 0.0
    state[EVAL_TS] = t
    return dt


@nb.njit(cache=True, inline="always")
def end_decision(state: Any, price: float) -> None:
    """Remember the decision price: it prevails until the next decision tick."""
    state[EVAL_PRICE] = price


@nb.njit(cache=True, inline="always")
def decay(dt_s: float, tau_s: float) -> float:
    """The weight `exp(-dt / tau)` an EMA keeps over a gap of dt seconds."""
    if dt_s <= 0.0:
        return 1.0
    return math.exp(-dt_s / tau_s)


@nb.njit(cache=True, inline="always")
def ema_update(ema: float, held: float, dt_s: float, tau_s: float) -> float:
    """Move an EMA towards the price held over the last `dt_s` s: alpha = 1 - exp(-dt / tau)."""
    return held + (ema - held) * decay(dt_s, tau_s)


@nb.njit(cache=True, inline="always")
def warm_since(state: Any, warmup_s: float, min_decisions: float) -> bool:
    """Whether `warmup_s` seconds and `min_decisions` decision prices have passed since warm-up."""
    if state[DECISIONS] < min_decisions:
        return False
    return (state[EVAL_TS] - state[FIRST_TS]) >= warmup_s * NS_PER_S


@nb.njit(cache=True, inline="always")
def commit_weight(state: Any, desired: float, ts_ns: int, min_hold_s: float) -> float:
    """Adopt `desired` (clipped to [0, 1]) unless the last change is younger than `min_hold_s`."""
    target = min(max(desired, 0.0), 1.0)
    current = state[WEIGHT]
    if target != current and float(ts_ns) - state[CHANGE_TS] >= min_hold_s * NS_PER_S:
        state[WEIGHT] = target
        state[CHANGE_TS] = float(ts_ns)
        return target
    return current


def make_batch_runner(step: Any) -> Any:
    """An njit function that runs `step` over a batch of ticks in one compiled call.

    The runner's signature is
    `(states[n, S], params[n, P], row[m], price[m], size[m], kind[m], ts[m], out_weight[m],
    out_changed[m])`: tick i is applied to row `row[i]` of `states`/`params` (ticks with
    `row[i] < 0` are skipped, weight NaN, not changed), `out_weight[i]` is the target weight after
    the tick and `out_changed[i]` whether that tick changed it. Ticks of one row must come in
    time order; rows are independent of one another.
    """

    @nb.njit(cache=True)
    def run_batch(
        states: Any,
        params: Any,
        row: Any,
        price: Any,
        size: Any,
        kind: Any,
        ts: Any,
        out_weight: Any,
        out_changed: Any,
    ) -> None:
        for i in range(row.shape[0]):
            j = row[i]
            if j < 0:
                out_weight[i] = np.nan
                out_changed[i] = False
                continue
            state = states[j]
            before = state[WEIGHT]
            w = step(
                state,
                params[j],
                np.float64(price[i]),
                np.float64(size[i]),
                np.int64(kind[i]),
                np.int64(ts[i]),
            )
            out_weight[i] = w
            out_changed[i] = w != before

    return run_batch


@functools.cache
def batch_runner(step: Any) -> Any:
    """The batch runner of `step`, built once per process and shared by every caller."""
    return make_batch_runner(step)


@nb.njit(cache=True)
def quotes_at_ticks(
    row: Any,
    price: Any,
    kind: Any,
    start_bid: Any,
    start_ask: Any,
    wanted: Any,
    out_bid: Any,
    out_ask: Any,
) -> None:
    """The bid and ask each row knew right after each wanted tick (NaN if none yet).

    `start_bid`/`start_ask` are the rows' quotes before the batch; they are updated in place to
    the quotes after it. Used to stamp signals with the top of book the strategy saw.
    """
    for i in range(row.shape[0]):
        j = row[i]
        if j < 0:
            continue
        p = price[i]
        if p > 0.0 and p < np.inf:
            if kind[i] == BID_KIND:
                start_bid[j] = p
            elif kind[i] == ASK_KIND:
                start_ask[j] = p
        if wanted[i]:
            out_bid[i] = start_bid[j]
            out_ask[i] = start_ask[j]
