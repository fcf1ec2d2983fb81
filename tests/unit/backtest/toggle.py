"""A test strategy with a known schedule: the weight toggles every `period` ticks.

Its signals are known in advance, so fills, fees and equity can be checked against arithmetic
done by hand, independently of the kernels.
"""

from __future__ import annotations

from typing import Any

import numba as nb

from tickwise.strategy.api import STRATEGIES, Param, ParamSpace, StrategySpec, register_strategy
from tickwise.strategy.kernels import (
    HEADER_SIZE,
    TICKS,
    WEIGHT,
    commit_weight,
    init_header,
    observe,
)

PERIOD = 0


@nb.njit(cache=True)
def _init(state: Any, params: Any) -> None:
    init_header(state)


@nb.njit(cache=True)
def _step(state: Any, params: Any, price: float, size: float, kind: int, ts_ns: int) -> float:
    observe(state, price, kind, ts_ns, False)
    if state[TICKS] % params[PERIOD] == 0.0:
        return commit_weight(state, 1.0 - state[WEIGHT], ts_ns, 0.0)
    return state[WEIGHT]


def toggle_spec() -> StrategySpec:
    """Register the strategy (the caller removes it with `unregister`)."""
    if "test_toggle" in STRATEGIES:
        return STRATEGIES["test_toggle"]
    return register_strategy(
        StrategySpec(
            name="test_toggle",
            family="test_toggle",
            params=ParamSpace((Param("period", 1.0, 1e6, 3.0, integer=True),)),
            state_size=HEADER_SIZE,
            step=_step,
            init_state=_init,
        )
    )


def unregister() -> None:
    STRATEGIES.pop("test_toggle", None)
