"""Prometheus metrics of a live run, rendered from one engine snapshot (`GET /metrics`).

The controller's snapshot holds every actor's cumulative stats (`Engine.snapshot()`); this
module turns it into the Prometheus text format: counters of each stage, per venue and per
reason, how many actors of each kind Ray restarted, per-stage latency histograms and the
tuner's figures. Each call builds a fresh registry, so nothing is kept between scrapes and the
numbers are exactly those of the snapshot. A restarted actor's counters begin again, which
Prometheus reads as a counter reset.

Latency buckets: the stages' histograms have 50 log-spaced buckets per decade, and each of
those goes whole into the smallest bound of `LATENCY_BOUNDS_S` at or above its upper edge. A
bound therefore counts only observations surely at or below it; one within a fine bucket
(about 4.7 % wide) under a bound may be counted at the next bound up. The decade bounds
(1 ms, 10 ms, 100 ms, 1 s, 10 s) are fine-bucket edges too, so they are exact.

A router's stats do not name its venue: the caller gives the venue of each router, in the
snapshot's order (`RunInfo.router_venues`); a router past the end of that list is `unknown`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from tickwise.model.orders import RejectReason
from tickwise.telemetry import EDGES_NS, LatencyHistogram, StageTimer, merge_counters

Stats = Mapping[str, Any]

PREFIX = "tickwise_"
LATENCY_BOUNDS_S: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
ACTOR_KINDS: tuple[str, ...] = ("feed", "shard", "allocator", "router", "ledger", "tuner")
# The classic text format, which every Prometheus server reads (the names here are all ASCII).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNKNOWN_VENUE = "unknown"

# The snapshot's key for each kind of actor (one actor's stats or a list of them).
_PARTS: dict[str, str] = {
    "feed": "feed",
    "shard": "shards",
    "allocator": "allocators",
    "router": "routers",
    "ledger": "ledger",
    "tuner": "tuner",
}
_STAGE_ORDER = ("feed", "signal", "alloc", "journal", "sent", "venue", "ack")
_REJECT_REASONS = frozenset(reason.name.lower() for reason in RejectReason)
_EXTRA_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")

# Run-wide flow counters: (metric, help, actor kind, counter key).
_FLOW: tuple[tuple[str, str, str, str], ...] = (
    ("ticks_received", "Ticks the feed received.", "feed", "ticks_received"),
    ("ticks_forwarded", "Ticks the feed validated and sent to the shards.", "feed",
     "ticks_forwarded"),
    ("ticks_processed", "Ticks the strategy shards processed.", "shard", "ticks_processed"),
    ("signals", "Signals the strategy shards emitted.", "shard", "signals"),
    ("orders_created", "Orders the allocators created from signals.", "allocator",
     "orders_created"),
    ("orders_journaled", "Orders written to the journal (only those are ever sent).",
     "allocator", "orders_journaled"),
    ("orders_routed", "Journaled orders the allocators handed to the routers.", "allocator",
     "orders_routed"),
    ("orders_refused_by_journal", "Orders whose id the journal already held (a retried call, "
     "a replayed signal); never sent.", "allocator", "duplicate_client_order_ids"),
    ("executions_applied", "Venue answers the ledger applied.", "ledger", "executions_applied"),
    ("executions_recorded", "Venue answers the ledger recorded in the store.", "ledger",
     "executions_recorded"),
)  # fmt: skip

# Per-venue router counters: (metric, help, counter key).
_ROUTER_FLOW: tuple[tuple[str, str, str], ...] = (
    ("orders_received", "Orders the routers received from the allocators.", "orders_received"),
    ("orders_sent", "Orders sent to the venue.", "orders_sent"),
    ("orders_acked", "Orders the venue accepted.", "orders_acked"),
    ("orders_filled", "Orders the venue filled.", "orders_filled"),
    ("orders_rejected", "Orders the venue rejected (by reason: tickwise_order_rejects_total).",
     "orders_rejected"),
    ("orders_throttled", "Orders held back by the desk's order-rate cap at the venue.",
     "orders_throttled"),
    ("executions_forwarded", "Venue answers forwarded to the ledger and the allocators.",
     "executions_forwarded"),
    ("duplicate_answers_dropped", "Duplicate-id refusals of a resend, dropped (the first "
     "send's answer is the outcome).", "duplicate_answers_dropped"),
    ("orders_canceled_on_halt", "Working orders canceled because a new halt covered them.",
     "canceled_on_halt"),
    ("cancel_errors", "Cancels on halt that failed.", "cancel_errors"),
    ("router_recoveries", "Lanes a restarted router settled with its venue.",
     "restarts_recovered"),
)  # fmt: skip

# Tuner figures: (summary key, metric, help); the first are cumulative, the rest levels.
_TUNING_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("runs", "tuning_runs", "Re-tunes run."),
    ("swaps", "tuning_swaps", "Winning parameter sets swapped into the live strategies."),
    ("failed", "tuning_failed", "Re-tunes that failed."),
    ("errors", "tuning_errors", "Errors while re-tuning."),
)
_TUNING_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("instruments_tuned", "tuning_instruments_tuned", "Instruments re-tuned at least once."),
    ("instruments", "tuning_instruments", "Instruments the tuner looks after."),
    ("median_period_s", "tuning_period_median_seconds",
     "Median time between two re-tunes of an instrument."),
    ("p99_period_s", "tuning_period_p99_seconds",
     "99th percentile of the time between two re-tunes of an instrument."),
    ("sets_evaluated_per_s", "tuning_sets_evaluated_per_second",
     "Parameter sets evaluated per second since the tuner started."),
    ("busy_share", "tuning_busy_ratio", "Share of its time the tuner spent re-tuning."),
)  # fmt: skip

# The fine histogram's buckets: bucket i holds EDGES_NS[i-1] <= d < EDGES_NS[i]; the first
# holds everything under 1 µs, the last everything from EDGES_NS[-1] up.
_FINE_UPPER_S = np.append(EDGES_NS, np.inf) / 1e9
_FINE_MID_NS = (np.concatenate(([0.0], EDGES_NS)) + np.append(EDGES_NS, 0.0)) / 2.0
# The coarse bound each fine bucket counts in (len(LATENCY_BOUNDS_S): only +Inf); the bounds
# are widened by a hair so that float rounding keeps a decade edge at its own bound.
_SLOT = np.searchsorted(np.asarray(LATENCY_BOUNDS_S) * (1 + 1e-9), _FINE_UPPER_S, side="left")
_LE = [*(floatToGoString(b) for b in LATENCY_BOUNDS_S), "+Inf"]


def render_metrics(
    snapshot: Mapping[str, Any],
    *,
    extra: Mapping[str, float] | None = None,
    router_venues: Sequence[str] = (),
) -> tuple[bytes, str]:
    """The snapshot in the Prometheus text format, and its content type.

    `extra` adds gauges the snapshot does not hold (e.g. {"halted": 1}) as `tickwise_<name>`;
    a name that is not a metric name, or that clashes with a snapshot metric, is a ValueError.
    `router_venues` is the venue of each router of `snapshot["routers"]`, in that order.
    """
    registry = CollectorRegistry()
    registry.register(_Families(snapshot_families(snapshot, router_venues)))
    registry.register(_Families(_extra_gauges(extra or {})))  # a clash: DuplicateTimeseries
    return generate_latest(registry), CONTENT_TYPE


def snapshot_families(
    snapshot: Mapping[str, Any], router_venues: Sequence[str] = ()
) -> list[Metric]:
    """Every metric family of one snapshot. A missing or empty part counts as zero, and a
    family labelled by venue, reason or stage then has no samples."""
    parts = {kind: _parts(snapshot, kind) for kind in ACTOR_KINDS}
    return [
        *_flow_counters(parts),
        *_router_metrics(parts["router"], router_venues),
        *_server_metrics(_stats_list(snapshot.get("servers"))),
        *_actor_metrics(parts),
        _latency_histograms(
            [*parts["feed"], *parts["shard"], *parts["allocator"], *parts["router"]]
        ),
        *_tuning_metrics(parts["tuner"]),
    ]


class _Families:
    """A collector over the families of one scrape, built once. It describes them too, so the
    registry refuses a second collector that would repeat one of their names."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def describe(self) -> list[Metric]:
        return self._families

    def collect(self) -> list[Metric]:
        return self._families


# -- snapshot access ------------------------------------------------------------------------


def _stats_list(value: object) -> list[Stats]:
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [part for part in value if isinstance(part, Mapping)]
    return []


def _parts(snapshot: Mapping[str, Any], kind: str) -> list[Stats]:
    return _stats_list(snapshot.get(_PARTS[kind]))


def _numbers(value: object) -> dict[str, int]:
    """The numeric entries of a counters dict (anything else in it is left out)."""
    if not isinstance(value, Mapping):
        return {}
    return {str(k): int(v) for k, v in value.items() if isinstance(v, int | float)}


def _counters(parts: Iterable[Stats]) -> dict[str, int]:
    return merge_counters(_numbers(part.get("counters")) for part in parts)


def _by_venue(routers: Sequence[Stats], venues: Sequence[str]) -> dict[str, list[Stats]]:
    groups: dict[str, list[Stats]] = {}
    for i, router in enumerate(routers):
        venue = venues[i] if i < len(venues) and venues[i] else UNKNOWN_VENUE
        groups.setdefault(venue, []).append(router)
    return dict(sorted(groups.items()))


# -- counters -------------------------------------------------------------------------------


def _flow_counters(parts: Mapping[str, list[Stats]]) -> list[Metric]:
    merged = {kind: _counters(parts[kind]) for kind in ACTOR_KINDS}
    families: list[Metric] = [
        CounterMetricFamily(PREFIX + name, doc, value=merged[kind].get(key, 0))
        for name, doc, kind, key in _FLOW
    ]
    rejected = CounterMetricFamily(
        PREFIX + "ticks_rejected", "Ticks the feed's validation rejected.", labels=["reason"]
    )
    for key, value in sorted(merged["feed"].items()):
        if key.startswith("ticks_rejected_"):
            rejected.add_metric([key.removeprefix("ticks_rejected_")], value)
    families.append(rejected)
    return families


def _router_metrics(routers: Sequence[Stats], venues: Sequence[str]) -> list[Metric]:
    groups = _by_venue(routers, venues)
    flows = {
        name: CounterMetricFamily(PREFIX + name, doc, labels=["venue"])
        for name, doc, _ in _ROUTER_FLOW
    }
    rejects = CounterMetricFamily(
        PREFIX + "order_rejects",
        "Orders the venue rejected, by reason.",
        labels=["venue", "reason"],
    )
    errors = CounterMetricFamily(
        PREFIX + "venue_errors",
        "Calls to the venue that failed: kind is the exception's class for a failed submit, "
        "`poll` for a failed poll.",
        labels=["venue", "kind"],
    )
    recovered = CounterMetricFamily(
        PREFIX + "orders_recovered",
        "Unanswered orders a restarted router settled with its venue, by outcome.",
        labels=["venue", "outcome"],
    )
    adapter = CounterMetricFamily(
        PREFIX + "venue_adapter_events",
        "Counters of the network venue adapters (retries, reconnects, ...).",
        labels=["venue", "event"],
    )
    in_flight = GaugeMetricFamily(
        PREFIX + "orders_in_flight", "Orders sent and not yet answered.", labels=["venue"]
    )
    for venue, members in groups.items():
        counters = _counters(members)
        for name, _, key in _ROUTER_FLOW:
            flows[name].add_metric([venue], counters.get(key, 0))
        reasons = merge_counters(_numbers(r.get("reject_reasons")) for r in members)
        for reason, count in sorted(reasons.items()):
            if reason in _REJECT_REASONS:
                rejects.add_metric([venue, reason], count)
        for kind, count in sorted(_venue_errors(members).items()):
            errors.add_metric([venue, kind], count)
        for key, count in sorted(counters.items()):
            if key.startswith("recovered_"):
                recovered.add_metric([venue, key.removeprefix("recovered_")], count)
        for event, count in sorted(
            merge_counters(_numbers(r.get("venue")) for r in members).items()
        ):
            adapter.add_metric([venue, event], count)
        in_flight.add_metric([venue], sum(_number(r.get("pending")) for r in members))
    return [*flows.values(), rejects, errors, recovered, adapter, in_flight]


def _venue_errors(routers: Sequence[Stats]) -> dict[str, int]:
    """Venue errors by kind. A failed submit counts its exception's class among the router's
    reject reasons (venue reasons are the lower-case `RejectReason` names); a failed poll
    records no class, so what the total has beyond the classes is `poll`."""
    per_router = []
    for router in routers:
        kinds = {
            k: v for k, v in _numbers(router.get("reject_reasons")).items()
            if k not in _REJECT_REASONS
        }  # fmt: skip
        rest = _numbers(router.get("counters")).get("venue_errors", 0) - sum(kinds.values())
        if rest > 0:
            kinds["poll"] = rest
        per_router.append(kinds)
    return merge_counters(per_router)


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _server_metrics(servers: Sequence[Stats]) -> list[Metric]:
    """The venue simulator servers of an HTTP run (none otherwise)."""
    received = CounterMetricFamily(
        PREFIX + "venue_server_orders_received",
        "Orders the venue simulator server received.",
        labels=["venue"],
    )
    dropped = CounterMetricFamily(
        PREFIX + "venue_server_events_dropped",
        "Order events the venue simulator server dropped.",
        labels=["venue"],
    )
    marked = CounterMetricFamily(
        PREFIX + "venue_server_ticks_marked",
        "Ticks that moved the venue simulator server's market.",
        labels=["venue"],
    )
    faults = CounterMetricFamily(
        PREFIX + "venue_server_faults_injected",
        "Faults the venue simulator server injected, by fault.",
        labels=["venue", "fault"],
    )
    for server in servers:
        venue = str(server.get("venue") or UNKNOWN_VENUE)
        received.add_metric([venue], _number(server.get("orders_received")))
        dropped.add_metric([venue], _number(server.get("events_dropped")))
        marked.add_metric([venue], _number(server.get("ticks_marked")))
        for fault, count in sorted(_numbers(server.get("faults_injected")).items()):
            faults.add_metric([venue, fault], count)
    return [received, dropped, marked, faults]


# -- actors ---------------------------------------------------------------------------------


def _actor_metrics(parts: Mapping[str, list[Stats]]) -> list[Metric]:
    actors = GaugeMetricFamily(PREFIX + "actors", "Actors of each kind.", labels=["kind"])
    restarted = GaugeMetricFamily(
        PREFIX + "actors_restarted",
        "Actors of each kind that Ray restarted after their process died, at least once (a "
        "restarted actor's counters begin again).",
        labels=["kind"],
    )
    every = CounterMetricFamily(
        PREFIX + "actor_counter",
        "Every counter each kind of actor keeps, summed over its actors.",
        labels=["kind", "counter"],
    )
    for kind in ACTOR_KINDS:
        members = parts[kind]
        actors.add_metric([kind], len(members))
        restarted.add_metric([kind], sum(bool(m.get("restarted")) for m in members))
        for key, value in sorted(_counters(members).items()):
            every.add_metric([kind, key], value)
    families: list[Metric] = [actors, restarted, every]
    for feed in parts["feed"][:1]:
        if "running" in feed:
            families.append(
                GaugeMetricFamily(
                    PREFIX + "feed_running",
                    "1 while the feed is feeding ticks.",
                    value=float(bool(feed["running"])),
                )
            )
    return families


# -- latency --------------------------------------------------------------------------------


def _latency_histograms(parts: Iterable[Stats]) -> Metric:
    merged: dict[str, LatencyHistogram] = {}
    for part in parts:
        for stage, hist in _stage_histograms(part.get("timer")).items():
            mine = merged.get(stage)
            if mine is None:
                mine = merged[stage] = LatencyHistogram()
            mine.merge(hist)
    family = HistogramMetricFamily(
        PREFIX + "stage_latency_seconds",
        "Latency of each pipeline stage. Each of the stage's fine log buckets counts in the "
        "smallest bound at or above its upper edge; _sum is estimated from the fine buckets' "
        "midpoints.",
        labels=["stage"],
    )
    order = {stage: i for i, stage in enumerate(_STAGE_ORDER)}
    for stage in sorted(merged, key=lambda s: (order.get(s, len(order)), s)):
        buckets, sum_s = _prometheus_buckets(merged[stage])
        family.add_metric([stage], buckets, sum_s)
    return family


def _stage_histograms(timer: object) -> dict[str, LatencyHistogram]:
    """A part's histograms by stage, whether it holds the actor's `StageTimer` or the
    histograms themselves, as objects or as `LatencyHistogram.to_dict()` dicts."""
    if isinstance(timer, StageTimer):
        return dict(timer.histograms)
    if not isinstance(timer, Mapping):
        return {}
    out: dict[str, LatencyHistogram] = {}
    for stage, hist in timer.items():
        if isinstance(hist, LatencyHistogram):
            out[str(stage)] = hist
        elif isinstance(hist, Mapping):
            out[str(stage)] = LatencyHistogram.from_dict(hist)
    return out


def _prometheus_buckets(hist: LatencyHistogram) -> tuple[list[tuple[str, float]], float]:
    """Cumulative (le, count) pairs over LATENCY_BOUNDS_S and +Inf, and the estimated sum in
    seconds (the last fine bucket's observations at the midpoint of its edge and the max)."""
    coarse = np.zeros(len(LATENCY_BOUNDS_S) + 1, dtype=np.int64)
    np.add.at(coarse, _SLOT, hist.counts)
    cumulative = np.cumsum(coarse)
    mid: npt.NDArray[np.float64] = _FINE_MID_NS.copy()
    mid[-1] = (EDGES_NS[-1] + max(float(hist.max_ns), EDGES_NS[-1])) / 2.0
    sum_s = float(hist.counts.astype(np.float64) @ mid) / 1e9
    return [(le, float(n)) for le, n in zip(_LE, cumulative, strict=True)], sum_s


# -- tuning and extras ----------------------------------------------------------------------


def _tuning_metrics(tuners: Sequence[Stats]) -> list[Metric]:
    tuning = tuners[0].get("tuning") if tuners else None
    enabled = GaugeMetricFamily(
        PREFIX + "tuning_enabled",
        "1 when the run re-tunes its strategies.",
        value=float(bool(tuners)),
    )
    if not isinstance(tuning, Mapping):
        return [enabled]
    families: list[Metric] = [enabled]
    for key, name, doc in _TUNING_COUNTERS:
        families.append(CounterMetricFamily(PREFIX + name, doc, value=_number(tuning.get(key))))
    for key, name, doc in _TUNING_GAUGES:
        families.append(GaugeMetricFamily(PREFIX + name, doc, value=_number(tuning.get(key))))
    device = tuning.get("device")
    if isinstance(device, str):
        info = GaugeMetricFamily(
            PREFIX + "tuning_device_info", "The device the tuner runs on.", labels=["device"]
        )
        info.add_metric([device], 1.0)
        families.append(info)
    return families


def _extra_gauges(extra: Mapping[str, float]) -> list[Metric]:
    families: list[Metric] = []
    for name, value in extra.items():
        if not _EXTRA_NAME.match(name):
            raise ValueError(f"not a metric name: {name!r}")
        doc = f"{name.replace('_', ' ').capitalize()} (reported by the server)."
        families.append(GaugeMetricFamily(PREFIX + name, doc, value=float(value)))
    return families
