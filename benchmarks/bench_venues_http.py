"""Orders per second and acknowledgement latency through each venue's wire protocol.

    python benchmarks/bench_venues_http.py --orders 4000 --repeat 3 --out venues.json

For each venue, a simulator server runs in its own process (`tickwise venue-sim`, no rate
limits, no faults) and the venue's adapter, in this process, sends one market order for each of
`orders` accounts at once and polls until every outcome is back: orders/s is orders over the
time from `submit` to the last outcome, and ack latency is each order's submit-to-outcome time.
The baseline is the in-process simulated venue (`SimVenue`, what `--venues inproc` uses) with
the same matching delay, on the same orders: the ratio is the price of the real protocol
(HTTP/1.1 keep-alive, JSON or XML, signing, the event stream or polling). Medians of `repeat`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from tickwise.data.universe import build_universe
from tickwise.model.ids import client_order_ids
from tickwise.model.instruments import AssetClass, InstrumentRegistry, Venue
from tickwise.model.orders import OrderBatch
from tickwise.venues.connect import simulator_endpoint
from tickwise.venues.credentials import demo_credential
from tickwise.venues.sim import SimVenue, SimVenueConfig
from tickwise.venues.sim.server.common import BROKER_KEY_ID, broker_account_uuid, broker_secret

SEED = 7
DELAY_MS = {Venue.ALPACA: 15.0, Venue.BINANCE: 8.0, Venue.ETRADE: 40.0}


def _orders(registry: InstrumentRegistry, venue: Venue, n: int, signal: int) -> OrderBatch:
    """One market buy per account 1..n, of a liquid instrument the venue trades."""
    crypto = venue is Venue.BINANCE
    inst = int(registry.indexes_of(AssetClass.CRYPTO if crypto else AssetClass.EQUITY)[0])
    price = 60_000.0 if crypto else 200.0
    qty = 0.001 if crypto else 1.0
    clients = np.arange(1, n + 1, dtype=np.int32)
    now = time.time_ns()
    stamp = np.full(n, now, np.int64)
    return OrderBatch(
        client_order_id=client_order_ids(np.full(n, signal), clients),
        signal_id=np.full(n, signal, np.int64),
        client=clients,
        venue=np.full(n, int(venue), np.uint8),
        instrument=np.full(n, inst, np.uint32),
        side=np.ones(n, np.int8),
        qty=np.full(n, qty),
        price=np.full(n, price),
        ts_event=stamp,
        ts_recv=stamp,
        ts_signal=stamp,
        ts_alloc=stamp,
        ts_journal=stamp,
        ts_sent=stamp.copy(),
    )


def _adapter(venue: Venue, registry: InstrumentRegistry, url: str, n: int) -> Any:
    clients = range(1, n + 1)
    if venue is Venue.ALPACA:
        from tickwise.venues.alpaca.auth import BrokerCredentials
        from tickwise.venues.alpaca.client import AlpacaVenue

        firm = BrokerCredentials(BROKER_KEY_ID, broker_secret(), sandbox=True)
        accounts = {c: str(broker_account_uuid(c)) for c in clients}
        return AlpacaVenue.broker(registry, firm, accounts, base_url=url, rate_limits=False)
    credentials = {c: demo_credential(c, venue) for c in clients}
    if venue is Venue.BINANCE:
        from tickwise.venues.binance.client import BinanceVenue

        ws = simulator_endpoint(venue, url).stream_url
        return BinanceVenue(registry, credentials, base_url=url, stream_url=ws, rate_limits=False)
    from tickwise.venues.etrade.client import EtradeVenue

    return EtradeVenue(registry, credentials, base_url=url, rate_limits=False)


async def _drive(venue: Any, batch: OrderBatch, timeout_s: float) -> tuple[float, list[float]]:
    """Submit, poll every millisecond until every outcome is in; (seconds, latencies ms)."""
    start = time.perf_counter()
    sent_ns = time.time_ns()
    await venue.submit(batch)
    latencies: list[float] = []
    deadline = start + timeout_s
    while len(latencies) < len(batch) and time.perf_counter() < deadline:
        await asyncio.sleep(0.001)
        execs = venue.poll(time.time_ns())
        latencies.extend(((execs.ts_ack - sent_ns) / 1e6).tolist())
    return time.perf_counter() - start, latencies


def _summary(seconds: float, latencies: list[float], n: int) -> dict[str, float]:
    lat = np.asarray(latencies) if latencies else np.array([np.nan])
    return {
        "orders": n,
        "answered": len(latencies),
        "seconds": round(seconds, 3),
        "orders_per_s": round(len(latencies) / seconds, 1),
        "ack_p50_ms": round(float(np.percentile(lat, 50)), 2),
        "ack_p99_ms": round(float(np.percentile(lat, 99)), 2),
    }


def _start_server(venue: Venue, n: int) -> tuple[subprocess.Popen[str], str]:
    cmd = [
        sys.executable, "-m", "tickwise.cli", "venue-sim", "--venue", venue.label,
        "--clients", str(n), "--cash", "10000000", "--no-rate-limits", "--tick-rate", "200",
        "--seed", str(SEED), "--delay-ms", str(DELAY_MS[venue]),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    found = re.search(r"on (http://\S+)", line)
    if not found:
        proc.kill()
        raise RuntimeError(f"venue-sim did not start: {line!r}")
    return proc, found.group(1)


def bench_http(venue: Venue, registry: InstrumentRegistry, n: int, repeat: int) -> dict[str, Any]:
    proc, url = _start_server(venue, n)
    try:
        runs = []

        async def one(signal: int) -> tuple[float, list[float]]:
            adapter = _adapter(venue, registry, url, n)
            await adapter.start()
            try:
                return await _drive(adapter, _orders(registry, venue, n, signal), 300.0)
            finally:
                await adapter.close()

        asyncio.run(one(1))  # warm-up: connections, the server's compiled fill kernel
        for r in range(repeat):
            runs.append(_summary(*asyncio.run(one(100 + r)), n))
    finally:
        proc.terminate()
        proc.wait(10)
    return _median_run(runs)


def bench_inproc(venue: Venue, registry: InstrumentRegistry, n: int, repeat: int) -> dict[str, Any]:
    runs = []
    for r in range(repeat + 1):
        sim = SimVenue(
            venue,
            registry,
            np.arange(1, n + 1),
            np.full(n, 1e7),
            SimVenueConfig(ack_delay_ms=DELAY_MS[venue]),
        )
        result = asyncio.run(_drive(sim, _orders(registry, venue, n, 100 + r), 60.0))
        if r:  # the first compiles the fill kernel
            runs.append(_summary(*result, n))
    return _median_run(runs)


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("seconds", "orders_per_s", "ack_p50_ms", "ack_p99_ms")
    out: dict[str, Any] = {k: statistics.median(r[k] for r in runs) for k in keys}
    out["orders"] = runs[0]["orders"]
    out["answered_min"] = min(r["answered"] for r in runs)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=4000, help="accounts, one order each")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--venues", default="alpaca,binance,etrade")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)
    registry = build_universe(1000, 150, seed=SEED)
    results: dict[str, Any] = {
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "orders": args.orders,
        "repeat": args.repeat,
        "venues": {},
    }
    print(
        f"{'venue':8} {'mode':7} {'orders/s':>9} {'ack p50 ms':>11} {'ack p99 ms':>11} {'ratio':>7}"
    )
    for label in args.venues.split(","):
        venue: Venue = Venue.parse(label)
        fns: dict[str, Callable[..., dict[str, Any]]] = {"inproc": bench_inproc, "http": bench_http}
        row = {mode: fn(venue, registry, args.orders, args.repeat) for mode, fn in fns.items()}
        row["http_over_inproc_throughput"] = round(
            row["http"]["orders_per_s"] / row["inproc"]["orders_per_s"], 4
        )
        results["venues"][label] = row
        for mode in ("inproc", "http"):
            r = row[mode]
            ratio = "" if mode == "inproc" else f"{row['http_over_inproc_throughput']:.3f}"
            print(
                f"{label:8} {mode:7} {r['orders_per_s']:>9,.0f} {r['ack_p50_ms']:>11,.1f} "
                f"{r['ack_p99_ms']:>11,.1f} {ratio:>7}"
            )
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
