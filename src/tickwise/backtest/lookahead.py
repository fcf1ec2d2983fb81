"""The look-ahead guard: a signal at time t must not change when the ticks after t are removed.

Step kernels are online by construction (one tick in, one weight out), but a strategy can still
cheat: a state primed from a whole-series statistic, a parameter derived from the future, a
helper that peeks at the next element. `check_lookahead` replays a strategy on the full history
and on histories cut at chosen times, and compares: every signal at or before the cut must be
the same (time and weight), and the cut run must emit none the full run does not. It also
checks the fill rule: no fill on the tick of its own signal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from tickwise.backtest.grid import GridBacktester
from tickwise.backtest.series import TickSeries


@dataclass(slots=True)
class LookaheadReport:
    """What the check compared and every discrepancy it found (empty = clean)."""

    strategy: str
    cuts: list[int]
    signals_compared: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def default_cuts(series: TickSeries, k: int, n: int = 8, seed: int = 0) -> list[int]:
    """`n` cut times inside instrument k's history: random ticks plus the signal ticks."""
    lo, hi = int(series.offsets[k]), int(series.offsets[k + 1])
    if hi - lo < 2:
        return []
    rng = np.random.default_rng(seed)
    picks = rng.integers(lo, hi - 1, size=n)
    return sorted({int(series.ts[i]) for i in picks})


def check_lookahead(
    backtester: GridBacktester,
    series: TickSeries,
    params: npt.ArrayLike,
    instruments: Sequence[int] | None = None,
    cuts: Sequence[int] | None = None,
) -> LookaheadReport:
    """Replay each instrument whole and cut at `cuts` (default: random ticks) and compare."""
    chosen = range(len(series)) if instruments is None else instruments
    report = LookaheadReport(backtester.spec.name, [])
    for k in chosen:
        full = backtester.record(series, k, params)
        early = full.fills["tick"] <= full.fills["signal_tick"]
        if early.any():
            i = int(np.flatnonzero(early)[0])
            report.problems.append(
                f"{full.symbol}: fill #{i} on tick {int(full.fills['tick'][i])}, not after its "
                f"signal tick {int(full.fills['signal_tick'][i])}"
            )
        for cut in default_cuts(series, k) if cuts is None else cuts:
            report.cuts.append(int(cut))
            part = backtester.record(series.until(int(cut)), k, params)
            keep = full.signal_ts <= cut
            expected_ts, expected_w = full.signal_ts[keep], full.signal_weight[keep]
            report.signals_compared += int(expected_ts.size)
            if not (
                np.array_equal(part.signal_ts, expected_ts)
                and np.array_equal(part.signal_weight, expected_w)
            ):
                report.problems.append(
                    f"{full.symbol}: cut at {cut}: {part.signal_ts.size} signals, "
                    f"expected {expected_ts.size} (first difference at "
                    f"{_first_difference(part.signal_ts, expected_ts)})"
                )
    return report


def _first_difference(a: npt.NDArray[np.int64], b: npt.NDArray[np.int64]) -> str:
    n = min(a.size, b.size)
    diff = np.flatnonzero(a[:n] != b[:n])
    if diff.size:
        return f"signal #{int(diff[0])}"
    return f"signal #{n}" if a.size != b.size else "none"
