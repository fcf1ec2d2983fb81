"""Prometheus metrics rendered from an engine snapshot (no Ray: stats built as the actors do)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from snapshots import (
    MS,
    ROUTER_VENUES,
    full_snapshot,
    router_stats,
)

from tickwise.telemetry import LatencyHistogram, StageTimer, merge_counters
from tickwise.web.metrics import LATENCY_BOUNDS_S, render_metrics

DASHBOARD = Path(__file__).parents[3] / "deploy" / "grafana" / "tickwise-dashboard.json"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# -- reading the exposition back ---------------------------------------------------------------


def _render(snapshot: Mapping[str, Any], **kwargs: Any) -> Samples:
    body, _ = render_metrics(snapshot, **kwargs)
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def _render_full(**kwargs: Any) -> Samples:
    return _render(full_snapshot(), router_venues=ROUTER_VENUES, **kwargs)


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def _labels_of(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for sample, labels in samples if sample == name]


def _buckets(samples: Samples, stage: str) -> list[tuple[float, float]]:
    name = "tickwise_stage_latency_seconds_bucket"
    found = [
        (float(labels["le"]), samples[(name, frozenset(labels.items()))])
        for labels in _labels_of(samples, name)
        if labels["stage"] == stage
    ]
    return sorted(found)


def _latency_only(*durations_ns: int) -> dict[str, Any]:
    timer = StageTimer(["ack"])
    timer.record("ack", list(durations_ns))
    return {"routers": [{"counters": {}, "timer": timer}]}


# -- counters ---------------------------------------------------------------------------------


def test_flow_counters_equal_the_actors_counters_merged() -> None:
    snap = full_snapshot()
    shards = merge_counters(s["counters"] for s in snap["shards"])
    routers = merge_counters(r["counters"] for r in snap["routers"])

    samples = _render(snap, router_venues=ROUTER_VENUES)

    assert _value(samples, "tickwise_ticks_received_total") == 1000
    assert _value(samples, "tickwise_ticks_forwarded_total") == 995
    assert _value(samples, "tickwise_ticks_processed_total") == shards["ticks_processed"] == 995
    assert _value(samples, "tickwise_signals_total") == shards["signals"] == 70
    assert _value(samples, "tickwise_orders_journaled_total") == 48
    assert _value(samples, "tickwise_orders_refused_by_journal_total") == 2
    assert _value(samples, "tickwise_executions_recorded_total") == 48
    sent = sum(v for (name, _), v in samples.items() if name == "tickwise_orders_sent_total")
    assert sent == routers["orders_sent"] == 48


def test_rejected_ticks_are_labelled_with_the_validation_reason() -> None:
    samples = _render_full()

    assert _value(samples, "tickwise_ticks_rejected_total", reason="bad_price") == 3
    assert _value(samples, "tickwise_ticks_rejected_total", reason="duplicate") == 2
    assert _value(samples, "tickwise_ticks_rejected_total", reason="out_of_order") == 0


def test_router_counters_are_summed_per_venue_over_its_lanes() -> None:
    samples = _render_full()

    assert _value(samples, "tickwise_orders_sent_total", venue="alpaca") == 40
    assert _value(samples, "tickwise_orders_sent_total", venue="binance") == 8
    assert _value(samples, "tickwise_orders_rejected_total", venue="alpaca") == 3
    assert _value(samples, "tickwise_orders_in_flight", venue="alpaca") == 4
    assert (
        _value(samples, "tickwise_venue_adapter_events_total", venue="alpaca", event="retries") == 2
    )
    assert (
        _value(samples, "tickwise_orders_recovered_total", venue="binance", outcome="resent") == 1
    )


def test_venue_rejects_by_reason_and_venue_errors_by_kind_are_told_apart() -> None:
    samples = _render_full()

    rejects = "tickwise_order_rejects_total"
    assert _value(samples, rejects, venue="alpaca", reason="below_min_notional") == 2
    assert _value(samples, rejects, venue="alpaca", reason="risk_throttled") == 1
    assert _value(samples, rejects, venue="binance", reason="below_min_notional") == 1
    assert all(labels["reason"] != "VenueError" for labels in _labels_of(samples, rejects))
    errors = "tickwise_venue_errors_total"
    assert _value(samples, errors, venue="alpaca", kind="VenueError") == 1
    assert _value(samples, errors, venue="alpaca", kind="poll") == 2
    assert [labels for labels in _labels_of(samples, errors) if labels["venue"] == "binance"] == []


def test_a_router_whose_venue_is_not_given_counts_under_unknown() -> None:
    snap = {"routers": [router_stats(5), router_stats(7)]}

    samples = _render(snap, router_venues=["etrade"])

    assert _value(samples, "tickwise_orders_sent_total", venue="etrade") == 5
    assert _value(samples, "tickwise_orders_sent_total", venue="unknown") == 7


def test_simulator_servers_count_per_venue_and_fault() -> None:
    samples = _render_full()

    assert _value(samples, "tickwise_venue_server_orders_received_total", venue="binance") == 8
    faults = "tickwise_venue_server_faults_injected_total"
    assert _value(samples, faults, venue="alpaca", fault="http_500") == 2


def test_restarted_actors_are_counted_per_kind() -> None:
    samples = _render_full()

    restarted = {
        labels["kind"]: _value(samples, "tickwise_actors_restarted", **labels)
        for labels in _labels_of(samples, "tickwise_actors_restarted")
    }
    assert restarted == {
        "feed": 0,
        "shard": 1,
        "allocator": 0,
        "router": 1,
        "ledger": 0,
        "tuner": 0,
    }
    assert _value(samples, "tickwise_actors", kind="router") == 3


def test_every_actor_counter_is_kept_under_its_kind() -> None:
    samples = _render_full()

    every = "tickwise_actor_counter_total"
    assert _value(samples, every, kind="allocator", counter="alloc_risk_max_position") == 2
    assert _value(samples, every, kind="tuner", counter="swaps_sent") == 3
    assert _value(samples, every, kind="feed", counter="batches") == 3


# -- latency ----------------------------------------------------------------------------------


def test_latency_buckets_are_cumulative_and_the_inf_bucket_is_the_count() -> None:
    samples = _render(_latency_only(200, 3 * MS, 40 * MS, 700 * MS, 20_000 * MS))

    buckets = _buckets(samples, "ack")
    counts = [n for _, n in buckets]
    assert [le for le, _ in buckets] == [*LATENCY_BOUNDS_S, float("inf")]
    assert counts == sorted(counts)
    assert buckets[-1][1] == _value(samples, "tickwise_stage_latency_seconds_count", stage="ack")
    assert buckets[-1][1] == 5
    assert buckets[-2][1] == 4  # 20 s is above the last finite bound


def test_a_3_ms_latency_lands_in_the_5_ms_bucket_not_the_2_5_ms_one() -> None:
    samples = _render(_latency_only(3 * MS))

    buckets = dict(_buckets(samples, "ack"))
    assert buckets[0.0025] == 0
    assert buckets[0.005] == 1


def test_a_latency_just_under_a_decade_bound_counts_at_that_bound() -> None:
    samples = _render(_latency_only(999_000))

    buckets = dict(_buckets(samples, "ack"))
    assert buckets[0.0005] == 0
    assert buckets[0.001] == 1


def test_a_latency_whose_fine_bucket_straddles_a_bound_counts_at_the_bound_above() -> None:
    samples = _render(_latency_only(2_450_000))  # its fine bucket runs from 2.40 to 2.51 ms

    buckets = dict(_buckets(samples, "ack"))
    assert buckets[0.0025] == 0
    assert buckets[0.005] == 1


def test_the_latency_sum_is_estimated_close_to_the_true_sum() -> None:
    durations = (3 * MS, 40 * MS, 700 * MS)

    samples = _render(_latency_only(*durations))

    estimate = _value(samples, "tickwise_stage_latency_seconds_sum", stage="ack")
    assert estimate == pytest.approx(sum(durations) / 1e9, rel=0.05)


def test_latency_of_a_stage_merges_every_actor_that_records_it() -> None:
    samples = _render_full()

    assert _value(samples, "tickwise_stage_latency_seconds_count", stage="signal") == 2
    assert _value(samples, "tickwise_stage_latency_seconds_count", stage="feed") == 2
    assert _value(samples, "tickwise_stage_latency_seconds_count", stage="ack") == 1
    assert _value(samples, "tickwise_stage_latency_seconds_count", stage="journal") == 0


def test_histograms_serialised_as_dicts_render_like_the_stage_timer() -> None:
    hist = LatencyHistogram()
    hist.record([3 * MS, 40 * MS])
    as_timer = StageTimer()
    as_timer.histograms["ack"] = hist

    from_timer = _render({"routers": [{"timer": as_timer}]})
    from_dicts = _render({"routers": [{"timer": {"ack": hist.to_dict()}}]})

    assert from_dicts == from_timer
    assert _value(from_dicts, "tickwise_stage_latency_seconds_count", stage="ack") == 2


# -- tuning, extras, empty parts --------------------------------------------------------------


def test_tuning_figures_appear_with_a_tuner() -> None:
    samples = _render_full()

    assert _value(samples, "tickwise_tuning_enabled") == 1
    assert _value(samples, "tickwise_tuning_swaps_total") == 3
    assert _value(samples, "tickwise_tuning_runs_total") == 7
    assert _value(samples, "tickwise_tuning_sets_evaluated_per_second") == 1200.5
    assert _value(samples, "tickwise_tuning_device_info", device="cpu") == 1


def test_a_run_without_a_tuner_says_so_and_has_no_tuning_figures() -> None:
    snap = {**full_snapshot(), "tuner": None}

    samples = _render(snap)

    assert _value(samples, "tickwise_tuning_enabled") == 0
    assert not any(name == "tickwise_tuning_swaps_total" for name, _ in samples)


def test_extra_values_become_gauges_of_their_own_name() -> None:
    samples = _render_full(extra={"halted": 1, "elapsed_seconds": 12.5})

    assert _value(samples, "tickwise_halted") == 1
    assert _value(samples, "tickwise_elapsed_seconds") == 12.5


@pytest.mark.parametrize("name", ["feed_running", "has space", "9lives"])
def test_an_extra_that_clashes_or_is_no_metric_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError):
        render_metrics(full_snapshot(), extra={name: 1})


@pytest.mark.parametrize(
    "snapshot",
    [
        {},
        {"feed": {}, "shards": [], "allocators": [], "routers": [], "ledger": {}},
        {"tuner": None, "servers": [], "routers": [{"counters": {}}]},
    ],
    ids=["nothing", "empty parts", "no tuner nor servers"],
)
def test_an_empty_snapshot_renders_zeros_without_error(snapshot: dict[str, Any]) -> None:
    body, content_type = render_metrics(snapshot)

    samples = _render(snapshot)
    assert content_type.startswith("text/plain; version=0.0.4")
    assert body.startswith(b"# HELP tickwise_")
    assert _value(samples, "tickwise_ticks_received_total") == 0
    assert _value(samples, "tickwise_actors_restarted", kind="feed") == 0


def test_a_stage_with_no_latency_yet_renders_empty_buckets() -> None:
    samples = _render({"routers": [{"counters": {}, "timer": StageTimer(["ack"])}]})

    assert [n for _, n in _buckets(samples, "ack")] == [0] * (len(LATENCY_BOUNDS_S) + 1)
    assert _value(samples, "tickwise_stage_latency_seconds_sum", stage="ack") == 0


# -- the Grafana dashboard --------------------------------------------------------------------


def test_every_metric_the_dashboard_queries_is_rendered() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    rendered = {name for name, _ in _render_full()}

    queried = {name for expr in exprs for name in re.findall(r"tickwise_\w+", expr)}

    assert dashboard["schemaVersion"] >= 39
    assert any(i["name"] == "DS_PROMETHEUS" for i in dashboard["__inputs"])
    assert len(exprs) >= 8
    assert queried - rendered == set()
