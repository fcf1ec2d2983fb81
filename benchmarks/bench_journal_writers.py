"""Two allocators journaling one fan-out at once into one SQLite store: how long until the
last order is journaled, with SQLite's own busy handler against the order path's
(`SQLiteStore.on_order_path`: the write lock retried within 1 ms of its release).

    python benchmarks/bench_journal_writers.py --fanout 30000 --signals 3 --repeat 6

Each writer is a process of its own with half the clients, journaling `--signals` fan-outs in
the engine's chunks of 4,096; both start together. Automatic checkpoints are off in both
variants, so only the waiting for the lock differs. Runs alternate between the variants; the
median wall time until both writers are done is reported, with its ratio.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_journal_indexes import CHUNK, T0, fan_out

from tickwise.store import SQLiteStore

VARIANTS = ("SQLite busy handler", "order path")


def _writer(
    path: str, clients: tuple[int, int], args: argparse.Namespace, prompt: bool, start: Any
) -> None:
    store = SQLiteStore(path)
    if prompt:
        store.on_order_path()
    else:  # the same store without its checkpoints, waiting as SQLite does
        with store._lock:  # the benchmark's one reach inside the store
            store._connection("main").execute("PRAGMA wal_autocheckpoint = 0")
    start.wait()
    for k in range(args.signals):
        orders = fan_out(5_000 + k, args.fanout, T0 + k).take(np.arange(*clients))
        for first in range(0, len(orders), CHUNK):
            chunk = orders.take(np.arange(first, min(first + CHUNK, len(orders))))
            store.journal_orders(chunk, "bench")
    store.close()


def once(folder: Path, args: argparse.Namespace, prompt: bool) -> float:
    path = str(folder / f"store-{len(list(folder.iterdir()))}.sqlite")
    SQLiteStore(path).close()
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(3)
    half = args.fanout // 2
    writers = [
        ctx.Process(target=_writer, args=(path, part, args, prompt, start))
        for part in ((0, half), (half, args.fanout))
    ]
    for w in writers:
        w.start()
    start.wait()
    began = time.perf_counter()
    for w in writers:
        w.join()
        if w.exitcode != 0:
            raise RuntimeError(f"a writer failed with exit code {w.exitcode}")
    return (time.perf_counter() - began) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fanout", type=int, default=30_000, help="orders per signal")
    parser.add_argument("--signals", type=int, default=3, help="fan-outs per run")
    parser.add_argument("--repeat", type=int, default=6, help="runs per variant")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            for variant in VARIANTS:
                times[variant].append(once(Path(tmp), args, variant == "order path"))
    medians = {v: statistics.median(t) for v, t in times.items()}
    result = {
        "benchmark": "journal_writers",
        "fanout": args.fanout,
        "signals": args.signals,
        "repeat": args.repeat,
        "median_ms": {v: round(m, 1) for v, m in medians.items()},
        "runs_ms": {v: [round(t, 1) for t in ts] for v, ts in times.items()},
        "ratio": round(medians["SQLite busy handler"] / medians["order path"], 2),
    }
    print(f"| waiting for the lock | both writers done, median ms (of {args.repeat}) |")
    print("|---|---:|")
    for variant, median in medians.items():
        print(f"| {variant} | {median:,.0f} |")
    print(f"ratio {result['ratio']}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
