"""Allocators journaling fan-outs at once into one SQLite store: how long until the last order
is journaled, with SQLite's defaults and with what the order path changes
(`SQLiteStore.on_order_path`).

    python benchmarks/bench_journal_writers.py --writers 2 --fanout 30000 --signals 3 --repeat 6

Each writer is a process of its own with its share of the clients, journaling `--signals`
fan-outs in the engine's chunks of 4,096; all start together. The variants:

- "SQLite defaults": a commit that fills the write-ahead log past 1,000 pages checkpoints it
  into the database file; a writer waits for the lock with SQLite's busy handler;
- "no checkpoint on commit": the same, checkpoints left to `Store.maintain`;
- "order path": that, and the lock retried within 1 ms of its release.

Runs alternate between the variants; the median wall time until every writer is done is
reported, with its ratio to the defaults.
"""

from __future__ import annotations

import argparse
import itertools
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

VARIANTS = ("SQLite defaults", "no checkpoint on commit", "order path")


def _writer(
    path: str,
    clients: tuple[int, int],
    args: argparse.Namespace,
    variant: str,
    start: Any,
    chunks_ms: Any,
) -> None:
    store = SQLiteStore(path)
    if variant == "order path":
        store.on_order_path()
    elif variant == "no checkpoint on commit":
        with store._lock:  # the benchmark's one reach inside the store
            store._connection("main").execute("PRAGMA wal_autocheckpoint = 0")
    start.wait()
    took = []
    for k in range(args.signals):
        orders = fan_out(5_000 + k, args.fanout, T0 + k).take(np.arange(*clients))
        for first in range(0, len(orders), CHUNK):
            chunk = orders.take(np.arange(first, min(first + CHUNK, len(orders))))
            began = time.perf_counter()
            store.journal_orders(chunk, "bench")
            took.append((time.perf_counter() - began) * 1e3)
    chunks_ms.put(took)
    store.close()


def once(folder: Path, args: argparse.Namespace, variant: str) -> tuple[float, list[float]]:
    """Wall ms until every writer is done, and how long each chunk's write took."""
    path = str(folder / f"store-{len(list(folder.iterdir()))}.sqlite")
    SQLiteStore(path).close()
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(args.writers + 1)
    chunks_ms = ctx.Queue()
    bounds = np.linspace(0, args.fanout, args.writers + 1).astype(int)
    writers = [
        ctx.Process(target=_writer, args=(path, (lo, hi), args, variant, start, chunks_ms))
        for lo, hi in itertools.pairwise(bounds)
    ]
    for w in writers:
        w.start()
    start.wait()
    began = time.perf_counter()
    took = [ms for _ in writers for ms in chunks_ms.get(timeout=600)]
    for w in writers:
        w.join()
        if w.exitcode != 0:
            raise RuntimeError(f"a writer failed with exit code {w.exitcode}")
    return (time.perf_counter() - began) * 1e3, took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, default=2, help="writing processes (allocators)")
    parser.add_argument("--fanout", type=int, default=30_000, help="orders per signal")
    parser.add_argument("--signals", type=int, default=3, help="fan-outs per run")
    parser.add_argument("--repeat", type=int, default=6, help="runs per variant")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    chunks: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            for variant in VARIANTS:
                wall, took = once(Path(tmp), args, variant)
                times[variant].append(wall)
                chunks[variant].extend(took)
    medians = {v: statistics.median(t) for v, t in times.items()}
    chunk_ms = {
        v: {
            "p50": round(float(np.percentile(c, 50)), 1),
            "p90": round(float(np.percentile(c, 90)), 1),
            "max": round(max(c), 1),
        }
        for v, c in chunks.items()
    }
    result = {
        "benchmark": "journal_writers",
        "writers": args.writers,
        "fanout": args.fanout,
        "signals": args.signals,
        "repeat": args.repeat,
        "median_ms": {v: round(m, 1) for v, m in medians.items()},
        "runs_ms": {v: [round(t, 1) for t in ts] for v, ts in times.items()},
        "chunk_ms": chunk_ms,
        "ratio_to_defaults": {
            v: round(medians["SQLite defaults"] / m, 2) for v, m in medians.items()
        },
    }
    print(
        f"| variant | {args.writers} writer(s) done, median ms (of {args.repeat}) | speed-up"
        " | one chunk's write p50 / p90 / max ms |"
    )
    print("|---|---:|---:|---:|")
    for variant, median in medians.items():
        c = chunk_ms[variant]
        print(
            f"| {variant} | {median:,.0f} | {result['ratio_to_defaults'][variant]}"
            f" | {c['p50']} / {c['p90']} / {c['max']} |"
        )
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
