"""The run summary: merge every actor's cumulative stats into the figures a run reports."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tickwise import __version__
from tickwise.config import Config
from tickwise.telemetry import StageTimer, merge_counters

Stats = Mapping[str, Any]


def merged_timer(parts: Iterable[Stats]) -> StageTimer:
    timer = StageTimer()
    for part in parts:
        if "timer" in part:
            timer.merge(part["timer"])
    return timer


def flow_totals(snap: Stats) -> dict[str, int]:
    """What has flowed so far, from a snapshot of every actor's stats: ticks processed,
    signals, orders journaled (created) and sent, fills, rejects (orders and malformed ticks),
    venue errors."""
    fc = snap["feed"]["counters"]
    sc = merge_counters(s["counters"] for s in snap["shards"])
    ac = merge_counters(a["counters"] for a in snap["allocators"])
    rc = merge_counters(r["counters"] for r in snap["routers"])
    bad_ticks = sum(v for k, v in fc.items() if k.startswith("ticks_rejected_"))
    return {
        "ticks": sc.get("ticks_processed", 0),
        "signals": sc.get("signals", 0),
        "journaled": ac.get("orders_journaled", 0),
        "orders": rc.get("orders_sent", 0),
        "fills": rc.get("orders_filled", 0),
        "rejects": rc.get("orders_rejected", 0) + bad_ticks,
        "errors": rc.get("venue_errors", 0),
    }


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def build_summary(
    config: Config,
    elapsed_s: float,
    feed: Stats,
    shards: Sequence[Stats],
    allocators: Sequence[Stats],
    routers: Sequence[Stats],
    ledger: Stats,
    reconciliation: Mapping[str, Any],
    store_checks: Mapping[str, Any],
) -> dict[str, Any]:
    fc = feed["counters"]
    sc = merge_counters(s["counters"] for s in shards)
    ac = merge_counters(a["counters"] for a in allocators)
    rc = merge_counters(r["counters"] for r in routers)
    reasons = merge_counters(r.get("reject_reasons", {}) for r in routers)
    timer = merged_timer([feed, *shards, *allocators, *routers])
    rejected_ticks = {
        k.removeprefix("ticks_rejected_"): v
        for k, v in fc.items()
        if k.startswith("ticks_rejected_")
    }
    received = int(fc["ticks_received"])
    processed = int(sc["ticks_processed"])
    rejected = int(sum(rejected_ticks.values()))
    # Ids the journal holds twice, or that a venue let trade twice: 0 by construction. Repeats
    # the journal refused (a call retried after a restart, a replayed signal) were never sent,
    # and a venue's duplicate-id refusal of a resend is not an outcome: both are counted apart.
    duplicates = int(store_checks.get("duplicate_client_order_ids", 0)) + int(
        reasons.get("duplicate_client_order_id", 0)
    )
    risk = {k.removeprefix("alloc_"): v for k, v in ac.items() if k.startswith("alloc_")}
    latency = {
        stage: timer.histograms[stage].summary_ms()
        for stage in ("feed", "signal", "alloc", "journal", "sent", "venue", "ack")
        if stage in timer.histograms
    }
    for stage in ("signal", "sent", "ack"):
        latency.setdefault(stage, {"p50": 0.0, "p99": 0.0, "max": 0.0, "count": 0})
    return {
        "tier": config.run.tier,
        "version": __version__,
        "instruments": config.instruments,
        "clients": config.clients.count,
        "duration_s": round(elapsed_s, 3),
        "ticks": {
            "received": received,
            "processed": processed,
            "rejected": rejected,
            "rejected_by_reason": rejected_ticks,
            "unaccounted": received - processed - rejected,
            "per_s": round(processed / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        },
        "signals": int(sc["signals"]),
        "orders": {
            "created": int(ac["orders_created"]),
            "journaled": int(ac["orders_journaled"]),
            "sent": int(rc["orders_sent"]),
            "acked": int(rc["orders_acked"]),
            "filled": int(rc["orders_filled"]),
            "rejected": int(rc["orders_rejected"]),
            "rejected_by_reason": reasons,
            "not_sent_by_allocator": risk,
            "duplicate_client_order_ids": duplicates,
            "repeats_refused_by_journal": int(ac["duplicate_client_order_ids"]),
            "duplicate_answers_dropped": int(rc.get("duplicate_answers_dropped", 0)),
            "throttled": int(rc.get("orders_throttled", 0)),
            "per_s": round(int(rc["orders_sent"]) / elapsed_s, 1) if elapsed_s > 0 else 0.0,
            "venue_errors": int(rc["venue_errors"]),
        },
        "latency_ms": latency,
        "reconciliation": dict(reconciliation),
        "ledger": dict(ledger),
        "config": config.to_dict(),
        "machine": machine(),
    }
