"""Channel breakout with a trailing stop.

The channel is an EMA mean over `lookback_s` with a high and a low that jump to new extremes and
otherwise decay towards the mean with the same time constant: a time-based stand-in for the
rolling max/min that needs no window buffer. Long when a trade prints above the channel high by
more than `entry` (a fraction); flat when a trade prints below the channel low or falls `stop`
(a fraction) below the highest trade since entry. The channel is built from prices before the
current trade, so a trade is compared with the past only. It trades once `lookback_s` seconds
of trades have been seen.

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
    decay,
    end_decision,
    init_header,
    observe,
    warm_since,
)

# Parameter vector layout.
LOOKBACK_S = 0
ENTRY = 1
STOP = 2
MIN_HOLD_S = 3

# State slots after the header.
MEAN = HEADER_SIZE + 0
HIGH = HEADER_SIZE + 1
LOW = HEADER_SIZE + 2
PEAK = HEADER_SIZE + 3  # highest trade since the position was opened
STATE_SIZE = HEADER_SIZE + 4

MIN_DECISIONS = 2.0

PARAMS = ParamSpace(
    (
        Param("lookback_s", 10.0, 3600.0, 240.0),
        Param("entry", 0.0, 0.02, 0.0001),
        Param("stop", 0.0001, 0.05, 0.0008),
        Param("min_hold_s", 1.0, 1800.0, 30.0),
    )
)


@nb.njit(cache=True)
def init_state(state: Any, params: Any) -> None:
    init_header(state)
    state[MEAN] = np.nan
    state[HIGH] = np.nan
    state[LOW] = np.nan
    state[PEAK] = np.nan


@nb.njit(cache=True)
def step(state: Any, params: Any, price: float, size: float, kind: int, ts_ns: int) -> float:
    """Fold one tick into the channel; return the target weight (0 or 1)."""
    p = observe(state, price, kind, ts_ns, False)
    if not p > 0.0:
        return state[WEIGHT]
    dt = advance_clock(state, ts_ns)
    if dt < 0.0 or math.isnan(state[MEAN]):
        state[MEAN] = p
        state[HIGH] = p
        state[LOW] = p
    else:
        held = state[EVAL_PRICE]
        keep = decay(dt, params[LOOKBACK_S])
        mean = held + (state[MEAN] - held) * keep
        state[MEAN] = mean
        state[HIGH] = max(mean + (state[HIGH] - mean) * keep, held)
        state[LOW] = min(mean + (state[LOW] - mean) * keep, held)
    end_decision(state, p)
    if state[WEIGHT] > 0.0:
        state[PEAK] = p if math.isnan(state[PEAK]) else max(state[PEAK], p)
    if not warm_since(state, params[LOOKBACK_S], MIN_DECISIONS):
        return state[WEIGHT]
    before = state[WEIGHT]
    desired = before
    if before <= 0.0:
        if p > state[HIGH] * (1.0 + params[ENTRY]):
            desired = 1.0
    elif p < state[LOW] or p < state[PEAK] * (1.0 - params[STOP]):
        desired = 0.0
    w = commit_weight(state, desired, ts_ns, params[MIN_HOLD_S])
    if w != before:
        state[PEAK] = p if w > 0.0 else np.nan
    return w


BREAKOUT = register_strategy(
    StrategySpec(
        name="breakout",
        family="breakout",
        params=PARAMS,
        state_size=STATE_SIZE,
        step=step,
        init_state=init_state,
        constraint=None,
        warmup_param="lookback_s",
        description="long above the EMA channel high (+entry); flat below its low or on a stop",
    )
)
