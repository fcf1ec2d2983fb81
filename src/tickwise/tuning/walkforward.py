"""One walk-forward re-tune of a batch of instruments: train, validate, decide.

Windows end at `end_ns` (the newest tick): validation `[end - valid_s, end)`, training the
`train_s` before it, and `warmup_s` before the training for the strategies' state. Then:

1. **Train**: every candidate set on every instrument of the batch (one grid launch; the
   account opens at the training window's start, the state warms before it). The winner of an
   instrument is its best set by the objective among the sets with at least `min_trades` fills.
2. **Validate**: the winner and the live parameters of each instrument on the validation window,
   which the training did not see (state warmed on everything before it, as live).
3. **Decide** (hysteresis): swap only when the winner's validation score beats the live one's by
   `margin`; otherwise keep. An instrument with fewer than `min_ticks` ticks in its training
   window, or an error, gives "failed": the live parameters stay.

The objective includes the turnover penalty, so a winner must earn its extra trading.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tickwise.backtest.grid import GridBacktester
from tickwise.backtest.objectives import score
from tickwise.backtest.series import TickSeries

NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class WalkForwardConfig:
    train_s: float = 240.0
    valid_s: float = 60.0
    warmup_s: float = 120.0
    objective: str = "sharpe"
    turnover_penalty: float = 0.0
    margin: float = 0.5
    min_trades: int = 2
    min_ticks: int = 200

    def __post_init__(self) -> None:
        for name in ("train_s", "valid_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"tuning {name} must be > 0")
        if self.warmup_s < 0 or self.margin < 0 or self.min_trades < 0 or self.min_ticks < 1:
            raise ValueError("tuning warmup_s, margin, min_trades must be >= 0, min_ticks >= 1")

    @property
    def horizon_s(self) -> float:
        """How much history one re-tune reads."""
        return self.warmup_s + self.train_s + self.valid_s


@dataclass(frozen=True, slots=True)
class Windows:
    start_ns: int  # warm-up starts
    train_from_ns: int
    valid_from_ns: int
    end_ns: int

    @classmethod
    def ending(cls, end_ns: int, cfg: WalkForwardConfig) -> Windows:
        valid_from = end_ns - round(cfg.valid_s * NS)
        train_from = valid_from - round(cfg.train_s * NS)
        return cls(train_from - round(cfg.warmup_s * NS), train_from, valid_from, end_ns)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The decision for one instrument of the batch (`k` = its position in the series)."""

    k: int
    decision: str  # swap | keep | failed
    reason: str
    winner: npt.NDArray[np.float64]  # empty when failed
    winner_train_score: float
    winner_trades: int
    winner_score: float
    live_score: float


def walk_forward(
    bt: GridBacktester,
    series: TickSeries,
    sets: npt.NDArray[np.float64],
    live: npt.NDArray[np.float64],
    windows: Windows,
    cfg: WalkForwardConfig,
) -> list[Outcome]:
    """Re-tune every instrument of `series` (ticks in [windows.start, windows.end))."""
    n = len(series)
    nan = float("nan")
    owner = np.repeat(np.arange(n), series.counts())
    in_train = (series.ts >= windows.train_from_ns) & (series.ts < windows.valid_from_ns)
    in_valid = series.ts >= windows.valid_from_ns
    train_ticks = np.bincount(owner[in_train], minlength=n)
    valid_ticks = np.bincount(owner[in_valid], minlength=n)
    min_valid = max(1, round(cfg.min_ticks * cfg.valid_s / cfg.train_s))
    ok = (train_ticks >= cfg.min_ticks) & (valid_ticks >= min_valid)
    outcomes: dict[int, Outcome] = {}
    for k in np.flatnonzero(~ok):
        reason = (
            f"too few ticks: {int(train_ticks[k])} in training < {cfg.min_ticks}"
            if train_ticks[k] < cfg.min_ticks
            else f"too few ticks: {int(valid_ticks[k])} in validation < {min_valid}"
        )
        outcomes[int(k)] = Outcome(int(k), "failed", reason, np.empty(0), nan, 0, nan, nan)
    chosen = np.flatnonzero(ok)
    if chosen.size:
        full = series.select(chosen)  # the instruments with enough ticks, whole window
        train = full.until(windows.valid_from_ns - 1)
        result = bt.run(
            train, sets, cfg.objective, cfg.turnover_penalty, trade_from_ns=windows.train_from_ns
        )
        trades = result.metrics["trades"]
        ranked = np.where(trades >= cfg.min_trades, result.score, -np.inf)
        best = np.argmax(ranked, axis=1)
        # validation: winner and live of each instrument, pairs (k, set) over the whole window
        pair_sets = np.concatenate([sets[best], live[chosen]])
        pair_k = np.concatenate([np.arange(chosen.size), np.arange(chosen.size)])
        metrics = bt.run_pairs(
            full, pair_sets, pair_k, np.arange(pair_k.size), trade_from_ns=windows.valid_from_ns
        )
        valid = score(metrics, cfg.objective, cfg.turnover_penalty)
        for i, k in enumerate(chosen):
            b = int(best[i])
            w_train = float(ranked[i, b])
            w_valid, l_valid = float(valid[i]), float(valid[chosen.size + i])
            winner = sets[b].copy()
            if not np.isfinite(w_train):
                decision, reason = "keep", f"no set made {cfg.min_trades} trades in training"
            elif np.array_equal(winner, live[k]):
                decision, reason = "keep", "the live parameters won the training"
            elif w_valid > l_valid + cfg.margin:
                decision, reason = "swap", f"validation {w_valid:.3g} > live {l_valid:.3g} + margin"
            else:
                decision, reason = "keep", f"margin not met: {w_valid:.3g} vs live {l_valid:.3g}"
            outcomes[int(k)] = Outcome(
                int(k), decision, reason, winner, w_train, int(trades[i, b]), w_valid, l_valid
            )
    return [outcomes[k] for k in range(n)]
