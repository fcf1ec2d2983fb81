"""The GPU grid: the strategies' own step kernels, recompiled as CUDA device functions.

A strategy's step is an `numba.njit` function built from the helpers of
`tickwise.strategy.kernels`. `device_function` recompiles the same Python source for CUDA,
after swapping every njit function it calls (found in its globals or closure) for that
function's CUDA twin, recursively: one source, two targets, no second copy of any strategy.

The kernel runs one thread per (instrument, parameter set), parameter sets fastest, so the 32
threads of a warp walk the same instrument's ticks in lock-step (same trip count, and each tick
is one broadcast load). The strategy state and the unused recording buffers live in thread-local
memory. Ticks and parameters go to the device once per run; instruments are launched in chunks
so a long run can report progress.
"""

from __future__ import annotations

import functools
import types
from typing import Any

import numpy as np
from numba import cuda
from numba import float64 as f64

from tickwise.backtest.kernels import N_ACC, N_CURVE_COLS, N_FILL_COLS, N_SIGNAL_COLS
from tickwise.backtest.kernels import _simulate_source as simulate_source
from tickwise.strategy.api import StrategySpec

THREADS_PER_BLOCK = 128


def gpu_available() -> bool:
    """Whether a CUDA GPU is visible to numba (False when CUDA or numba.cuda is missing)."""
    try:
        return bool(cuda.is_available())
    except Exception:  # no driver, no toolkit, or numba built without CUDA
        return False


def device_function(fn: Any, memo: dict[Any, Any] | None = None) -> Any:
    """The CUDA device twin of an njit function (and of every njit function it calls)."""
    from numba.core.dispatcher import Dispatcher

    memo = {} if memo is None else memo
    if fn in memo:
        return memo[fn]
    py = fn.py_func
    globs = dict(py.__globals__)
    for name in py.__code__.co_names:
        value = globs.get(name)
        if isinstance(value, Dispatcher):
            globs[name] = device_function(value, memo)
    closure = None
    if py.__closure__:
        cells = []
        for cell in py.__closure__:
            value = cell.cell_contents
            if isinstance(value, Dispatcher):
                value = device_function(value, memo)
            cells.append(types.CellType(value))
        closure = tuple(cells)
    clone = types.FunctionType(py.__code__, globs, py.__name__, py.__defaults__, closure)
    twin = cuda.jit(device=True)(clone)
    memo[fn] = twin
    return twin


class GpuKernels:
    """The CUDA grid kernel of one strategy family."""

    def __init__(self, spec: StrategySpec) -> None:
        memo: dict[Any, Any] = {}
        step = device_function(spec.step, memo)
        init_state = device_function(spec.init_state, memo)
        simulate = cuda.jit(device=True)(simulate_source(step, init_state))
        state_size = spec.state_size

        @cuda.jit
        def grid(
            params: Any,
            price: Any,
            size: Any,
            kind: Any,
            ts: Any,
            offsets: Any,
            fee: Any,
            half_spread: float,
            latency_ns: int,
            sample_ns: int,
            trade_from: int,
            order: Any,
            out: Any,
        ) -> None:
            t: int = cuda.grid(1)  # type: ignore[call-arg]
            n_sets = params.shape[0]
            if t >= order.shape[0] * n_sets:
                return
            k = order[t // n_sets]
            j = t - (t // n_sets) * n_sets
            state = cuda.local.array(state_size, f64)
            no_sig = cuda.local.array((1, N_SIGNAL_COLS), f64)
            no_fill = cuda.local.array((1, N_FILL_COLS), f64)
            no_curve = cuda.local.array((1, N_CURVE_COLS), f64)
            simulate(
                state, params[j], price, size, kind, ts, offsets[k], offsets[k + 1],
                fee[k], half_spread, latency_ns, sample_ns, trade_from, out[t],
                no_sig, no_fill, no_curve, False,
            )  # fmt: skip

        self.grid: Any = grid

    def run(
        self,
        params: np.ndarray,
        columns: tuple[np.ndarray, ...],
        offsets: np.ndarray,
        fee: np.ndarray,
        half_spread: float,
        latency_ns: int,
        sample_ns: int,
        trade_from: int,
        chunks: list[tuple[int, int]],
        progress: Any = None,
    ) -> np.ndarray:
        """Accumulators (n_instruments, n_sets, N_ACC), launching one kernel per chunk."""
        n_sets = params.shape[0]
        out = np.empty((int(offsets.size) - 1, n_sets, N_ACC), np.float64)
        d_params = cuda.to_device(params)
        d_cols = [cuda.to_device(c) for c in columns]
        d_offsets = cuda.to_device(offsets)
        d_fee = cuda.to_device(fee)
        for k0, k1 in chunks:
            # heaviest instruments first: their blocks start early, the light ones fill the tail
            counts = np.diff(offsets[k0 : k1 + 1])
            order = (k0 + np.argsort(-counts, kind="stable")).astype(np.int64)
            n = (k1 - k0) * n_sets
            d_out = cuda.device_array((n, N_ACC), np.float64)
            blocks = (n + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK
            self.grid[blocks, THREADS_PER_BLOCK](
                d_params, *d_cols, d_offsets, d_fee, half_spread, latency_ns, sample_ns,
                trade_from, cuda.to_device(order), d_out,
            )  # fmt: skip
            out[order] = d_out.copy_to_host().reshape(k1 - k0, n_sets, N_ACC)
            if progress is not None:
                progress(k1 - k0)
        cuda.synchronize()
        return out


@functools.cache
def gpu_kernels(name: str) -> GpuKernels:
    """Compiled GPU kernels for the registered strategy `name` (cached per process)."""
    from tickwise.strategy.api import get_strategy

    return GpuKernels(get_strategy(name))
