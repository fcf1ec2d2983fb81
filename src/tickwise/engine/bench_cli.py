"""`tickwise bench --tier tiny|dev|seed [--venues inproc|http] [--out results.json]`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tickwise.config import Config


def add_bench_parser(sub: Any, common: Any) -> None:
    bench = sub.add_parser(
        "bench", help="run a tier's workload with the fan-out stress and report it (WORKLOAD.md)"
    )
    common(bench)
    bench.add_argument("--venues", choices=["inproc", "http"], help="where orders go")
    bench.add_argument("--duration", type=float, help="seconds to run (default: the tier's)")
    bench.add_argument("--out", help="write the results as JSON to this file")
    bench.add_argument(
        "--dir", default="var/bench", help="the bench's own store (emptied first): var/bench"
    )
    bench.add_argument("--stress-at", type=float, help="seconds into the run to fire the stress")


def cmd_bench(config: Config, args: argparse.Namespace, console: Console) -> int:
    from tickwise.engine.bench import bench_config, run_bench

    config = bench_config(config, Path(args.dir))
    console.print(
        f"tickwise bench: tier {config.run.tier}, venues {config.venues.mode}, "
        f"{config.instruments:,} instruments, {config.clients.count:,} clients, "
        f"{config.market.tick_rate:,.0f} ticks/s, {config.run.duration_s:g} s",
        highlight=False,
    )
    result = run_bench(config, stress_at_s=args.stress_at)
    console.print(bench_table(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1, default=float) + "\n")
        console.print(f"results written to {args.out}", highlight=False)
    return 0 if result["correctness"]["ok"] and not result["fanout_error"] else 2


def bench_table(result: dict[str, Any]) -> Table:
    m = result["machine"]
    gpus = ", ".join(m["gpus"]) or "no GPU"
    table = Table(
        title=f"tickwise bench: {result['tier']}, venues {result['venues']} — "
        f"{m['cores']} cores, {m['cpu']}, {gpus}"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, lat in result["latency_ms"].items():
        if name != "stages" and lat:
            table.add_row(f"latency {name} p50/p99/max ms", _lat(lat))
    for stage, lat in result["latency_ms"]["stages"].items():
        table.add_row(f"  stage {stage} p50/p99/max ms", _lat(lat))
    for f in result["fanout"]:
        table.add_row(
            f"fan-out '{f['signal']}' ({', '.join(f['instruments'])})",
            f"{f['orders']:,} orders, {f['answered']:,} answered",
        )
        table.add_row(
            "  last sized; first / last journaled, ms after the signal",
            f"{f['last_sized_ms']}; {f['first_journaled_ms']} / {f['last_journaled_ms']}",
        )
        table.add_row(
            "  first / last sent; last acked, ms after the signal",
            f"{f['first_sent_ms']} / {f['last_sent_ms']}; {f['last_ack_ms']}",
        )
    if result["fanout_error"]:
        table.add_row("fan-out", f"failed: {result['fanout_error']}")
    t, c = result["throughput"], result["cost"]
    table.add_row("ticks/s processed", f"{t['ticks_per_s']:,.0f}")
    table.add_row("orders/s sent", f"{t['orders_per_s']:,.0f}")
    table.add_row(
        "tuning sets/s, set x ticks/s", f"{t['tuning_sets_per_s']} / {t['tuning_set_ticks_per_s']}"
    )
    table.add_row("CPU-s per million ticks", f"{c['cpu_s_per_million_ticks']}")
    table.add_row("CPU-s per 10,000 orders", f"{c['cpu_s_per_10k_orders']}")
    table.add_row("peak memory (all processes)", f"{c['peak_rss_mb']:,.0f} MB")
    table.add_row("cores / GPUs (Ray)", f"{c['cores']:g} / {c['gpus']:g}")
    ok = result["correctness"]
    table.add_row(
        "correct (sent = journaled, no duplicates, positions match, nothing lost)",
        "yes" if ok["ok"] and ok["orders_sent_equal_journaled"] else f"NO: {ok}",
    )
    return table


def _lat(lat: dict[str, Any]) -> str:
    return f"{lat.get('p50')} / {lat.get('p99')} / {lat.get('max')}"
