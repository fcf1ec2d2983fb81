"""Mean reversion on the z-score of price against its time-based EMA mean and variance.

z = (price - mean) / sd with the mean and variance tracked over `lookback_s`. Long when the price
is stretched below its mean (z < -entry_z), flat again once it has come back (z > -exit_z);
`exit_z < entry_z` gives the hysteresis. It trades once `lookback_s` seconds of trades (and at
least `MIN_DECISIONS` of them) have been seen, so the variance means something.

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
    SD_FLOOR_FRACTION,
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
ENTRY_Z = 1
EXIT_Z = 2
MIN_HOLD_S = 3

# State slots after the header.
MEAN = HEADER_SIZE + 0
VAR = HEADER_SIZE + 1
STATE_SIZE = HEADER_SIZE + 2

MIN_DECISIONS = 20.0

PARAMS = ParamSpace(
    (
        Param("lookback_s", 10.0, 3600.0, 90.0),
        Param("entry_z", 0.5, 5.0, 1.5),
        Param("exit_z", -3.0, 3.0, 0.0),
        Param("min_hold_s", 1.0, 1800.0, 30.0),
    )
)


@nb.njit(cache=True)
def init_state(state: Any, params: Any) -> None:
    init_header(state)
    state[MEAN] = np.nan
    state[VAR] = 0.0


@nb.njit(cache=True)
def step(state: Any, params: Any, price: float, size: float, kind: int, ts_ns: int) -> float:
    """Fold one tick into the EMA mean/variance; return the target weight (0 or 1)."""
    p = observe(state, price, kind, ts_ns, False)
    if not p > 0.0:
        return state[WEIGHT]
    dt = advance_clock(state, ts_ns)
    if dt < 0.0 or math.isnan(state[MEAN]):
        state[MEAN] = p
        state[VAR] = 0.0
    else:
        # Exponentially weighted mean and variance of the price held over the gap.
        alpha = 1.0 - decay(dt, params[LOOKBACK_S])
        diff = state[EVAL_PRICE] - state[MEAN]
        incr = alpha * diff
        state[MEAN] += incr
        state[VAR] = (1.0 - alpha) * (state[VAR] + diff * incr)
    end_decision(state, p)
    if not warm_since(state, params[LOOKBACK_S], MIN_DECISIONS):
        return state[WEIGHT]
    sd = max(math.sqrt(state[VAR]), SD_FLOOR_FRACTION * p)
    z = (p - state[MEAN]) / sd
    desired = state[WEIGHT]
    if z < -params[ENTRY_Z]:
        desired = 1.0
    elif z > -params[EXIT_Z]:
        desired = 0.0
    return commit_weight(state, desired, ts_ns, params[MIN_HOLD_S])


@nb.njit(cache=True)
def constraint(params: Any) -> bool:
    """The exit threshold must sit inside the entry threshold (hysteresis)."""
    return params[EXIT_Z] < params[ENTRY_Z]


MEAN_REVERSION = register_strategy(
    StrategySpec(
        name="mean_reversion",
        family="mean_reversion",
        params=PARAMS,
        state_size=STATE_SIZE,
        step=step,
        init_state=init_state,
        constraint=constraint,
        warmup_param="lookback_s",
        description="long below -entry_z of the EMA z-score, flat above -exit_z",
    )
)
