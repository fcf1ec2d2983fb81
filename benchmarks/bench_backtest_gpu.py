"""GPU grid backtest throughput, and the GPU/CPU ratio on the same machine.

    python benchmarks/bench_backtest_gpu.py --instruments 1150 --minutes 30 --sets 10000 \\
        --cpu-sets 48 --out gpu.json

Generates `minutes` of the default synthetic market for the instruments (1,000 stocks and 150
crypto pairs at 20,000 ticks/s), builds a trend grid of `sets` parameter sets, and times:
- the GPU grid over every instrument x every set (compile excluded: one warm-up launch first);
- the CPU grid (numba prange on every core) over every instrument x the first `cpu-sets` sets;
- an agreement check: GPU and CPU metrics of those shared sets, compared.
Reports ticks x sets per second for each, their ratio, as JSON and a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numba as nb
import numpy as np

import tickwise.strategy  # noqa: F401  (registers the strategies)
from tickwise.backtest import FillModel, GridBacktester, TickSeries
from tickwise.backtest.gpu import gpu_available
from tickwise.data.generator import MarketGenerator
from tickwise.data.universe import build_universe

T0 = 1_700_000_000 * 10**9
OTHER_GRIDS = {
    "mean_reversion": "lookback_s=10:600:6,entry_z=0.5:3:0.2,exit_z=-0.5:0.5:0.125",
    "breakout": "lookback_s=10:600:6,entry=0:0.002:0.0001,stop=0.0005|0.001|0.002|0.004|0.008",
}


def trend_grid(bt: GridBacktester, n_sets: int) -> np.ndarray:
    """About `n_sets` (fast, slow, band) sets of the trend strategy, fast < slow."""
    side = max(2, round((n_sets / 4) ** (1 / 2) * 1.45))
    fast = np.round(np.geomspace(2, 300, side), 3)
    slow = np.round(np.geomspace(10, 3600, side), 3)
    band = np.array([0.0, 0.0001, 0.0002, 0.0005])
    grid = {"fast_s": fast, "slow_s": slow, "band": band, "min_hold_s": [5.0]}
    sets = bt.spec.grid(grid)
    return sets[:n_sets]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--instruments", type=int, default=1150)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--sets", type=int, default=10_000)
    ap.add_argument("--cpu-sets", type=int, default=48)
    ap.add_argument("--out", default="")
    ap.add_argument("--also", nargs="*", default=[], help="more strategies to time on the GPU")
    args = ap.parse_args()

    stocks = round(args.instruments * 1000 / 1150)
    registry = build_universe(stocks, args.instruments - stocks)
    t = time.perf_counter()
    batch = MarketGenerator(registry, seed=5).generate(T0, T0 + int(args.minutes * 60e9))
    series = TickSeries.from_batch(batch, registry)
    gen_s = time.perf_counter() - t
    fill = FillModel(latency_ms=5.0)
    out: dict[str, object] = {
        "machine": {
            "cpu_cores": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "gpu": None,
            "numba_threads": nb.get_num_threads(),
            "numba_threading_layer": "",
        },
        "instruments": len(series),
        "ticks": series.n_ticks,
        "minutes_of_market": args.minutes,
        "generate_s": round(gen_s, 2),
    }
    cpu = GridBacktester("trend", fill, device="cpu")
    sets = trend_grid(cpu, args.sets)
    cpu_sets = sets[: args.cpu_sets]
    small = TickSeries.concat([series.until(series.ts.min() + 60 * 10**9)])
    cpu.run(small, cpu_sets[:2])  # compile
    r_cpu = cpu.run(series, cpu_sets)
    out["cpu"] = {"sets": len(cpu_sets), **_figures(r_cpu)}
    out["machine"]["numba_threading_layer"] = nb.threading_layer()  # type: ignore[index]
    threads = nb.get_num_threads()
    nb.set_num_threads(1)
    one = cpu.run(series, cpu_sets[: max(1, len(cpu_sets) // 4)])
    nb.set_num_threads(threads)
    out["cpu_one_thread"] = {"sets": one.n_sets, **_figures(one)}
    if gpu_available():
        out["machine"]["gpu"] = _gpu_name()  # type: ignore[index]
        gpu = GridBacktester("trend", fill, device="gpu")
        gpu.run(small, cpu_sets[:2])  # compile
        r_shared = gpu.run(series, cpu_sets)
        diff = {
            m: float(np.nanmax(np.abs(r_shared.metrics[m] - r_cpu.metrics[m])))
            for m in ("total_return", "sharpe", "max_drawdown", "turnover")
        }
        same_trades = float(np.mean(r_shared.metrics["trades"] == r_cpu.metrics["trades"]))
        r_gpu = gpu.run(series, sets)
        out["gpu"] = {"sets": len(sets), **_figures(r_gpu)}
        for name in args.also:
            other = GridBacktester(name, fill, device="gpu")
            other_sets = other.spec.grid(OTHER_GRIDS[name])[: args.sets]
            other.run(small, other_sets[:2])  # compile
            out[f"gpu_{name}"] = {
                "sets": len(other_sets),
                **_figures(other.run(series, other_sets)),
            }
        out["gpu_same_sets_as_cpu"] = _figures(r_shared)
        out["agreement"] = {"max_abs_diff": diff, "share_of_pairs_same_trade_count": same_trades}
        out["gpu_cpu_ratio"] = round(r_gpu.tick_sets_per_s / r_cpu.tick_sets_per_s, 1)
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    _table(out)


def _gpu_name() -> str:
    try:
        from numba import cuda

        name = cuda.get_current_device().name
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # the simulator has no device
        return "unknown"


def _figures(r: object) -> dict[str, float]:
    s = r.summary()  # type: ignore[attr-defined]
    return {
        "backtests": s["backtests"],
        "elapsed_s": s["elapsed_s"],
        "backtests_per_s": s["backtests_per_s"],
        "tick_sets_per_s": s["tick_sets_per_s"],
    }


def _table(out: dict[str, object]) -> None:
    print(f"{'run':<22}{'sets':>8}{'backtests':>12}{'seconds':>10}{'tick x sets / s':>18}")
    for dev in [k for k in out if k.startswith(("cpu", "gpu")) and isinstance(out[k], dict)]:
        r = out.get(dev)
        if isinstance(r, dict):
            print(
                f"{dev:<22}{r.get('sets', ''):>8}{r['backtests']:>12}{r['elapsed_s']:>10.2f}"
                f"{r['tick_sets_per_s']:>18.3g}"
            )
    if "gpu_cpu_ratio" in out:
        print(f"GPU / CPU: {out['gpu_cpu_ratio']}x")


if __name__ == "__main__":
    main()
