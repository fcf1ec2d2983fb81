"""Trend following by an EMA cross with a hysteresis band and a minimum holding time.

Long when the fast EMA rises above the slow one by more than `band` (a fraction of the slow
EMA), flat when it falls below by more than `band`; in between the weight stays where it is.
Both EMAs are time-based (time constants in seconds), so the strategy reads the same on a quiet
and on a busy tape. It trades once `slow_s` seconds of trades have been seen.

Defaults are chosen for turnover (see `calibration.py`): on a tape of about 10 trades/s at
~2 %/day volatility the weight changes about once every 2-3 minutes.
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np

from tickwise.strategy.api import Param, ParamSpace, StrategySpec, register_strategy
from tickwise.strategy.kernels import (
    EVAL_PRICE,
    HEADER_SIZE,
    WEIGHT,
    advance_clock,
    commit_weight,
    ema_update,
    end_decision,
    init_header,
    observe,
    warm_since,
)

# Parameter vector layout.
FAST_S = 0
SLOW_S = 1
BAND = 2
MIN_HOLD_S = 3

# State slots after the header.
FAST = HEADER_SIZE + 0
SLOW = HEADER_SIZE + 1
STATE_SIZE = HEADER_SIZE + 2

MIN_DECISIONS = 2.0

PARAMS = ParamSpace(
    (
        Param("fast_s", 2.0, 600.0, 10.0),
        Param("slow_s", 10.0, 3600.0, 60.0),
        Param("band", 0.0, 0.01, 0.0002),
        Param("min_hold_s", 1.0, 1800.0, 30.0),
    )
)


@nb.njit(cache=True)
def init_state(state: Any, params: Any) -> None:
    init_header(state)
    state[FAST] = np.nan
    state[SLOW] = np.nan


@nb.njit(cache=True)
def step(state: Any, params: Any, price: float, size: float, kind: int, ts_ns: int) -> float:
    """Fold one tick into the EMA-cross state; return the target weight (0 or 1)."""
    p = observe(state, price, kind, ts_ns, False)
    if not p > 0.0:
        return state[WEIGHT]
    dt = advance_clock(state, ts_ns)
    if dt < 0.0 or math.isnan(state[FAST]):
        state[FAST] = p
        state[SLOW] = p
    else:
        held = state[EVAL_PRICE]
        state[FAST] = ema_update(state[FAST], held, dt, params[FAST_S])
        state[SLOW] = ema_update(state[SLOW], held, dt, params[SLOW_S])
    end_decision(state, p)
    if not warm_since(state, params[SLOW_S], MIN_DECISIONS):
        return state[WEIGHT]
    desired = state[WEIGHT]
    band = params[BAND]
    if state[FAST] > state[SLOW] * (1.0 + band):
        desired = 1.0
    elif state[FAST] < state[SLOW] * (1.0 - band):
        desired = 0.0
    return commit_weight(state, desired, ts_ns, params[MIN_HOLD_S])


@nb.njit(cache=True)
def constraint(params: Any) -> bool:
    """The fast EMA must be faster than the slow one."""
    return params[FAST_S] < params[SLOW_S]


TREND = register_strategy(
    StrategySpec(
        name="trend",
        family="trend",
        params=PARAMS,
        state_size=STATE_SIZE,
        step=step,
        init_state=init_state,
        constraint=constraint,
        warmup_param="slow_s",
        description="EMA cross (fast_s vs slow_s) with a +/- band and a minimum holding time",
    )
)
