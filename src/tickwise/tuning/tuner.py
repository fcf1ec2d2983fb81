"""`Tuner`: which instruments are due, re-tune them in batches, keep the live parameters.

Every instrument is due every `every_s` seconds (wall clock) or once `every_ticks` new ticks
arrived since its last re-tune, whichever comes first. A round takes the most overdue
instruments of one strategy, up to `batch` of them, so one kernel launch serves many, and runs
`walk_forward` on the rolling window. The tuner keeps what it believes is live: the caller
applies each swap to the strategy shard (the engine's tuner actor does) and the tuner records
every decision as a `Retune`.

Plain Python and numpy: the engine wraps it in an actor; nothing here imports ray.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from tickwise.backtest.costs import FillModel
from tickwise.backtest.grid import GridBacktester
from tickwise.model.instruments import InstrumentRegistry
from tickwise.model.ticks import TickBatch
from tickwise.strategy.api import get_strategy
from tickwise.tuning.records import Retune
from tickwise.tuning.space import sample_sets
from tickwise.tuning.walkforward import Outcome, WalkForwardConfig, Windows, walk_forward
from tickwise.tuning.window import RollingWindow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TunerConfig:
    """Schedule and search of the tuner (the walk-forward's own knobs in `walk`)."""

    every_s: float = 60.0
    every_ticks: int = 20_000
    batch: int = 64
    sets: int = 512
    search: Mapping[str, str] = field(default_factory=dict)  # strategy -> "name=low:high,..."
    seed: int = 0
    device: str = "auto"
    sample_s: float = 10.0
    walk: WalkForwardConfig = field(default_factory=WalkForwardConfig)

    def __post_init__(self) -> None:
        if not self.every_s > 0 or self.every_ticks < 1 or self.batch < 1 or self.sets < 1:
            raise ValueError("tuning every_s, every_ticks, batch and sets must be positive")


@dataclass(slots=True)
class _Group:
    """The instruments of one strategy: its backtester, candidate sets and live parameters."""

    strategy: str
    members: npt.NDArray[np.int64]  # global instrument indexes
    bt: GridBacktester
    sets: npt.NDArray[np.float64]
    live: npt.NDArray[np.float64]  # (n_instruments_global, n_params), rows of members used


@dataclass(slots=True)
class TunerStats:
    runs: int = 0
    swaps: int = 0
    failed: int = 0
    errors: int = 0
    rounds: int = 0
    busy_s: float = 0.0
    sets_evaluated: int = 0
    set_ticks: int = 0  # parameter sets x ticks backtested (the grid's work)
    periods_s: list[float] = field(default_factory=list)
    tuned: set[int] = field(default_factory=set)


class Tuner:
    """Re-tunes the instruments of `strategies` (strategy name -> (instruments, live params))."""

    def __init__(
        self,
        registry: InstrumentRegistry,
        strategies: Mapping[str, tuple[npt.ArrayLike, npt.ArrayLike]],
        config: TunerConfig | None = None,
        fill: FillModel | None = None,
        run_id: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.config = cfg = config or TunerConfig()
        self.run_id = run_id
        self._clock = clock
        self.window = RollingWindow(registry, cfg.walk.horizon_s + 5.0)
        n = len(registry)
        self._groups: list[_Group] = []
        self._group_of = np.full(n, -1, np.int64)
        for name, (members, params) in strategies.items():
            spec = get_strategy(name)
            idx = np.asarray(members, np.int64).ravel()
            live = np.tile(spec.defaults(), (n, 1))
            given = np.asarray(params, np.float64)
            live[idx] = given if given.ndim == 2 else np.tile(given, (idx.size, 1))
            sets = sample_sets(spec, cfg.sets, cfg.search.get(name), seed=cfg.seed)
            bt = GridBacktester(name, fill or FillModel(), cfg.sample_s, cfg.device)
            self._group_of[idx] = len(self._groups)
            self._groups.append(_Group(name, idx, bt, sets, live))
        started = clock()
        self._last_tuned = np.full(n, started)
        self._ticks_at_tune = np.zeros(n, np.int64)
        self._ever_tuned = np.zeros(n, np.bool_)
        self.stats = TunerStats()

    @property
    def device(self) -> str:
        return self._groups[0].bt.device if self._groups else "cpu"

    def compile(self) -> None:
        """Compile every strategy's kernels before going live: a first re-tune that compiles
        would take seconds of CPU from the live path and delay every instrument's first turn."""
        for group in self._groups:
            group.bt.compile()

    def live_params(self, instrument: int) -> npt.NDArray[np.float64]:
        group = self._groups[int(self._group_of[instrument])]
        return group.live[instrument].copy()

    def append(self, batch: TickBatch) -> None:
        self.window.append(batch)

    # ------------------------------------------------------------------ schedule

    def due(self) -> npt.NDArray[np.int64]:
        """The next batch of instruments to re-tune (most overdue first; one strategy)."""
        now = self._clock()
        cfg = self.config
        overdue_s = now - self._last_tuned
        new_ticks = self.window.ticks - self._ticks_at_tune
        due = (overdue_s >= cfg.every_s) | (new_ticks >= cfg.every_ticks)
        due &= self._group_of >= 0
        if not due.any() or self.window.newest_ns == 0:
            return np.empty(0, np.int64)
        urgency = np.maximum(overdue_s / cfg.every_s, new_ticks / cfg.every_ticks)
        candidates = np.flatnonzero(due)
        candidates = candidates[np.argsort(-urgency[candidates], kind="stable")]
        first_group = self._group_of[candidates[0]]
        same = candidates[self._group_of[candidates] == first_group]
        return same[: cfg.batch].astype(np.int64)

    # ------------------------------------------------------------------ one round

    def tune(self, instruments: npt.ArrayLike) -> list[Retune]:
        """Re-tune `instruments` (one strategy) now; returns one record per instrument."""
        inst = np.asarray(instruments, np.int64)
        if inst.size == 0:
            return []
        started = self._clock()
        group = self._groups[int(self._group_of[inst[0]])]
        windows = Windows.ending(self.window.newest_ns + 1, self.config.walk)
        ticks = 0
        try:
            series = self.window.series(inst, windows.start_ns, windows.end_ns)
            ticks = int(series.ts.size)
            outcomes = walk_forward(
                group.bt, series, group.sets, group.live[inst], windows, self.config.walk
            )
        except Exception as exc:  # a failing search must never touch the live parameters
            log.exception("re-tune of %d instruments failed", inst.size)
            self.stats.errors += 1
            outcomes = [
                Outcome(k, "failed", f"error: {type(exc).__name__}: {exc}", np.empty(0),
                        np.nan, 0, np.nan, np.nan)
                for k in range(inst.size)
            ]  # fmt: skip
        records = [self._apply(group, int(inst[o.k]), o, windows) for o in outcomes]
        finished = self._clock()
        for i in inst:
            if self._ever_tuned[i]:
                self.stats.periods_s.append(float(finished - self._last_tuned[i]))
        self._last_tuned[inst] = finished
        self._ticks_at_tune[inst] = self.window.ticks[inst]
        self._ever_tuned[inst] = True
        self.stats.rounds += 1
        self.stats.busy_s += finished - started
        self.stats.sets_evaluated += int(inst.size * len(group.sets))
        self.stats.set_ticks += ticks * len(group.sets)
        return records

    def _apply(self, group: _Group, instrument: int, o: Outcome, w: Windows) -> Retune:
        live = group.live[instrument].copy()
        self.stats.runs += 1
        self.stats.tuned.add(instrument)
        if o.decision == "swap":
            group.live[instrument] = o.winner
            self.stats.swaps += 1
        elif o.decision == "failed":
            self.stats.failed += 1
        return Retune(
            run_id=self.run_id,
            instrument=instrument,
            symbol=self.registry[instrument].symbol,
            strategy=group.strategy,
            ts_ns=time.time_ns(),
            train_from_ns=w.train_from_ns,
            train_to_ns=w.valid_from_ns,
            valid_from_ns=w.valid_from_ns,
            valid_to_ns=w.end_ns,
            param_names=group.bt.spec.params.names,
            live_params=tuple(float(v) for v in live),
            winner_params=tuple(float(v) for v in o.winner),
            live_score=o.live_score,
            winner_score=o.winner_score,
            winner_train_score=o.winner_train_score,
            winner_trades=o.winner_trades,
            sets_evaluated=len(group.sets),
            decision=o.decision,
            reason=o.reason,
        )

    def summary(self, elapsed_s: float) -> dict[str, float | int | str]:
        """The `tuning` block of the run summary."""
        s = self.stats
        periods = np.asarray(s.periods_s) if s.periods_s else np.empty(0)
        return {
            "runs": s.runs,
            "swaps": s.swaps,
            "failed": s.failed,
            "errors": s.errors,
            "instruments_tuned": len(s.tuned),
            "instruments": int((self._group_of >= 0).sum()),
            "median_period_s": round(float(np.median(periods)), 2) if periods.size else 0.0,
            "p99_period_s": round(float(np.percentile(periods, 99)), 2) if periods.size else 0.0,
            "sets_evaluated_per_s": round(s.sets_evaluated / elapsed_s, 1) if elapsed_s else 0.0,
            "set_ticks_per_s": round(s.set_ticks / elapsed_s, 1) if elapsed_s else 0.0,
            "busy_share": round(s.busy_s / elapsed_s, 3) if elapsed_s else 0.0,
            "device": self.device,
        }
