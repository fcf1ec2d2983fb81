"""What the journal's layout costs a fan-out: the store's journal (since migration 8, a chunk
of orders per row with a key per signal, see `tickwise.store.chunks`) against rows and the
floor of a bare blob, in the same SQLite setup.

    python benchmarks/bench_journal_layouts.py --fanout 30000 --repeat 7

The variants, each in a store file of its own (write-ahead log, `synchronous = NORMAL`, no
checkpoint on commit, as on the order path), each fan-out written in the engine's chunks of
4,096, one transaction per chunk:

- "store journal": `SQLiteStore.journal_orders`, the journal as it is (the duplicate check
  through the chunks' keys, one chunk row and its keys);
- "rows, key only": the orders as rows, keyed by client order id (the journal before
  migration 8, less its run index);
- "rows, no key": the same rows into a table with no key and no index (the cost of binding
  one row per order, whatever the indexes);
- "one blob per chunk": the chunk's arrays as bytes in one row, nothing else (the floor of
  the store's journal: what its duplicate check and keys add is the difference).

Runs alternate between the variants; the median per fan-out is reported with its ratio to the
store's journal. The last two are floors, not journals: neither checks for duplicates.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from bench_journal_indexes import CHUNK, T0, fan_out

from tickwise.model.orders import OrderBatch
from tickwise.store import SQLiteStore
from tickwise.store.chunks import encode_chunk
from tickwise.store.rows import ORDER_COLUMNS, journal_rows

RUN = "bench-run-0123456789abcdef"
_COLUMNS = ",".join(ORDER_COLUMNS)
_MARKS = ",".join("?" * len(ORDER_COLUMNS))


def _raw(path: Path, table: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "wal_autocheckpoint = 0"):
        conn.execute(f"PRAGMA {pragma}")
    conn.execute(table)
    return conn


def _chunks(orders: OrderBatch) -> list[OrderBatch]:
    return [
        orders.take(np.arange(first, min(first + CHUNK, len(orders))))
        for first in range(0, len(orders), CHUNK)
    ]


def _rows_writer(conn: sqlite3.Connection) -> Callable[[OrderBatch], None]:
    def write(chunk: OrderBatch) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            f"INSERT INTO orders ({_COLUMNS}) VALUES ({_MARKS})", journal_rows(chunk, RUN)
        )
        conn.execute("COMMIT")

    return write


def _blob_writer(conn: sqlite3.Connection) -> Callable[[OrderBatch], None]:
    def write(chunk: OrderBatch) -> None:
        body = encode_chunk(chunk)  # the store's own encoding, without its keys
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO chunks (run_id, n, body) VALUES (?, ?, ?)", (RUN, len(chunk), body)
        )
        conn.execute("COMMIT")

    return write


def _store_writer(store: SQLiteStore) -> Callable[[OrderBatch], None]:
    store.on_order_path()

    def write(chunk: OrderBatch) -> None:
        store.journal_orders(chunk, RUN)

    return write


def writers(folder: Path) -> dict[str, Callable[[OrderBatch], None]]:
    others = ", ".join(f"{c} NOT NULL" for c in ORDER_COLUMNS[1:])
    keyed = _raw(
        folder / "keyed.sqlite",
        f"CREATE TABLE orders (client_order_id TEXT PRIMARY KEY, {others}) WITHOUT ROWID",
    )
    plain = _raw(folder / "plain.sqlite", f"CREATE TABLE orders ({_COLUMNS})")
    blobs = _raw(
        folder / "blobs.sqlite",
        "CREATE TABLE chunks (seq INTEGER PRIMARY KEY, run_id TEXT, n INTEGER, body BLOB)",
    )
    return {
        "store journal": _store_writer(SQLiteStore(folder / "store.sqlite")),
        "rows, key only": _rows_writer(keyed),
        "rows, no key": _rows_writer(plain),
        "one blob per chunk": _blob_writer(blobs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fanout", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        variants = writers(Path(tmp))
        for k in range(args.repeat + 1):  # the first round warms every file and is not kept
            for name, write in variants.items():
                chunks = _chunks(fan_out(700_000 + k, args.fanout, T0 + k))
                started = time.perf_counter()
                for chunk in chunks:
                    write(chunk)
                if k:
                    times.setdefault(name, []).append(time.perf_counter() - started)
    medians = {name: statistics.median(t) for name, t in times.items()}
    base = medians["store journal"]
    print(f"{args.fanout:,}-order fan-out in chunks of {CHUNK:,} (median of {args.repeat})")
    print(f"{'layout':<20} {'ms':>8} {'orders/s':>10} {'x store':>8}")
    for name, seconds in medians.items():
        rate = args.fanout / seconds
        print(f"{name:<20} {seconds * 1e3:>8.1f} {rate:>10,.0f} {seconds / base:>8.2f}")
    if args.out:
        doc: dict[str, Any] = {"args": vars(args), "median_s": medians, "runs_s": times}
        Path(args.out).write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
