"""From the kernels' raw accumulators to the figures a backtest reports.

Per (instrument, parameter set):

- `total_return`: final equity / starting equity - 1 (open positions marked at the last mid, or
  the last trade when no quotes).
- `sharpe`, `sortino`: mean period return over its standard deviation (Sortino: over the root
  mean square of the negative returns), annualised by sqrt(periods per year). A period is
  `sample_s` seconds of the instrument's trading time (a quiet gap counts as one period), and a
  year is 252 sessions of 6.5 h for equities and 365 days for crypto. Zero when undefined.
- `max_drawdown`: the largest fall of sampled equity from its running peak, as a fraction.
- `turnover`: traded notional over equity at each fill, summed (1.0 = the account turned over
  once; a round trip at full weight is about 2).
- `trades`: orders filled. `round_trips`: flat -> long -> flat cycles; `hit_rate`: the share of
  those that made money after fees (NaN with none).
- `exposure`: the share of the time span with a position.
- `signals`: target-weight changes; `fees`: fees paid as a fraction of the starting equity.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tickwise.backtest import kernels as kn

METRICS: tuple[str, ...] = (
    "total_return",
    "sharpe",
    "sortino",
    "max_drawdown",
    "turnover",
    "trades",
    "round_trips",
    "hit_rate",
    "exposure",
    "signals",
    "fees",
)


def from_accumulators(
    acc: npt.NDArray[np.float64],
    sample_s: float,
    seconds_per_year: npt.NDArray[np.float64],
) -> dict[str, npt.NDArray[np.float64]]:
    """Metrics from `acc` of shape (..., N_ACC); `seconds_per_year` broadcasts against (...)."""
    a = np.asarray(acc, dtype=np.float64)
    n = a[..., kn.ACC_N_R]
    periods_per_year = np.asarray(seconds_per_year, np.float64) / sample_s
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(n > 0, a[..., kn.ACC_SUM_R] / n, 0.0)
        var = np.where(n > 1, (a[..., kn.ACC_SUM_R2] - n * mean**2) / (n - 1), 0.0)
        sd = np.sqrt(np.maximum(var, 0.0))
        down = np.where(n > 0, np.sqrt(a[..., kn.ACC_SUM_DOWN2] / n), 0.0)
        scale = np.sqrt(periods_per_year)
        sharpe = np.where(sd > 1e-15, mean / sd * scale, 0.0)
        sortino = np.where(down > 1e-15, mean / down * scale, 0.0)
        trips = a[..., kn.ACC_ROUND_TRIPS]
        hit = np.where(trips > 0, a[..., kn.ACC_WINS] / trips, np.nan)
        span = a[..., kn.ACC_SPAN_S]
        exposure = np.where(span > 0, a[..., kn.ACC_EXPOSED_S] / span, 0.0)
    return {
        "total_return": a[..., kn.ACC_EQUITY] - 1.0,
        "sharpe": sharpe,
        "sortino": sortino,
        "max_drawdown": a[..., kn.ACC_MAX_DD],
        "turnover": a[..., kn.ACC_TURNOVER],
        "trades": a[..., kn.ACC_FILLS],
        "round_trips": trips,
        "hit_rate": hit,
        "exposure": np.clip(exposure, 0.0, 1.0),
        "signals": a[..., kn.ACC_SIGNALS],
        "fees": a[..., kn.ACC_FEES],
    }
