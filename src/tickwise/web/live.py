"""What the running engine tells the dashboard: its state, the latest snapshot of every
actor's stats, and a timeline of rates and per-stage latency built from successive snapshots.

The controller pushes (`started`, `record`, `set_state`); the web server's thread reads. Reads
that need the cluster (a client's account in the ledger, Ray's nodes and actors) go through
callables the engine supplies, so this module never touches Ray.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tickwise.engine.summary import flow_totals, merged_timer
from tickwise.execution.allocator import COUNTER_REASONS
from tickwise.ledger.ledger import ClientSnapshot
from tickwise.telemetry import LatencyHistogram, merge_counters

RunState = Literal["starting", "running", "draining", "finished"]
STAGES = ("feed", "signal", "alloc", "journal", "sent", "venue", "ack")
TIMELINE_POINTS = 3600  # an hour at one point a second


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What a run is, fixed at its start."""

    run_id: str
    tier: str
    duration_s: float
    instruments: int
    clients: int
    store_url: str
    router_venues: tuple[str, ...] = ()  # the venue of each router, in snapshot order
    venue_rate_caps: Mapping[str, float] = field(default_factory=dict)  # orders/s, 0: none


@dataclass(frozen=True, slots=True)
class Point:
    """Rates over the interval ending at `t` (epoch s) and its per-stage latency (ms)."""

    t: float
    rates: Mapping[str, float]
    latency_ms: Mapping[str, Mapping[str, float]]


@dataclass(frozen=True, slots=True)
class VenueRates:
    """Per-venue rates over the last interval."""

    requests_per_s: float
    orders_per_s: float


class LiveState:
    """The dashboard's view of one run; thread-safe."""

    def __init__(
        self,
        account: Callable[[int], ClientSnapshot | None] | None = None,
        cluster: Callable[[], Mapping[str, Any]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lock = threading.Lock()
        self._account = account
        self._cluster = cluster
        self._clock = clock
        self.info: RunInfo | None = None
        self.state: RunState = "starting"
        self._started_at: float | None = None
        self._elapsed = 0.0
        self._snapshot: Mapping[str, Any] | None = None
        self._points: deque[Point] = deque(maxlen=TIMELINE_POINTS)
        self._last: tuple[float, dict[str, int], dict[str, LatencyHistogram]] | None = None
        self._venue_rates: dict[str, VenueRates] = {}
        self._last_venue: tuple[float, dict[str, tuple[int, int]]] | None = None

    # -- written by the controller ----------------------------------------------------------

    def started(self, info: RunInfo) -> None:
        with self._lock:
            self.info = info
            self.state = "running"
            self._started_at = self._clock()

    def set_state(self, state: RunState) -> None:
        with self._lock:
            self.state = state

    def record(self, elapsed_s: float, snapshot: Mapping[str, Any]) -> None:
        """Take a new snapshot: the latest for queries, and a timeline point from its
        difference with the one before (counters and histograms are cumulative)."""
        now = self._clock()
        totals = flow_totals(snapshot)
        timer = merged_timer(
            [snapshot["feed"], *snapshot["shards"], *snapshot["allocators"], *snapshot["routers"]]
        )
        hists = {stage: timer.histograms[stage] for stage in STAGES if stage in timer.histograms}
        with self._lock:
            self._snapshot = snapshot
            self._elapsed = elapsed_s
            if self._last is not None:
                then, before, old = self._last
                dt = max(1e-6, now - then)
                rates = {
                    f"{k}_per_s": max(0.0, (v - before.get(k, 0)) / dt) for k, v in totals.items()
                }
                latency = {
                    stage: _interval_percentiles(hist, old.get(stage))
                    for stage, hist in hists.items()
                }
                self._points.append(Point(now, rates, {k: v for k, v in latency.items() if v}))
            self._last = (now, totals, {k: h.since(None) for k, h in hists.items()})
            self._record_venues(now, snapshot)

    def _record_venues(self, now: float, snapshot: Mapping[str, Any]) -> None:
        info = self.info
        if info is None:
            return
        counts: dict[str, tuple[int, int]] = {}
        for venue, router in zip(info.router_venues, snapshot["routers"], strict=False):
            requests = int(router.get("venue", {}).get("requests", 0))
            sent = int(router["counters"].get("orders_sent", 0))
            r0, s0 = counts.get(venue, (0, 0))
            counts[venue] = (r0 + requests, s0 + sent)
        if self._last_venue is not None:
            then, before = self._last_venue
            dt = max(1e-6, now - then)
            self._venue_rates = {
                venue: VenueRates(
                    max(0.0, (r - before.get(venue, (0, 0))[0]) / dt),
                    max(0.0, (s - before.get(venue, (0, 0))[1]) / dt),
                )
                for venue, (r, s) in counts.items()
            }
        self._last_venue = (now, counts)

    # -- read by the web server -------------------------------------------------------------

    def snapshot(self) -> Mapping[str, Any] | None:
        with self._lock:
            return self._snapshot

    def elapsed_s(self) -> float:
        with self._lock:
            return self._elapsed

    def points(self, since: float) -> list[Point]:
        with self._lock:
            return [p for p in self._points if p.t > since]

    def venue_rates(self) -> dict[str, VenueRates]:
        with self._lock:
            return dict(self._venue_rates)

    def account(self, client: int) -> ClientSnapshot | None:
        """The client's account as the ledger holds it now (None: no live ledger)."""
        return self._account(client) if self._account is not None else None

    def cluster(self) -> Mapping[str, Any]:
        return self._cluster() if self._cluster is not None else {"nodes": [], "resources": {}}


def rejects_by_reason(snapshot: Mapping[str, Any]) -> dict[str, int]:
    """Every counted refusal by reason: the venues', the allocators' risk checks' and the
    feed's malformed ticks."""
    out = merge_counters(r.get("reject_reasons", {}) for r in snapshot["routers"])
    alloc = merge_counters(a["counters"] for a in snapshot["allocators"])
    for name in COUNTER_REASONS:  # the allocators' refusals, not signals needing no order
        if alloc.get(f"alloc_{name}"):
            out[name] = out.get(name, 0) + alloc[f"alloc_{name}"]
    for key, value in snapshot["feed"]["counters"].items():
        if key.startswith("ticks_rejected_") and value:
            out[f"tick_{key.removeprefix('ticks_rejected_')}"] = int(value)
    return {k: v for k, v in sorted(out.items()) if v}


def actor_parts(snapshot: Mapping[str, Any]) -> dict[str, Sequence[Mapping[str, Any]]]:
    """The snapshot's stats grouped by actor kind."""
    parts: dict[str, Sequence[Mapping[str, Any]]] = {
        "feed": [snapshot["feed"]],
        "shard": snapshot["shards"],
        "allocator": snapshot["allocators"],
        "router": snapshot["routers"],
        "ledger": [snapshot["ledger"]],
    }
    if snapshot.get("tuner") is not None:
        parts["tuner"] = [snapshot["tuner"]]
    return parts


def _interval_percentiles(
    now: LatencyHistogram, before: LatencyHistogram | None
) -> dict[str, float]:
    """p50/p99 (ms) of what was recorded between two cumulative histograms ({}: nothing)."""
    recent = now.since(before)
    if recent.total == 0:
        return {}
    return {
        "p50": round(recent.percentile_ns(50) / 1e6, 3),
        "p99": round(recent.percentile_ns(99) / 1e6, 3),
    }
