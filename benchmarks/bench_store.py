"""Write rates of the store's hot path, SQLite against PostgreSQL, side by side in one run.

    python benchmarks/bench_store.py --rows 30000 --repeat 5 --out store.json
    python benchmarks/bench_store.py --postgres postgresql://postgres@127.0.0.1:5432/test

For each back end, in a fresh database: journal a batch of `rows` new orders (the allocator's
write-ahead commit for one fan-out), journal the same batch again (every id refused: a replay),
record one fill per order (the ledger's commit), and record the same fills again (a replayed
fill stream, every row ignored). Each figure is rows per second over the store call, median of
`repeat` batches (each with new ids); the ratio column is PostgreSQL over SQLite. PostgreSQL
runs in a schema of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from tickwise.engine.summary import machine
from tickwise.model.ids import client_order_ids
from tickwise.model.orders import ExecutionBatch, OrderBatch, OrderState
from tickwise.store import open_store
from tickwise.store.base import Store

T0 = 1_750_000_000_000_000_000
STEPS = ("journal new", "journal replayed", "fills new", "fills replayed")


def _orders(rows: int, signal: int) -> OrderBatch:
    clients = np.arange(rows, dtype=np.int32)
    ts = np.full(rows, T0 + signal, np.int64)
    return OrderBatch(
        client_order_id=client_order_ids(np.full(rows, signal), clients),
        signal_id=np.full(rows, signal, np.int64),
        client=clients,
        venue=(clients % 3).astype(np.uint8),
        instrument=np.full(rows, signal % 1000, np.uint32),
        side=np.ones(rows, np.int8),
        qty=np.full(rows, 3.0),
        price=np.full(rows, 101.25),
        ts_event=ts,
        ts_recv=ts + 1,
        ts_signal=ts + 2,
        ts_alloc=ts + 3,
        ts_journal=ts + 4,
        ts_sent=np.zeros(rows, np.int64),
    )


def _timed(call: Callable[[], Any], rows: int) -> float:
    started = time.perf_counter()
    call()
    return rows / (time.perf_counter() - started)


def measure(store: Store, rows: int, repeat: int) -> dict[str, float]:
    rates: dict[str, list[float]] = {step: [] for step in STEPS}
    for n in range(repeat):
        orders = _orders(rows, signal=1_000 + n)
        fills = ExecutionBatch.answering(
            orders, OrderState.FILLED, fill_qty=3.0, fill_price=101.3, fee=0.05, ts_ack=T0 + 9
        )
        journal = partial(store.journal_orders, orders, "bench")
        record = partial(store.record_executions, fills)
        rates["journal new"].append(_timed(journal, rows))
        rates["journal replayed"].append(_timed(journal, rows))
        rates["fills new"].append(_timed(record, rows))
        rates["fills replayed"].append(_timed(record, rows))
    return {step: round(statistics.median(values)) for step, values in rates.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, default=30_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument("--out", default="")
    args = p.parse_args(argv)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = open_store(f"sqlite:///{Path(tmp) / 'bench.sqlite'}")
        try:
            results["sqlite"] = measure(sqlite, args.rows, args.repeat)
        finally:
            sqlite.close()
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(args.postgres, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        sep = "&" if "?" in args.postgres else "?"
        pg = open_store(f"{args.postgres}{sep}options=-csearch_path%3D{schema}")
        try:
            results["postgresql"] = measure(pg, args.rows, args.repeat)
        finally:
            pg.close()
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    print(f"rows/s, median of {args.repeat} batches of {args.rows:,} rows")
    print(f"{'':20}{'sqlite':>12}{'postgresql':>12}{'ratio':>8}")
    for step in STEPS:
        a, b = results["sqlite"][step], results["postgresql"][step]
        print(f"{step:20}{a:>12,.0f}{b:>12,.0f}{b / a:>8.2f}")
    if args.out:
        report = {
            "benchmark": "store",
            "rows": args.rows,
            "repeat": args.repeat,
            "machine": machine(),
            "results": results,
        }
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
