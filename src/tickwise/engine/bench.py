"""`tickwise bench`: one tier's workload (WORKLOAD.md), measured as that page asks.

A bench is a normal run of the tier on a store of its own whose clients all follow a core
portfolio, with the fan-out stress fired part-way: one signal on each core instrument (the
first stock of "Core US Equity", followed by every Alpaca and E*Trade client, and the first
pair of "Core Crypto", followed by every Binance client; no single instrument trades at all
three venues), sent to every allocator at once. It goes out twice: a target weight of 1 (buy),
then, once that settled, 0 (sell what was bought), so the second reaches every holder.

Reported, as JSON and a table: latency per stage and end to end; the fan-out's time from the
signal to its last order journaled, sent and acknowledged; throughput (ticks/s processed,
orders/s sent, tuning sets and set×ticks per second); cost (CPU-seconds per million ticks and
per 10,000 orders, over every process of the run on this machine; peak resident memory;
cores and GPUs); the run's correctness checks; the machine, version and configuration.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import ray

from tickwise import __version__
from tickwise.config import Config
from tickwise.data.universe import universe_prices
from tickwise.engine.controller import Engine
from tickwise.engine.summary import machine
from tickwise.model.ids import signal_ids
from tickwise.model.signals import SignalBatch
from tickwise.store import Store, open_store
from tickwise.store.seeding import CORE_PREFIX

log = logging.getLogger(__name__)

STRESS_SETTLE_S = 8.0  # between the buy and the sell signal of the fan-out stress


@dataclass
class ResourceSampler:
    """CPU time and resident memory of this process and all its descendants (the local Ray
    processes: raylet, workers), sampled every `every_s` seconds on a thread.

    CPU time is summed per process from its first to its last sample, so a process that dies
    between samples loses at most `every_s` of its time."""

    every_s: float = 0.5
    peak_rss: int = 0
    _first: dict[int, float] = field(default_factory=dict)
    _last: dict[int, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="bench-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.sample()

    def sample(self) -> None:
        me = psutil.Process(os.getpid())
        rss = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                rss += proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            cpu = times.user + times.system
            self._first.setdefault(proc.pid, cpu)
            self._last[proc.pid] = cpu
        self.peak_rss = max(self.peak_rss, rss)

    @property
    def cpu_s(self) -> float:
        return sum(self._last[pid] - self._first[pid] for pid in self._last)


@dataclass(frozen=True)
class StressSignal:
    label: str
    signal_ids: tuple[int, ...]
    instruments: tuple[str, ...]
    fired_ns: int


def bench_config(config: Config, store_dir: Path) -> Config:
    """The tier as configured, on a fresh store of its own where every client follows a core
    portfolio; no dashboard, no live panel."""
    if store_dir.exists():
        shutil.rmtree(store_dir)
    store_dir.mkdir(parents=True)
    return replace(
        config,
        clients=replace(config.clients, all_follow=True),
        store=replace(config.store, url=f"sqlite:///{store_dir / 'bench.sqlite'}")
        if config.store.url.startswith("sqlite")
        else config.store,
        dashboard=replace(config.dashboard, enabled=False),
        run=replace(config.run, live_panel=False),
    )


def run_bench(config: Config, stress_at_s: float | None = None) -> dict[str, Any]:
    """Run the tier once with the fan-out stress and measure it (module docstring)."""
    if stress_at_s is None:
        stress_at_s = _quiet_moment(config)
    engine = Engine(config)
    sampler = ResourceSampler()
    fired: list[StressSignal] = []
    failures: list[BaseException] = []
    try:
        engine.start()
        assert engine.world is not None
        sampler.start()

        def stress() -> None:
            try:
                time.sleep(stress_at_s)
                fired.extend(_fan_out(engine))
            except BaseException as exc:  # reported below; the run goes on
                log.exception("the fan-out stress failed")
                failures.append(exc)

        stresser = threading.Thread(target=stress, name="bench-stress", daemon=True)
        stresser.start()
        summary = engine.run()
        stresser.join(timeout=60.0)
        sampler.stop()
        resources = ray.cluster_resources()
        fanout = [_outcome(engine.world.store, s) for s in fired]
    finally:
        engine.shutdown()
    return _report(config, summary, sampler, resources, fanout, failures)


def _quiet_moment(config: Config) -> float:
    """When to fire the stress: past the warm-up, away from the burst, with time to settle."""
    duration = config.run.duration_s
    at = 0.75 * duration - STRESS_SETTLE_S
    burst = config.market.burst_at_s
    if burst >= 0 and abs(at - burst) < 5.0:
        at = burst + 5.0
    return max(2.0, min(at, duration - STRESS_SETTLE_S - 5.0))


def _fan_out(engine: Engine) -> list[StressSignal]:
    """Fire the buy, let it settle, fire the sell; each to every allocator at once."""
    assert engine.world is not None and engine.actors is not None
    world = engine.world
    core = [p.instruments[0] for p in world.portfolios if p.name.startswith(CORE_PREFIX)]
    if not core:
        raise RuntimeError("the store has no core portfolio: seed it with [clients] all_follow")
    store = open_store(world.config.store.url)  # this thread's own connection
    try:
        prices = _last_prices(store, core, world)
    finally:
        store.close()
    out = []
    for label, weight in (("buy all", 1.0), ("sell all", 0.0)):
        now = time.time_ns()
        n = len(core)
        batch = SignalBatch(
            signal_id=signal_ids(np.asarray(core), np.full(n, now)),
            instrument=np.asarray(core, np.uint32),
            target_weight=np.full(n, weight),
            price=prices,
            bid=prices * (1 - 1e-4),
            ask=prices * (1 + 1e-4),
            ts_event=np.full(n, now, np.int64),
            ts_recv=np.full(n, now, np.int64),
            ts_signal=np.full(n, now, np.int64),
        )
        ray.get([a.inject.remote(batch) for a in engine.actors.allocators])
        out.append(
            StressSignal(
                label,
                tuple(int(s) for s in batch.signal_id),
                tuple(world.registry[i].symbol for i in core),
                now,
            )
        )
        time.sleep(STRESS_SETTLE_S)
    return out


def _last_prices(store: Store, instruments: list[int], world: Any) -> np.ndarray[Any, Any]:
    """The latest fill price of each instrument, else its generator's starting price."""
    start = universe_prices(world.registry, world.config.run.seed)
    out = []
    for inst in instruments:
        fills = store.recent_fills(instrument=inst, limit=1)
        out.append(fills[0].price if fills else float(start[inst]))
    return np.asarray(out, np.float64)


def _outcome(store: Store, signal: StressSignal) -> dict[str, Any]:
    outcomes = [store.signal_outcome(s) for s in signal.signal_ids]
    journaled = sum(o.journaled for o in outcomes)
    answered = sum(o.answered for o in outcomes)

    def since(ns: int) -> float | None:
        return round((ns - signal.fired_ns) / 1e6, 1) if ns else None

    return {
        "signal": signal.label,
        "instruments": list(signal.instruments),
        "orders": journaled,
        "answered": answered,
        "last_sized_ms": since(max(o.last_alloc_ns for o in outcomes)),
        "first_journaled_ms": since(_earliest(o.first_journal_ns for o in outcomes)),
        "last_journaled_ms": since(max(o.last_journal_ns for o in outcomes)),
        "first_sent_ms": since(_earliest(o.first_sent_ns for o in outcomes)),
        "last_sent_ms": since(max(o.last_sent_ns for o in outcomes)),
        "last_ack_ms": since(max(o.last_ack_ns for o in outcomes)),
    }


def _earliest(times_ns: Iterable[int]) -> int:
    """The earliest of times where 0 means "none"; 0 when there is none."""
    return min((t for t in times_ns if t), default=0)


def _gpus() -> list[str]:
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        answer = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in answer.stdout.splitlines() if line.strip()]


def _report(
    config: Config,
    summary: dict[str, Any],
    sampler: ResourceSampler,
    resources: dict[str, float],
    fanout: list[dict[str, Any]],
    failures: list[BaseException],
) -> dict[str, Any]:
    ticks = int(summary["ticks"]["processed"])
    orders = int(summary["orders"]["sent"])
    elapsed = max(float(summary["duration_s"]), 1e-9)
    cpu = sampler.cpu_s
    tuning = summary.get("tuning", {})
    latency = summary["latency_ms"]
    return {
        "benchmark": "tickwise bench",
        "tier": config.run.tier,
        "venues": config.venues.mode,
        "version": __version__,
        "machine": {**machine(), "gpus": _gpus()},
        "latency_ms": {
            "signal (ts_signal - ts_recv)": latency.get("signal", {}),
            "sent (ts_sent - ts_recv)": latency.get("sent", {}),
            "ack (ts_ack - ts_event)": latency.get("ack", {}),
            "stages": latency,
        },
        "fanout": fanout,
        "fanout_error": f"{type(failures[0]).__name__}: {failures[0]}" if failures else None,
        "throughput": {
            "ticks_per_s": round(ticks / elapsed, 1),
            "orders_per_s": round(orders / elapsed, 1),
            "tuning_sets_per_s": tuning.get("sets_evaluated_per_s"),
            "tuning_set_ticks_per_s": tuning.get("set_ticks_per_s"),
        },
        "cost": {
            "cpu_s": round(cpu, 1),
            "cpu_s_per_million_ticks": round(cpu / ticks * 1e6, 2) if ticks else None,
            "cpu_s_per_10k_orders": round(cpu / orders * 1e4, 2) if orders else None,
            "peak_rss_mb": round(sampler.peak_rss / 2**20, 1),
            "cores": float(resources.get("CPU", 0.0)),
            "gpus": float(resources.get("GPU", 0.0)),
        },
        "correctness": {
            "orders_sent_equal_journaled": summary["orders"]["sent"]
            == summary["orders"]["journaled"],
            **summary["invariants"],
        },
        "run": {
            "duration_s": summary["duration_s"],
            "ticks_processed": ticks,
            "orders_sent": orders,
            "drained": summary["drained"],
        },
        "config": config.to_dict(),
    }
