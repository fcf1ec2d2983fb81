"""Objectives: what "best" means when a grid is ranked, as small plug-ins.

An objective maps the metrics of every (instrument, set) to one score, higher is better. Each
built-in subtracts `turnover_penalty` x turnover, so two sets that earn the same are told apart
by what they cost to run (the fee model already charges fees; the penalty prices what it does
not: market impact, the load on 30,000 accounts). Register another with `register_objective`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt

from tickwise.backtest.series import BacktestInputError

Metrics = Mapping[str, npt.NDArray[np.float64]]
Objective = Callable[[Metrics, float], npt.NDArray[np.float64]]

OBJECTIVES: dict[str, Objective] = {}


def register_objective(name: str) -> Callable[[Objective], Objective]:
    def add(fn: Objective) -> Objective:
        if name in OBJECTIVES:
            raise ValueError(f"objective {name!r} is already registered")
        OBJECTIVES[name] = fn
        return fn

    return add


def get_objective(name: str) -> Objective:
    try:
        return OBJECTIVES[name]
    except KeyError:
        known = ", ".join(sorted(OBJECTIVES))
        raise BacktestInputError(f"unknown objective {name!r} (known: {known})") from None


def score(metrics: Metrics, name: str = "sharpe", turnover_penalty: float = 0.0) -> npt.NDArray:
    """The objective `name` of every (instrument, set); NaN-free (undefined scores -> -inf)."""
    if not (turnover_penalty >= 0.0 and np.isfinite(turnover_penalty)):
        raise BacktestInputError("turnover_penalty must be a finite number >= 0")
    values = np.asarray(get_objective(name)(metrics, turnover_penalty), np.float64)
    return np.where(np.isfinite(values), values, -np.inf)


def _penalty(metrics: Metrics, turnover_penalty: float) -> npt.NDArray[np.float64]:
    return turnover_penalty * np.asarray(metrics["turnover"], np.float64)


@register_objective("sharpe")
def sharpe(metrics: Metrics, turnover_penalty: float) -> npt.NDArray[np.float64]:
    """Annualised Sharpe ratio minus the turnover penalty."""
    return np.asarray(metrics["sharpe"]) - _penalty(metrics, turnover_penalty)


@register_objective("sortino")
def sortino(metrics: Metrics, turnover_penalty: float) -> npt.NDArray[np.float64]:
    """Annualised Sortino ratio minus the turnover penalty."""
    return np.asarray(metrics["sortino"]) - _penalty(metrics, turnover_penalty)


@register_objective("return_drawdown")
def return_drawdown(metrics: Metrics, turnover_penalty: float) -> npt.NDArray[np.float64]:
    """Total return over max drawdown (a drawdown floor of 1 bp keeps it finite)."""
    ratio = np.asarray(metrics["total_return"]) / np.maximum(metrics["max_drawdown"], 1e-4)
    return ratio - _penalty(metrics, turnover_penalty)


@register_objective("return")
def total_return(metrics: Metrics, turnover_penalty: float) -> npt.NDArray[np.float64]:
    """Total return minus the turnover penalty."""
    return np.asarray(metrics["total_return"]) - _penalty(metrics, turnover_penalty)
