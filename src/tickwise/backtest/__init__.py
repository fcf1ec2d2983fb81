"""The grid backtester: many parameter sets x many instruments, with the live step kernels.

Read in the order of the data flow: `series` (ticks laid out per instrument), `costs` (the fill
model), `kernels` (the simulation every pair runs, CPU build), `gpu` (the CUDA build), `metrics`
and `objectives` (from accumulators to a ranking), `grid` (the public entry point), `lookahead`
(the causality check), `report` (HTML and PNG).
"""

from tickwise.backtest.costs import FEES_BPS, FillModel
from tickwise.backtest.grid import GridBacktester, GridResult, Recording
from tickwise.backtest.metrics import METRICS
from tickwise.backtest.objectives import OBJECTIVES, register_objective, score
from tickwise.backtest.series import BacktestInputError, TickSeries

__all__ = [
    "FEES_BPS",
    "METRICS",
    "OBJECTIVES",
    "BacktestInputError",
    "FillModel",
    "GridBacktester",
    "GridResult",
    "Recording",
    "TickSeries",
    "register_objective",
    "score",
]
