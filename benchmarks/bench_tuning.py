"""How long one re-tuning sweep of every instrument takes: the tuner's throughput.

    python benchmarks/bench_tuning.py --instruments 1150 --tick-rate 50000 --sets 512 \\
        --batch 1150 --device gpu --out tuning.json

Generates `warmup_s + train_s + valid_s` (default 60 + 240 + 60 s) of the synthetic market at
`--tick-rate` for the instruments, feeds it to a `Tuner` (the engine's, without Ray) and times
one sweep: every instrument re-tuned once, `--batch` instruments per round, `--sets` candidate
sets each (training grid on every set, validation of winner and live parameters). If a sweep
takes S seconds, the tuner alone can re-tune every instrument every S seconds; the seed target
is every instrument at least once a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

import tickwise.strategy  # noqa: F401  (registers the strategies)
from tickwise.backtest.gpu import gpu_available
from tickwise.data.generator import GeneratorConfig, MarketGenerator
from tickwise.data.universe import build_universe
from tickwise.strategy import get_strategy
from tickwise.tuning.tuner import Tuner, TunerConfig
from tickwise.tuning.walkforward import WalkForwardConfig

T0 = 1_700_000_000 * 10**9


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--instruments", type=int, default=1150)
    ap.add_argument("--tick-rate", type=float, default=50_000.0)
    ap.add_argument("--sets", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"])
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    walk = WalkForwardConfig()
    stocks = round(args.instruments * 1000 / 1150)
    registry = build_universe(stocks, args.instruments - stocks)
    gen = MarketGenerator(registry, GeneratorConfig(tick_rate=args.tick_rate), seed=9)
    t = time.perf_counter()
    batch = gen.generate(T0, T0 + round(walk.horizon_s * 1e9))
    generate_s = time.perf_counter() - t
    now = [0.0]
    n = len(registry)
    cfg = TunerConfig(every_s=1.0, batch=args.batch, sets=args.sets, device=args.device, walk=walk)
    defaults = get_strategy("trend").defaults()
    tuner = Tuner(registry, {"trend": (np.arange(n), defaults)}, cfg, clock=lambda: now[0])
    tuner.append(batch)
    now[0] = 10.0
    # compile outside the timing: one small round
    tuner.tune(np.array([n - 1]))
    now[0] = 100.0
    tuned = 0
    rounds = 0
    t = time.perf_counter()
    while tuned < n:
        due = tuner.due()
        if due.size == 0:
            break
        tuner.tune(due)
        tuned += int(due.size)
        rounds += 1
    sweep_s = time.perf_counter() - t
    out = {
        "machine": {"cpu_cores": os.cpu_count(), "gpu_visible": gpu_available()},
        "device": tuner.device,
        "instruments": n,
        "ticks_in_window": len(batch),
        "tick_rate": args.tick_rate,
        "windows_s": {"warmup": walk.warmup_s, "train": walk.train_s, "valid": walk.valid_s},
        "sets": args.sets,
        "batch": args.batch,
        "rounds": rounds,
        "instruments_tuned": tuned,
        "sweep_s": round(sweep_s, 2),
        "instrument_sets_per_s": round(tuned * args.sets / sweep_s, 1),
        "swaps": tuner.stats.swaps,
        "generate_s": round(generate_s, 1),
    }
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(
        f"one sweep of {tuned} instruments x {args.sets} sets on {tuner.device}: {sweep_s:.1f} s"
        f" ({out['instrument_sets_per_s']:,.0f} instrument-sets/s)"
    )


if __name__ == "__main__":
    main()
