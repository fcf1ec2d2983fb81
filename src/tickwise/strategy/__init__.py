"""Strategies: compiled step kernels, their parameter spaces, and the live shard that runs them.

Importing the package registers the built-in families (trend, mean_reversion, breakout).
"""

from tickwise.strategy import breakout, mean_reversion, trend
from tickwise.strategy.api import (
    STRATEGIES,
    Param,
    ParamSpace,
    StrategySpec,
    UnknownStrategyError,
    get_strategy,
    parse_grid,
    register_strategy,
    strategy_names,
)
from tickwise.strategy.kernels import HEADER_SIZE, make_batch_runner
from tickwise.strategy.shard import StrategyShard

__all__ = [
    "HEADER_SIZE",
    "STRATEGIES",
    "Param",
    "ParamSpace",
    "StrategyShard",
    "StrategySpec",
    "UnknownStrategyError",
    "breakout",
    "get_strategy",
    "make_batch_runner",
    "mean_reversion",
    "parse_grid",
    "register_strategy",
    "strategy_names",
    "trend",
]
