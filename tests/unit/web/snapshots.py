"""Actor stats as the actors' `stats()` build them, for tests of what reads snapshots
(metrics, the dashboard's live state and queries), without Ray."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tickwise.data.validation import REJECT_REASONS
from tickwise.model.orders import RejectReason
from tickwise.telemetry import StageTimer
from tickwise.venues.base import VenueError

MS = 1_000_000  # ns


def feed_stats(
    received: int, rejected: Mapping[str, int], restarted: bool = False
) -> dict[str, Any]:
    timer = StageTimer(["feed"])
    timer.record("feed", [1 * MS, 2 * MS])
    counts = {r.label: rejected.get(r.label, 0) for r in REJECT_REASONS}
    forwarded = received - sum(counts.values())
    return {
        "counters": {
            "ticks_received": received,
            "ticks_forwarded": forwarded,
            "batches": 3,
            "stalls": 0,
            **{f"ticks_rejected_{k}": v for k, v in counts.items()},
        },
        "timer": timer,
        "running": True,
        "restarted": restarted,
    }


def shard_stats(processed: int, signals: int, restarted: bool = False) -> dict[str, Any]:
    timer = StageTimer(["signal"])
    timer.record("signal", [3 * MS])
    counters = {
        "ticks_processed": processed,
        "signals": signals,
        "signal_batches_sent": 1,
        "checkpoints": 0,
        "checkpoint_errors": 0,
        "resumed_from_checkpoint": int(restarted),
    }
    return {"counters": counters, "timer": timer, "restarted": restarted}


def allocator_stats(created: int, journaled: int, restarted: bool = False) -> dict[str, Any]:
    timer = StageTimer(["alloc", "journal"])
    timer.record("alloc", [MS // 2])
    counters = {
        "signal_batches_received": 1,
        "orders_created": created,
        "orders_journaled": journaled,
        "orders_routed": journaled,
        "order_batches_routed": 1,
        "duplicate_client_order_ids": created - journaled,
        "alloc_risk_max_position": 2,
        "halt_read_errors": 0,
    }
    return {"counters": counters, "timer": timer, "restarted": restarted}


def router_stats(
    sent: int,
    rejects: Mapping[RejectReason, int] | None = None,
    submit_errors: int = 0,
    poll_errors: int = 0,
    ack_ns: tuple[int, ...] = (),
    restarted: bool = False,
) -> dict[str, Any]:
    timer = StageTimer(["sent", "ack", "venue"])
    timer.record("ack", list(ack_ns))
    rejects = rejects or {}
    reasons = {reason.name.lower(): count for reason, count in rejects.items()}
    if submit_errors:
        reasons[VenueError.__name__] = submit_errors  # as a failed submit counts it
    rejected = sum(rejects.values())
    return {
        "counters": {
            "orders_received": sent,
            "orders_sent": sent,
            "orders_acked": sent - rejected,
            "orders_filled": sent - rejected,
            "orders_rejected": rejected,
            "executions_forwarded": sent,
            "venue_errors": submit_errors + poll_errors,
            "duplicate_answers_dropped": 0,
            "orders_throttled": 0,
            "canceled_on_halt": 0,
            "cancel_errors": 0,
            "restarts_recovered": int(restarted),
            "recovered_adopted": 0,
            "recovered_resent": 1 if restarted else 0,
            "recovered_expired": 0,
            "recovered_unresolved": 0,
        },
        "reject_reasons": reasons,
        "timer": timer,
        "pending": 2,
        "venue": {"retries": 1},
        "restarted": restarted,
    }


def ledger_stats(applied: int, restarted: bool = False) -> dict[str, Any]:
    counters = {"executions_applied": applied, "executions_recorded": applied, "fills_restored": 0}
    return {"counters": counters, "restarted": restarted}


def tuner_stats(runs: int, swaps: int) -> dict[str, Any]:
    tuning = {
        "runs": runs,
        "swaps": swaps,
        "failed": 0,
        "errors": 0,
        "instruments_tuned": 4,
        "instruments": 10,
        "median_period_s": 30.0,
        "p99_period_s": 55.5,
        "sets_evaluated_per_s": 1200.5,
        "busy_share": 0.4,
        "device": "cpu",
    }
    counters = {"swaps_sent": swaps, "swap_errors": 0, "store_errors": 0, "rounds": runs}
    return {"tuning": tuning, "counters": counters}


def server_stats(venue: str, received: int) -> dict[str, Any]:
    return {
        "venue": venue,
        "url": "http://127.0.0.1:0",
        "orders_received": received,
        "faults_injected": {"disconnect": 1, "http_500": 2},
        "events_dropped": 0,
        "ticks_marked": 100,
    }


ROUTER_VENUES = ("alpaca", "alpaca", "binance")  # the full snapshot's routers, in order


def full_snapshot() -> dict[str, Any]:
    return {
        "feed": feed_stats(1000, {"bad_price": 3, "duplicate": 2}),
        "shards": [shard_stats(600, 40), shard_stats(395, 30, restarted=True)],
        "allocators": [allocator_stats(50, 48)],
        "routers": [
            router_stats(30, {RejectReason.BELOW_MIN_NOTIONAL: 2}, ack_ns=(3 * MS,)),
            router_stats(10, {RejectReason.RISK_THROTTLED: 1}, submit_errors=1, poll_errors=2),
            router_stats(8, {RejectReason.BELOW_MIN_NOTIONAL: 1}, restarted=True),
        ],
        "ledger": ledger_stats(48),
        "tuner": tuner_stats(runs=7, swaps=3),
        "servers": [server_stats("alpaca", 40), server_stats("binance", 8)],
    }
