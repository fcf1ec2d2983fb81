"""Latency histograms: percentiles within a bucket of the exact value, exact merges."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tickwise.telemetry import LatencyHistogram

durations = st.lists(st.integers(1_000, 10**11), min_size=1, max_size=300)


@settings(max_examples=50)
@given(durations)
def test_percentiles_are_never_optimistic_and_close(values: list[int]) -> None:
    hist = LatencyHistogram()
    hist.record(values)
    for q in (50, 99):
        exact = float(np.percentile(values, q, method="inverted_cdf"))
        got = hist.percentile_ns(q)
        assert exact * 0.999 <= got <= exact * 1.05 + 1
    assert hist.max_ns == max(values)


@given(durations, durations)
def test_merge_equals_recording_everything_in_one(a: list[int], b: list[int]) -> None:
    left, right, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    left.record(a)
    right.record(b)
    both.record(a + b)
    left.merge(right)
    assert np.array_equal(left.counts, both.counts) and left.max_ns == both.max_ns


def test_round_trip_through_dict() -> None:
    hist = LatencyHistogram()
    hist.record([2_000_000, 5_000_000, 90_000_000])
    back = LatencyHistogram.from_dict(hist.to_dict())
    assert back.summary_ms() == hist.summary_ms()


def test_since_keeps_what_was_recorded_after_an_earlier_state_or_all_after_a_restart() -> None:
    hist = LatencyHistogram()
    hist.record([1_000_000] * 10)
    earlier = hist.since(None)
    hist.record([50_000_000] * 2)
    recent = hist.since(earlier)
    assert recent.total == 2 and recent.percentile_ns(50) >= 50_000_000
    restarted = LatencyHistogram()
    restarted.record([2_000_000])
    assert restarted.since(earlier).total == 1  # counts began again: all of it is recent
    assert hist.since(None).total == 12 and hist.total == 12  # the original is untouched
