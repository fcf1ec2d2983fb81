"""Scaling curve: `tickwise bench` with 1, 2, 4, ... allocator and router actors.

    python benchmarks/bench_scaling.py --tier dev --actors 1,2,4 --out s.json --png s.png

Each point is one bench run of the tier (in-process venues, the fan-out stress part-way) with
`[engine] allocators = routers_per_venue = N`, on a store of its own. Reported per N:
orders/s sent, ticks/s processed, ack p50/p99, and the fan-out's time to its last order sent and
acknowledged (the "sell all" signal, which reaches every holder). The runs go one after the other
in one sitting, so the points compare; on a machine with fewer cores than actors, more actors
share the same cores and the curve shows what that costs.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from tickwise.config import load
from tickwise.engine.bench import bench_config, run_bench


def point(tier: str, actors: int, duration: float | None, work: Path) -> dict[str, Any]:
    config = load(tier=tier)
    config = replace(
        config,
        engine=replace(config.engine, allocators=actors, routers_per_venue=actors),
        run=replace(config.run, duration_s=duration or config.run.duration_s),
    )
    result = run_bench(bench_config(config, work / f"actors-{actors}"))
    sell = next((f for f in result["fanout"] if f["signal"] == "sell all"), {})
    ack = result["latency_ms"]["ack (ts_ack - ts_event)"]
    return {
        "actors": actors,
        "orders_per_s": result["throughput"]["orders_per_s"],
        "ticks_per_s": result["throughput"]["ticks_per_s"],
        "ack_p50_ms": ack.get("p50"),
        "ack_p99_ms": ack.get("p99"),
        "fanout_orders": sell.get("orders"),
        "fanout_last_sent_ms": sell.get("last_sent_ms"),
        "fanout_last_ack_ms": sell.get("last_ack_ms"),
        "correct": bool(result["correctness"]["ok"]),
        "machine": result["machine"],
    }


def plot(points: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [p["actors"] for p in points]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(n, [p["orders_per_s"] for p in points], marker="o")
    left.set_xlabel("allocators = routers per venue")
    left.set_ylabel("orders/s sent")
    left.set_xticks(n)
    left.grid(alpha=0.3)
    right.plot(n, [p["fanout_last_sent_ms"] for p in points], marker="o", label="last sent")
    right.plot(n, [p["fanout_last_ack_ms"] for p in points], marker="s", label="last ack")
    right.axhline(200, color="grey", linestyle="--", linewidth=1, label="200 ms")
    right.set_xlabel("allocators = routers per venue")
    right.set_ylabel("fan-out, ms after the signal")
    right.set_xticks(n)
    right.legend()
    right.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="dev", choices=["tiny", "dev", "seed"])
    parser.add_argument("--actors", default="1,2,4", help="allocator/router counts, e.g. 1,2,4")
    parser.add_argument("--duration", type=float, help="seconds per run (default: the tier's)")
    parser.add_argument("--dir", default="var/bench-scaling", help="the runs' stores")
    parser.add_argument("--out", default="scaling.json")
    parser.add_argument("--png", default="scaling.png")
    args = parser.parse_args(argv)
    counts = [int(a) for a in args.actors.split(",") if a.strip()]
    points = [point(args.tier, n, args.duration, Path(args.dir)) for n in counts]
    machine = points[0]["machine"]
    for p in points:
        del p["machine"]
    Path(args.out).write_text(
        json.dumps({"tier": args.tier, "machine": machine, "points": points}, indent=1) + "\n"
    )
    plot(points, Path(args.png), f"tickwise bench {args.tier}, {machine['cores']} cores")
    print(f"{'actors':>6} {'orders/s':>10} {'ticks/s':>9} {'ack p50':>9} {'ack p99':>9} "
          f"{'fan-out sent':>13} {'fan-out ack':>12} correct")  # fmt: skip
    for p in points:
        print(
            f"{p['actors']:>6} {p['orders_per_s']:>10,.0f} {p['ticks_per_s']:>9,.0f} "
            f"{p['ack_p50_ms']:>9} {p['ack_p99_ms']:>9} {p['fanout_last_sent_ms']:>13} "
            f"{p['fanout_last_ack_ms']:>12} {p['correct']}"
        )
    return 0 if all(p["correct"] for p in points) else 2


if __name__ == "__main__":
    sys.exit(main())
