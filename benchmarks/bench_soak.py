"""Soak: a long run with faults injected at random every few seconds; nothing may be lost or
doubled, and the ledger must end equal to the venues.

    python benchmarks/bench_soak.py --tier dev --minutes 30 --out soak.json [--baseline]
    python benchmarks/bench_soak.py --tier tiny --venues http --minutes 30 --out soak-http.json

Every `--every-s` seconds (jittered) one live actor is killed as if its process crashed — a
strategy shard, an allocator, the ledger, and with `--venues http` a venue router — and Ray
restarts it; 0.1 % of ticks arrive malformed. With `--venues http` the venues are simulator
servers over their real wire protocols, injecting every venue fault at a steady rate (refusals,
lost answers, dropped connections, stream disconnects). In-process (`--venues inproc`, the only
way the `dev` tier's flow fits two cores) the simulated venue lives inside its router, so a
router is not killed there: its death would be the exchange's. At the end the run drains and
the figures come from the store and the summary:

    faults survived (injected at the venues, actors killed), orders journaled, their final
    states, orders settled with the venues after failures, ledger/venue position mismatches and
    orders left without a final answer (both must be 0), duplicate client order ids (0).

With `--baseline` the same tier runs first for the same time without any fault, and the table
shows both side by side (orders per second is the price of the faults). Tuning is off in both:
the soak is about the order path.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import ray

from tickwise.config import Config, load
from tickwise.engine.controller import Engine
from tickwise.engine.summary import machine
from tickwise.store import open_store

EVERY_FAULT = "5xx=0.01,429=0.01,unknown=0.01,timeout=0.002,drop=0.005,disconnect=0.02"
VICTIMS = ("strategy_shard", "allocator", "venue_router", "ledger")
UNSETTLED = ("journaled", "sent", "unknown", "acked", "partially_filled")


def _config(tier: str, minutes: float, store_url: str, venues: str, faults: str) -> Config:
    config = load(tier=tier)
    return replace(
        config,
        run=replace(config.run, duration_s=minutes * 60.0, live_panel=False),
        market=replace(config.market, malformed_fraction=0.001 if faults else 0.0),
        venues=replace(
            config.venues,
            mode=venues,
            rate_limits=False,
            faults=faults if venues == "http" else "",
        ),
        tuning=replace(config.tuning, enabled=False),
        store=replace(config.store, url=store_url),
        engine=replace(config.engine, drain_timeout_s=120.0),
    )


class Killer(threading.Thread):
    """Kills one live actor at random every `every_s` seconds (±50 %) while the market is open
    (the run's duration from when it starts)."""

    def __init__(self, engine: Engine, every_s: float, seed: int, victims: tuple[str, ...]) -> None:
        super().__init__(daemon=True)
        self.engine = engine
        self.every_s = every_s
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.victims = victims
        self.kills: dict[str, int] = dict.fromkeys(victims, 0)

    def run(self) -> None:
        # Kills while the market is open; the drain that follows must be allowed to finish.
        close = time.monotonic() + self.engine.config.run.duration_s
        while not self.stop.wait(self.every_s * self.rng.uniform(0.5, 1.5)):
            actors = self.engine.actors
            if actors is None or time.monotonic() >= close:
                return
            victim = self.rng.choice(self.victims)
            if victim == "strategy_shard":
                handle = self.rng.choice(actors.shards)
            elif victim == "allocator":
                handle = self.rng.choice(actors.allocators)
            elif victim == "venue_router":
                handle = self.rng.choice(actors.all_routers)
            else:
                handle = actors.ledger
            ray.kill(handle, no_restart=False)
            self.kills[victim] += 1


def soak(config: Config, every_s: float, seed: int) -> dict[str, Any]:
    engine = Engine(config)
    killer: Killer | None = None
    try:
        engine.start()
        if every_s > 0:
            http = config.venues.mode == "http"
            victims = VICTIMS if http else tuple(v for v in VICTIMS if v != "venue_router")
            killer = Killer(engine, every_s, seed, victims)
            killer.start()
        started = time.monotonic()
        summary = engine.run()
        wall = time.monotonic() - started
    finally:
        if killer is not None:
            killer.stop.set()
        engine.shutdown()
    store = open_store(config.store.url)
    try:
        stats = store.order_stats(summary["run_id"])
    finally:
        store.close()
    injected: dict[str, int] = {}
    for server in summary["venues"]["servers"]:
        for fault, count in server["faults_injected"].items():
            injected[fault] = injected.get(fault, 0) + int(count)
    kills = killer.kills if killer is not None else {}
    ticks = summary["ticks"]
    return {
        "wall_s": round(wall, 1),
        "drained": bool(summary["drained"]),
        "faults_injected_at_venues": injected,
        "actors_killed": kills,
        "malformed_ticks_rejected": int(ticks["rejected"]),
        "faults_survived": sum(injected.values()) + sum(kills.values()) + int(ticks["rejected"]),
        "orders_journaled": int(stats["journaled"]),
        "orders_by_state": stats["by_state"],
        "orders_per_s": round(stats["journaled"] / max(summary["duration_s"], 1e-9), 1),
        "settled_after_failures": summary["recovery"],
        "unsettled_after_drain": sum(int(stats["by_state"].get(s, 0)) for s in UNSETTLED),
        "duplicate_client_order_ids": int(stats["duplicate_client_order_ids"]),
        "position_mismatches": summary["reconciliation"]["position_mismatches"],  # None: unread
        "venue_books_unread": summary["reconciliation"]["venue_books_unread"],
        "clients_checked": int(summary["reconciliation"]["clients_checked"]),
        "ack_ms": summary["latency_ms"].get("ack", {}),
    }


def _table(results: dict[str, dict[str, Any]]) -> str:
    rows = [
        ("faults survived", "faults_survived"),
        ("  at the venues", "faults_injected_at_venues"),
        ("  actors killed", "actors_killed"),
        ("  malformed ticks rejected", "malformed_ticks_rejected"),
        ("orders journaled", "orders_journaled"),
        ("orders/s", "orders_per_s"),
        ("settled after failures", "settled_after_failures"),
        ("unsettled after drain", "unsettled_after_drain"),
        ("duplicate client order ids", "duplicate_client_order_ids"),
        ("position mismatches", "position_mismatches"),
        ("clients checked", "clients_checked"),
        ("drained", "drained"),
    ]
    names = list(results)
    lines = [f"{'':30}" + "".join(f"{n:>40}" for n in names)]
    for label, key in rows:
        cells = []
        for n in names:
            value = results[n][key]
            if isinstance(value, dict):
                value = ",".join(f"{k}={v}" for k, v in value.items() if v)
            cells.append(f"{value!s:>40}")
        lines.append(f"{label:30}" + "".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tier", default="dev", choices=["tiny", "dev"])
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--venues", default="inproc", choices=["inproc", "http"])
    p.add_argument("--every-s", type=float, default=10.0, help="mean seconds between kills")
    p.add_argument("--faults", default=EVERY_FAULT, help="venue fault plan (see venue-sim)")
    p.add_argument("--store", default="", help="store URL (default: a fresh SQLite file)")
    p.add_argument("--dir", default="var/soak", help="where the default store goes")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--baseline", action="store_true", help="also run without faults first")
    p.add_argument("--out", default="", help="write the results as JSON here")
    args = p.parse_args(argv)
    root = Path(args.dir)
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    results: dict[str, dict[str, Any]] = {}
    plans = [("no faults", "", 0.0)] if args.baseline else []
    plans.append(("faults every few seconds", args.faults, args.every_s))
    for name, faults, every_s in plans:
        url = args.store or f"sqlite:///{root / f'soak-{stamp}-{len(results)}.sqlite'}"
        config = _config(args.tier, args.minutes, url, args.venues, faults)
        results[name] = soak(config, every_s, args.seed)
        ray.shutdown()
    report = {
        "benchmark": "soak",
        "tier": args.tier,
        "minutes": args.minutes,
        "venues": args.venues,
        "machine": machine(),
        "results": results,
    }
    print(_table(results))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    faulty = results[plans[-1][0]]
    ok = (
        faulty["drained"]
        and faulty["position_mismatches"] == 0
        and faulty["unsettled_after_drain"] == 0
        and faulty["duplicate_client_order_ids"] == 0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
