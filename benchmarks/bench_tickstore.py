"""Tick store write and window-read speed on the default synthetic market.

    python benchmarks/bench_tickstore.py --ticks 1000000 --flushes 10 --repeat 5 --out ts.json

Generates about `ticks` ticks of the default universe (1,000 stocks and 150 crypto pairs at
20,000 ticks/s: ~50 s of market for a million), then:
- writes them in one call (one part file per symbol), and times a one-hour window read of one
  symbol (the most active, SPY, and a median one) and of 50 symbols (the 50 most active);
- writes them again into a second store in `flushes` slices, as live recording does (one file
  per symbol per flush), times the same reads on the small files, compacts, and reads again.
Each read figure is the median of `repeat` runs, files in the OS page cache (a warm read).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tickwise.data.generator import GeneratorConfig, MarketGenerator
from tickwise.data.tickstore import TickStore
from tickwise.data.universe import build_universe
from tickwise.model.instruments import InstrumentRegistry

T0 = 1_723_161_600 * 10**9  # 2024-08-09 00:00 UTC
HOUR = 3600 * 10**9


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1e3, 2)


def _reads(
    store: TickStore, registry: InstrumentRegistry, busiest: list[str], median: str, repeat: int
) -> dict[str, Any]:
    start, end = T0, T0 + HOUR
    return {
        "one_symbol_busiest_ms": _median_ms(
            lambda: store.read([busiest[0]], start, end, registry), repeat
        ),
        "one_symbol_median_ms": _median_ms(
            lambda: store.read([median], start, end, registry), repeat
        ),
        "fifty_symbols_ms": _median_ms(lambda: store.read(busiest, start, end, registry), repeat),
        "rows_busiest": len(store.read([busiest[0]], start, end, registry)),
        "rows_fifty": len(store.read(busiest, start, end, registry)),
        "files": len(store.parts()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument("--flushes", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()

    registry = build_universe()
    rate = 20_000.0
    generator = MarketGenerator(registry, GeneratorConfig(tick_rate=rate), seed=7)
    batch = generator.generate(T0, T0 + int(args.ticks / rate * 1e9))
    counts = np.bincount(batch.instrument, minlength=len(registry))
    symbols = registry.symbols()
    ranked = [symbols[i] for i in np.argsort(-counts, kind="stable")]
    busiest, median = ranked[:50], ranked[len(ranked) // 2]

    result: dict[str, Any] = {
        "ticks": len(batch),
        "market_s": round(float(batch.ts_event.max() - batch.ts_event.min()) / 1e9, 1),
        "symbols": len(registry),
        "busiest": busiest[0],
        "median_symbol": median,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        one = TickStore(Path(tmp) / "one")
        start = time.perf_counter()
        one.write(batch, registry)
        result["write_one_call_s"] = round(time.perf_counter() - start, 2)
        result["bytes_on_disk"] = sum(p.path.stat().st_size for p in one.parts())
        result["one_file_per_symbol"] = _reads(one, registry, busiest, median, args.repeat)

        live = TickStore(Path(tmp) / "live")
        order = np.argsort(batch.ts_event, kind="stable")
        start = time.perf_counter()
        for chunk in np.array_split(order, args.flushes):
            live.write(batch.take(chunk), registry)
        result["write_in_flushes_s"] = round(time.perf_counter() - start, 2)
        result["flushes"] = args.flushes
        result["small_files"] = _reads(live, registry, busiest, median, args.repeat)
        start = time.perf_counter()
        live.compact()
        result["compact_s"] = round(time.perf_counter() - start, 2)
        result["after_compaction"] = _reads(live, registry, busiest, median, args.repeat)

    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
