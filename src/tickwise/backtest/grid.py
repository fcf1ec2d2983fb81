"""`GridBacktester`: instruments x parameter sets in one call, on CPU cores or a GPU.

    bt = GridBacktester("trend", FillModel(latency_ms=5), sample_s=60, device="auto")
    result = bt.run(series, bt.spec.grid("fast_s=5:50:5,slow_s=20:200:10"))
    result.top(10)                       # best (instrument, set) rows by the objective
    rec = bt.record(series, k, result.params[result.best(k)])   # signals, fills, equity curve

`device="auto"` takes the GPU when numba sees one and the CPU otherwise; "cpu"/"gpu" force.
Both run `kernels._simulate_source` over the strategy's own step kernel; on the CPU numba's
`prange` spreads the (instrument, set) pairs over every core (in small chunks, so instruments
with many ticks do not leave cores idle).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numba as nb
import numpy as np
import numpy.typing as npt

from tickwise.backtest import kernels as kn
from tickwise.backtest.costs import FillModel
from tickwise.backtest.metrics import METRICS, from_accumulators
from tickwise.backtest.objectives import score
from tickwise.backtest.series import BacktestInputError, TickSeries
from tickwise.strategy.api import StrategySpec, UnknownStrategyError, get_strategy

Progress = Callable[[int], None]  # called with the number of instruments just finished
ALWAYS = np.iinfo(np.int64).min  # `trade_from_ns` that opens the account at the first tick
# Work per kernel launch (ticks x sets): big enough to keep every core or SM busy, small
# enough that a progress bar moves. A GPU needs ~300k threads in flight to be full.
_CHUNK_WORK = {"cpu": 2e8, "gpu": 2e11}


@dataclass(slots=True)
class GridResult:
    """Metrics of every (instrument, parameter set), ranked by an objective."""

    strategy: str
    param_names: tuple[str, ...]
    params: npt.NDArray[np.float64]  # (n_sets, n_params)
    symbols: tuple[str, ...]
    metrics: dict[str, npt.NDArray[np.float64]]  # each (n_instruments, n_sets)
    score: npt.NDArray[np.float64]  # (n_instruments, n_sets)
    objective: str
    turnover_penalty: float
    device: str
    elapsed_s: float
    ticks: int  # ticks over all instruments (each set walks all of them)
    fill: FillModel
    sample_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_sets(self) -> int:
        return int(self.params.shape[0])

    @property
    def backtests(self) -> int:
        return len(self.symbols) * self.n_sets

    @property
    def tick_sets_per_s(self) -> float:
        return self.ticks * self.n_sets / self.elapsed_s if self.elapsed_s > 0 else math.inf

    def best(self, instrument: int) -> int:
        """Index of the best parameter set for instrument `instrument` (its position)."""
        return int(np.argmax(self.score[instrument]))

    def top(self, n: int = 10, instrument: int | None = None) -> list[dict[str, Any]]:
        """The `n` best rows (over all instruments, or one), best first, as flat dicts."""
        rows = np.arange(len(self.symbols)) if instrument is None else np.array([instrument])
        flat = self.score[rows].ravel()
        order = np.argsort(-flat, kind="stable")[:n]
        return [self.row(int(rows[i // self.n_sets]), int(i % self.n_sets)) for i in order]

    def row(self, k: int, j: int) -> dict[str, Any]:
        out: dict[str, Any] = {"symbol": self.symbols[k], "set": j}
        out.update({n: float(v) for n, v in zip(self.param_names, self.params[j], strict=True)})
        out.update({m: float(self.metrics[m][k, j]) for m in METRICS})
        out["score"] = float(self.score[k, j])
        return out

    def columns(self) -> dict[str, npt.NDArray[Any]]:
        """Long format: one row per (instrument, set), parameters and metrics as columns."""
        n_inst, n_sets = len(self.symbols), self.n_sets
        cols: dict[str, npt.NDArray[Any]] = {
            "symbol": np.repeat(np.array(self.symbols, dtype=object), n_sets),
            "set": np.tile(np.arange(n_sets), n_inst),
        }
        for i, name in enumerate(self.param_names):
            cols[name] = np.tile(self.params[:, i], n_inst)
        for m in METRICS:
            cols[m] = self.metrics[m].ravel()
        cols["score"] = self.score.ravel()
        return cols

    def write_parquet(self, path: str | Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(self.columns())
        meta = {k.encode(): json.dumps(v).encode() for k, v in self.summary().items()}
        pq.write_table(table.replace_schema_metadata(meta), str(path), compression="zstd")

    def summary(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "instruments": len(self.symbols),
            "sets": self.n_sets,
            "backtests": self.backtests,
            "ticks": self.ticks,
            "device": self.device,
            "elapsed_s": round(self.elapsed_s, 4),
            "backtests_per_s": round(self.backtests / self.elapsed_s, 1) if self.elapsed_s else 0,
            "tick_sets_per_s": float(f"{self.tick_sets_per_s:.4g}"),
            "objective": self.objective,
            "turnover_penalty": self.turnover_penalty,
            "sample_s": self.sample_s,
            "fill": {
                "latency_ms": self.fill.latency_ms,
                "spread_bps": self.fill.spread_bps,
                "venue": self.fill.venue or "default",
                "fee_bps": self.fill.fee_bps,
            },
            **self.extra,
        }

    def write_json(self, path: str | Path, top: int = 50) -> None:
        """The summary and the `top` best rows; undefined figures (NaN, inf) as null."""
        doc = {"summary": self.summary(), "top": self.top(top)}
        Path(path).write_text(json.dumps(_finite(doc), indent=1, allow_nan=False))


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        return _finite(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(slots=True)
class Recording:
    """One (instrument, set) replayed with everything kept: signals, fills, equity curve."""

    symbol: str
    params: dict[str, float]
    metrics: dict[str, float]
    signal_ts: npt.NDArray[np.int64]
    signal_weight: npt.NDArray[np.float64]
    signal_tick: npt.NDArray[np.int64]  # index of the tick (within the instrument)
    # tick, signal_tick (indexes within the instrument), ts, signal_ts, side, price, qty, fee,
    # weight, equity (after the fill)
    fills: dict[str, npt.NDArray[Any]]
    curve_ts: npt.NDArray[np.int64]
    equity: npt.NDArray[np.float64]

    @property
    def drawdown(self) -> npt.NDArray[np.float64]:
        peak = np.maximum.accumulate(np.maximum(self.equity, 1.0)) if self.equity.size else None
        return np.empty(0) if peak is None else 1.0 - self.equity / peak


class GridBacktester:
    """Runs one strategy over instruments x parameter sets (see the module docstring)."""

    def __init__(
        self,
        strategy: str,
        fill: FillModel | None = None,
        sample_s: float = 60.0,
        device: str = "auto",
    ) -> None:
        try:
            self.spec: StrategySpec = get_strategy(strategy)
        except UnknownStrategyError as exc:
            raise BacktestInputError(str(exc)) from None
        if not (sample_s > 0 and math.isfinite(sample_s)):
            raise BacktestInputError("sample_s must be a positive number of seconds")
        if device not in ("auto", "cpu", "gpu"):
            raise BacktestInputError(f"device must be auto, cpu or gpu, not {device!r}")
        self.fill = fill or FillModel()
        self.sample_s = float(sample_s)
        self.device = self._resolve(device)

    @staticmethod
    def _resolve(device: str) -> str:
        from tickwise.backtest.gpu import gpu_available

        if device == "cpu":
            return "cpu"
        available = gpu_available()
        if device == "gpu" and not available:
            raise BacktestInputError("--device gpu: no CUDA GPU is visible to numba")
        return "gpu" if available else "cpu"

    def compile(self) -> None:
        """Compile the grid and pairs kernels now (on two ticks), not on the first real run."""
        tiny = TickSeries(
            symbols=("compile",),
            offsets=np.array([0, 2], np.int64),
            ts=np.array([0, 1_000_000_000], np.int64),
            price=np.array([100.0, 100.0]),
            size=np.ones(2),
            kind=np.zeros(2, np.int64),
            asset_class=np.zeros(1, np.uint8),
        )
        sets = self.spec.defaults()[None, :]
        self.run(tiny, sets)
        self.run_pairs(tiny, sets, np.zeros(1, np.int64), np.zeros(1, np.int64))

    # ------------------------------------------------------------------ inputs

    def param_sets(self, grid: str | npt.ArrayLike) -> npt.NDArray[np.float64]:
        """A validated (n_sets, n_params) matrix from a grid string or an explicit list."""
        try:
            if isinstance(grid, str):
                sets = self.spec.grid(grid)
            else:
                sets = np.atleast_2d(self.spec.validate(grid))
        except ValueError as exc:
            raise BacktestInputError(str(exc)) from None
        if sets.shape[0] == 0:
            raise BacktestInputError(
                f"the grid has no valid parameter set for {self.spec.name!r} "
                "(check the ranges and the strategy's constraint)"
            )
        return np.ascontiguousarray(sets, np.float64)

    def _check(self, series: TickSeries, params: npt.ArrayLike) -> npt.NDArray[np.float64]:
        if len(series) == 0 or series.n_ticks == 0:
            raise BacktestInputError("no ticks to backtest (empty time range or instruments)")
        return self.param_sets(params)

    # ------------------------------------------------------------------ the grid

    def run(
        self,
        series: TickSeries,
        params: str | npt.ArrayLike,
        objective: str = "sharpe",
        turnover_penalty: float = 0.0,
        progress: Progress | None = None,
        trade_from_ns: int = ALWAYS,
    ) -> GridResult:
        """Every instrument x every set. Before `trade_from_ns` the strategies only warm up."""
        sets = self._check(series, params)
        fee = self.fill.fees(series.asset_class)
        sample_ns = max(1, round(self.sample_s * 1e9))
        chunks = _chunks(series.counts(), sets.shape[0], _CHUNK_WORK[self.device])
        cols = (series.price, series.size, series.kind, series.ts)
        started = time.perf_counter()
        if self.device == "gpu":
            from tickwise.backtest.gpu import gpu_kernels

            acc = gpu_kernels(self.spec.name).run(
                sets, cols, series.offsets, fee, self.fill.half_spread,
                self.fill.latency_ns, sample_ns, trade_from_ns, chunks, progress,
            )  # fmt: skip
        else:
            acc = self._run_cpu(
                sets, cols, series.offsets, fee, sample_ns, trade_from_ns, chunks, progress
            )
        elapsed = time.perf_counter() - started
        metrics = from_accumulators(acc, self.sample_s, series.seconds_per_year[:, None])
        return GridResult(
            strategy=self.spec.name,
            param_names=self.spec.params.names,
            params=sets,
            symbols=series.symbols,
            metrics=metrics,
            score=score(metrics, objective, turnover_penalty),
            objective=objective,
            turnover_penalty=turnover_penalty,
            device=self.device,
            elapsed_s=elapsed,
            ticks=series.n_ticks,
            fill=self.fill,
            sample_s=self.sample_s,
        )

    def _run_cpu(
        self,
        sets: npt.NDArray[np.float64],
        cols: tuple[npt.NDArray[Any], ...],
        offsets: npt.NDArray[np.int64],
        fee: npt.NDArray[np.float64],
        sample_ns: int,
        trade_from_ns: int,
        chunks: list[tuple[int, int]],
        progress: Progress | None,
    ) -> npt.NDArray[np.float64]:
        kernels = kn.cpu_kernels(self.spec.name)
        n_sets = sets.shape[0]
        out = np.empty((offsets.size - 1, n_sets, kn.N_ACC), np.float64)
        # numba hands each thread one contiguous, equal share of the iterations; the order
        # below gives every share about the same number of ticks (see `balanced_order`).
        threads = nb.get_num_threads()
        for k0, k1 in chunks:
            order = balanced_order(np.diff(offsets[k0 : k1 + 1]), threads) + k0
            kernels.grid(
                sets, *cols, offsets, fee, self.fill.half_spread,
                self.fill.latency_ns, sample_ns, trade_from_ns, order, out,
            )  # fmt: skip
            if progress is not None:
                progress(k1 - k0)
        return out

    def run_pairs(
        self,
        series: TickSeries,
        params: npt.NDArray[np.float64],
        pair_instrument: npt.NDArray[np.int64],
        pair_set: npt.NDArray[np.int64],
        trade_from_ns: int = ALWAYS,
    ) -> dict[str, npt.NDArray[np.float64]]:
        """Metrics of explicit (instrument, set) pairs, on the CPU (one value per pair)."""
        sets = np.ascontiguousarray(params, np.float64)
        k = np.ascontiguousarray(pair_instrument, np.int64)
        j = np.ascontiguousarray(pair_set, np.int64)
        if k.shape != j.shape or (k.size and (k.max() >= len(series) or j.max() >= len(sets))):
            raise BacktestInputError("pairs must index the series' instruments and the sets")
        out = np.zeros((k.size, kn.N_ACC), np.float64)
        if k.size:
            kn.cpu_kernels(self.spec.name).pairs(
                sets, series.price, series.size, series.kind, series.ts, series.offsets,
                self.fill.fees(series.asset_class), self.fill.half_spread, self.fill.latency_ns,
                max(1, round(self.sample_s * 1e9)), trade_from_ns, k, j, out,
            )  # fmt: skip
        return from_accumulators(out, self.sample_s, series.seconds_per_year[k])

    # ------------------------------------------------------------------ one pair, in full

    def record(
        self,
        series: TickSeries,
        instrument: int,
        params: npt.ArrayLike,
        max_rows: int = 1_000_000,
        trade_from_ns: int = ALWAYS,
    ) -> Recording:
        """Replay one (instrument, set) on the CPU keeping its signals, fills and curve."""
        vec = self.param_sets(np.atleast_2d(np.asarray(params, np.float64)))[0]
        k = int(instrument)
        if not 0 <= k < len(series):
            raise BacktestInputError(f"instrument position {k} outside 0..{len(series) - 1}")
        lo, hi = int(series.offsets[k]), int(series.offsets[k + 1])
        n = hi - lo
        cap = min(n + 1, max_rows)
        rec_sig = np.full((cap, kn.N_SIGNAL_COLS), -1.0)
        rec_fill = np.zeros((cap, kn.N_FILL_COLS))
        rec_curve = np.zeros((cap, kn.N_CURVE_COLS))
        acc = np.zeros(kn.N_ACC)
        fee = self.fill.fees(series.asset_class[k : k + 1])[0]
        kn.cpu_kernels(self.spec.name).record(
            vec, series.price, series.size, series.kind, series.ts, lo, hi, fee,
            self.fill.half_spread, self.fill.latency_ns, max(1, round(self.sample_s * 1e9)),
            trade_from_ns, acc, rec_sig, rec_fill, rec_curve,
        )  # fmt: skip
        n_sig = int(np.count_nonzero(rec_sig[:, kn.REC_SIGNAL_TICK] >= 0))
        n_fill = min(int(acc[kn.ACC_FILLS]), cap)
        n_curve = int(np.count_nonzero(rec_curve[:, kn.CURVE_TS]))
        ts = series.ts[lo:hi]
        sig_tick = rec_sig[:n_sig, kn.REC_SIGNAL_TICK].astype(np.int64)
        fill_tick = rec_fill[:n_fill, kn.FILL_TICK].astype(np.int64)
        fill_signal_tick = rec_fill[:n_fill, kn.FILL_SIGNAL_TICK].astype(np.int64)
        qty = rec_fill[:n_fill, kn.FILL_QTY]
        metrics = from_accumulators(acc, self.sample_s, series.seconds_per_year[k])
        return Recording(
            symbol=series.symbols[k],
            params=dict(zip(self.spec.params.names, map(float, vec), strict=True)),
            metrics={m: float(v) for m, v in metrics.items()},
            signal_ts=ts[sig_tick],
            signal_weight=rec_sig[:n_sig, kn.REC_SIGNAL_WEIGHT].copy(),
            signal_tick=sig_tick,
            fills={
                "tick": fill_tick,
                "signal_tick": fill_signal_tick,
                "ts": ts[fill_tick],
                "signal_ts": ts[fill_signal_tick],
                "side": np.where(qty > 0, "buy", "sell"),
                "price": rec_fill[:n_fill, kn.FILL_PRICE].copy(),
                "qty": qty.copy(),
                "fee": rec_fill[:n_fill, kn.FILL_FEE].copy(),
                "weight": rec_fill[:n_fill, kn.FILL_WEIGHT].copy(),
                "equity": rec_fill[:n_fill, kn.FILL_EQUITY].copy(),
            },
            # the sampled curve, closed by the final equity at the last tick
            curve_ts=np.append(rec_curve[:n_curve, kn.CURVE_TS].astype(np.int64), ts[-1:]),
            equity=np.append(rec_curve[:n_curve, kn.CURVE_EQUITY], acc[kn.ACC_EQUITY] if n else []),
        )


def _chunks(counts: npt.NDArray[np.int64], n_sets: int, chunk: float) -> list[tuple[int, int]]:
    """Consecutive instrument ranges of about `chunk` ticks x sets each."""
    out: list[tuple[int, int]] = []
    start, work = 0, 0.0
    for k, c in enumerate(counts):
        work += float(c) * n_sets
        if work >= chunk:
            out.append((start, k + 1))
            start, work = k + 1, 0.0
    if start < counts.size:
        out.append((start, int(counts.size)))
    return out


def balanced_order(counts: npt.NDArray[np.int64], threads: int) -> npt.NDArray[np.int64]:
    """Instruments in an order whose `threads` equal contiguous shares carry equal work.

    Instruments are dealt heaviest first into `threads` shares of equal size, serpentine
    (0, 1, ..., T-1, T-1, ..., 0, ...), which evens out the ticks per share; the shares are then
    laid end to end. With activity as skewed as a real market's (a few names trade most), a
    plain heavy-first or registry order leaves one thread with most of the work.
    """
    n = int(counts.size)
    t = max(1, min(int(threads), n))
    heavy = np.argsort(-counts, kind="stable")
    lap = np.arange(n) % (2 * t)
    share = np.where(lap < t, lap, 2 * t - 1 - lap)
    return heavy[np.argsort(share, kind="stable")].astype(np.int64)


def sets_from_rows(spec: StrategySpec, rows: Sequence[dict[str, float]]) -> npt.NDArray:
    """A parameter matrix from dicts (names not given take their defaults)."""
    try:
        return np.stack([spec.params.from_mapping(r) for r in rows])
    except ValueError as exc:
        raise BacktestInputError(str(exc)) from None
