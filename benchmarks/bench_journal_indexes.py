"""What an index on the orders table costs: a fan-out's orders journaled into a SQLite store
that already holds many orders, then written out as rows, with and without extra indexes on
`orders`.

    python benchmarks/bench_journal_indexes.py --prefill 600000 --fanout 30000 --repeat 5

Each variant is a fresh store (the schema as migrated) plus the indexes it names, prefilled
with `--prefill` orders (30,000 clients per signal), then `--repeat` fan-outs of `--fanout`
orders journaled in the engine's chunks of 4,096 and written out (`expand_journal`, what the
ledger does off the order path); the median of each step per fan-out is reported, with the
write-out's ratio to the schema as it is. Since the journal became chunks (migration 8) the
orders table is no longer on the order path: the journal's column shows an index costs it
nothing, the write-out's what it costs the ledger.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from tickwise.model.ids import client_order_ids
from tickwise.model.orders import OrderBatch
from tickwise.store import SQLiteStore

T0 = 1_800_000_000_000_000_000
CHUNK = 4096
VARIANTS: dict[str, tuple[str, ...]] = {
    "schema as migrated": (),
    "+ orders by instrument": ("CREATE INDEX x_inst ON orders (instrument, ts_journal)",),
    "+ orders by client": ("CREATE INDEX x_client ON orders (client_id, ts_journal)",),
    "+ both": (
        "CREATE INDEX x_inst ON orders (instrument, ts_journal)",
        "CREATE INDEX x_client ON orders (client_id, ts_journal)",
    ),
}


def fan_out(signal: int, clients: int, ts: int) -> OrderBatch:
    """One order per client for `signal`, as an allocator sizes a fan-out."""
    client = np.arange(clients, dtype=np.int32)
    stamp = np.full(clients, ts, np.int64)
    return OrderBatch(
        client_order_id=client_order_ids(np.full(clients, signal), client),
        signal_id=np.full(clients, signal, np.int64),
        client=client,
        venue=np.zeros(clients, np.uint8),
        instrument=np.full(clients, signal % 1150, np.uint32),
        side=np.ones(clients, np.int8),
        qty=np.ones(clients),
        price=np.full(clients, 100.0),
        ts_event=stamp,
        ts_recv=stamp,
        ts_signal=stamp,
        ts_alloc=stamp,
        ts_journal=stamp,
        ts_sent=np.zeros(clients, np.int64),
    )


def journal(store: SQLiteStore, orders: OrderBatch) -> None:
    for start in range(0, len(orders), CHUNK):
        store.journal_orders(orders.take(np.arange(start, min(start + CHUNK, len(orders)))), "r")


def measure(
    folder: Path, extra: tuple[str, ...], prefill: int, fanout: int, repeat: int
) -> tuple[float, float]:
    """The median seconds to journal one fan-out and to write it out."""
    path = folder / f"store-{len(list(folder.iterdir()))}.sqlite"
    store = SQLiteStore(path).on_order_path()
    with sqlite3.connect(store.executions_path) as conn:
        for statement in extra:
            conn.execute(statement)
    for k in range(prefill // 30_000):
        journal(store, fan_out(1_000 + k, 30_000, T0 + k))
        store.expand_journal()
    journaled, written = [], []
    for k in range(repeat):
        orders = fan_out(900_000 + k, fanout, T0 + 10_000 + k)
        started = time.perf_counter()
        journal(store, orders)
        journaled.append(time.perf_counter() - started)
        started = time.perf_counter()
        store.expand_journal()
        written.append(time.perf_counter() - started)
    store.close()
    return float(np.median(journaled)), float(np.median(written))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefill", type=int, default=600_000)
    parser.add_argument("--fanout", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    results: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in VARIANTS.items():
            results[name] = measure(Path(tmp), extra, args.prefill, args.fanout, args.repeat)
    base = results["schema as migrated"][1]
    print(f"{args.fanout:,}-order fan-out over {args.prefill:,} orders (median of "
          f"{args.repeat})")  # fmt: skip
    print(f"{'variant':<24} {'journal ms':>11} {'write-out ms':>13} {'x schema':>9}")
    for name, (journal_s, written_s) in results.items():
        print(
            f"{name:<24} {journal_s * 1e3:>11.1f} {written_s * 1e3:>13.0f} {written_s / base:>9.2f}"
        )
    if args.out:
        doc: dict[str, Any] = {
            "args": vars(args),
            "seconds": {k: {"journal": j, "write_out": w} for k, (j, w) in results.items()},
        }
        Path(args.out).write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
