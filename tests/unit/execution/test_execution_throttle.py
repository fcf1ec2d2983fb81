"""The per-venue order-rate cap (token bucket): exact refills, burst, clock steps, and the
property that no window ever admits more than rate x length + burst."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickwise.execution.throttle import VenueThrottle

S = 1_000_000_000  # ns per second
T = 1_700_000_000 * S


def test_the_bucket_starts_full_and_admits_at_most_the_burst() -> None:
    throttle = VenueThrottle(2.0, 5.0)
    assert throttle.admit(8, T) == 5
    assert throttle.admit(1, T) == 0
    assert throttle.counters == {"admitted": 5, "throttled": 4}


def test_it_refills_at_the_rate_and_keeps_fractions() -> None:
    throttle = VenueThrottle(2.0, 5.0)
    throttle.admit(5, T)
    assert throttle.admit(5, T + S // 4) == 0  # half an order
    assert throttle.admit(5, T + S // 2) == 1  # the half carried over
    assert throttle.admit(5, T + S // 2 + S) == 2


def test_it_never_holds_more_than_the_burst() -> None:
    throttle = VenueThrottle(100.0, 3.0)
    throttle.admit(3, T)
    assert throttle.tokens(T + 3_600 * S) == 3.0
    assert throttle.admit(10, T + 3_600 * S) == 3


def test_a_clock_stepping_back_refills_nothing() -> None:
    throttle = VenueThrottle(10.0, 2.0)
    throttle.admit(2, T)
    assert throttle.admit(1, T - 10 * S) == 0
    assert throttle.admit(1, T + S // 10) == 1  # refills from the latest time seen


def test_delay_says_when_the_next_orders_fit() -> None:
    throttle = VenueThrottle(4.0, 2.0)
    throttle.admit(2, T)
    assert throttle.delay_ns(1, T) == S // 4
    assert throttle.delay_ns(5, T) == S // 2  # capped at the burst: more never fits at once
    assert throttle.admit(1, T + S // 4 - 1) == 0
    assert throttle.admit(1, T + S // 4) == 1
    assert throttle.delay_ns(0, T + S // 4) == 0


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1.0), (-1.0, 1.0), (1.0, 0.5), (1.0, math.inf)])
def test_a_throttle_needs_a_positive_rate_and_room_for_one_order(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match=r"max_orders_per_s|burst"):
        VenueThrottle(rate, burst)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.1, 5_000.0),
    burst=st.floats(1.0, 500.0),
    calls=st.lists(
        st.tuples(st.integers(-S // 10, 2 * S), st.integers(0, 2_000)), min_size=1, max_size=60
    ),
)
def test_no_window_admits_more_than_rate_times_its_length_plus_the_burst(
    rate: float, burst: float, calls: list[tuple[int, int]]
) -> None:
    throttle = VenueThrottle(rate, burst)
    now = T
    times: list[int] = []
    admitted: list[int] = []
    for step, n in calls:
        now += step  # sometimes backwards: the bucket must not hand out tokens for it
        k = throttle.admit(n, now)
        assert 0 <= k <= n
        times.append(max(times[-1], now) if times else now)  # the latest clock seen
        admitted.append(k)
    for i in range(len(times)):
        total = 0
        for j in range(i, len(times)):
            total += admitted[j]
            assert total <= rate * (times[j] - times[i]) / S + burst + 1e-6
    assert throttle.counters["admitted"] == sum(admitted)
    assert throttle.counters["throttled"] == sum(n for _, n in calls) - sum(admitted)


@settings(max_examples=100, deadline=None)
@given(rate=st.floats(0.1, 1e6), burst=st.floats(1.0, 1_000.0), n=st.integers(1, 2_000))
def test_waiting_the_delay_always_lets_the_orders_through(
    rate: float, burst: float, n: int
) -> None:
    throttle = VenueThrottle(rate, burst)
    throttle.admit(n, T)  # drain what it can
    wait = throttle.delay_ns(n, T)
    assert throttle.admit(n, T + wait) == min(n, math.floor(burst))
