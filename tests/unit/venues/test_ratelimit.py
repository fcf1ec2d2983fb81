"""RateLimiter under a fake clock: windows as venues count them, headers, 429/418, backoff."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tickwise.model.instruments import Venue
from tickwise.venues.capabilities import CAPABILITIES, LimitRule, WindowKind
from tickwise.venues.ratelimit import FIRST_BAN_S, Backoff, RateLimiter

IP = {"ip": "10.0.0.1"}
ACCT = {"ip": "10.0.0.1", "account": "acct-1"}


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def binance(clock: FakeClock) -> RateLimiter:
    return RateLimiter(CAPABILITIES[Venue.BINANCE].limits, clock)


def test_capacity_is_reached_exactly_and_not_exceeded() -> None:
    clock = FakeClock()
    limiter = binance(clock)
    order = CAPABILITIES[Venue.BINANCE].cost("POST /api/v3/order")
    admitted = [limiter.try_acquire(ACCT, order) for _ in range(50)]
    assert admitted == [0.0] * 50
    assert limiter.used("orders-10s", "acct-1") == 50
    wait = limiter.try_acquire(ACCT, order)
    assert wait == pytest.approx(10.0)
    assert limiter.used("orders-10s", "acct-1") == 50  # the refusal was not recorded
    assert limiter.used("request-weight", "10.0.0.1") == 50


def test_sliding_window_refills_as_old_costs_age_out() -> None:
    clock = FakeClock()
    limiter = RateLimiter([LimitRule("w", "ip", 60.0, 10, "weight")], clock)
    assert limiter.try_acquire(IP, {"weight": 6}) == 0.0
    clock.advance(30.0)
    assert limiter.try_acquire(IP, {"weight": 4}) == 0.0
    wait = limiter.try_acquire(IP, {"weight": 5})
    assert wait == pytest.approx(30.0)  # the first 6 leave at t+60
    clock.advance(wait)
    assert limiter.try_acquire(IP, {"weight": 5}) == 0.0
    assert limiter.try_acquire(IP, {"weight": 2}) > 0.0  # 4 + 5 used: only 1 left


def test_fixed_window_resets_at_the_boundary() -> None:
    clock = FakeClock(59.0)
    limiter = RateLimiter([LimitRule("w", "key", 60.0, 3, "requests", window="fixed")], clock)
    for _ in range(3):
        assert limiter.try_acquire({"key": "k"}, {"requests": 1}) == 0.0
    wait = limiter.try_acquire({"key": "k"}, {"requests": 1})
    assert wait == pytest.approx(1.0)
    clock.advance(wait)
    for _ in range(3):
        assert limiter.try_acquire({"key": "k"}, {"requests": 1}) == 0.0
    assert limiter.try_acquire({"key": "k"}, {"requests": 1}) == pytest.approx(60.0)


def test_scopes_count_apart_and_absent_scopes_do_not_apply() -> None:
    clock = FakeClock()
    limiter = binance(clock)
    order = CAPABILITIES[Venue.BINANCE].cost("POST /api/v3/order")
    for _ in range(50):
        assert limiter.try_acquire(ACCT, order) == 0.0
    other = {"ip": "10.0.0.1", "account": "acct-2"}
    assert limiter.try_acquire(other, order) == 0.0  # orders are per account, weight per IP
    assert limiter.used("request-weight", "10.0.0.1") == 51
    assert limiter.try_acquire(IP, {"weight": 5949}) == 0.0
    assert limiter.try_acquire(IP, {"weight": 1}) > 0.0
    assert limiter.try_acquire({"ip": "10.0.0.2"}, {"weight": 1}) == 0.0


def test_cost_above_capacity_is_refused_clearly() -> None:
    limiter = binance(FakeClock())
    with pytest.raises(ValueError, match="request-weight"):
        limiter.try_acquire(IP, {"weight": 6001})
    with pytest.raises(ValueError, match="request-weight"):
        limiter.try_acquire(IP, {"weight": float("nan")})


def test_batch_admission_takes_what_fits_and_fits_counts_it() -> None:
    clock = FakeClock()
    limiter = binance(clock)
    order = CAPABILITIES[Venue.BINANCE].cost("POST /api/v3/order")
    assert limiter.fits(ACCT, order, 80) == 50
    batch = [ACCT] * 60 + [{"ip": "10.0.0.1", "account": "acct-2"}] * 5
    mask = limiter.admit_batch(batch, order)
    assert mask[:50].all() and not mask[50:60].any() and mask[60:].all()
    assert limiter.fits(ACCT, order, 10) == 0
    clock.advance(10.0)
    assert limiter.fits(ACCT, order, 10) == 10


def test_used_weight_header_resyncs_both_ways() -> None:
    clock = FakeClock()
    limiter = binance(clock)
    limiter.try_acquire(IP, {"weight": 10})
    limiter.observe_headers(IP, {"X-MBX-USED-WEIGHT-1M": "5990"})
    assert limiter.used("request-weight", "10.0.0.1") == 5990
    assert limiter.try_acquire(IP, {"weight": 11}) > 0.0
    assert limiter.try_acquire(IP, {"weight": 10}) == 0.0
    limiter.observe_headers(IP, {"x-mbx-used-weight-1m": "100"})
    assert limiter.used("request-weight", "10.0.0.1") == 100
    limiter.observe_headers(ACCT, {"X-MBX-ORDER-COUNT-10S": "50", "X-MBX-ORDER-COUNT-1D": "oops"})
    assert limiter.used("orders-10s", "acct-1") == 50
    assert limiter.used("orders-1d", "acct-1") == 0
    assert limiter.try_acquire(ACCT, {"orders": 1}) == pytest.approx(10.0)


def test_alpaca_remaining_zero_blocks_until_reset() -> None:
    clock = FakeClock()
    wall = FakeClock(1_700_000_000.0)
    limiter = RateLimiter(CAPABILITIES[Venue.ALPACA].limits, clock, wall_clock=wall)
    key = {"key": "AK1"}
    assert limiter.try_acquire(key, {"requests": 1}) == 0.0
    reset = str(1_700_000_012)
    limiter.observe_headers(
        key, {"X-Ratelimit-Limit": "200", "X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": reset}
    )
    assert limiter.used("trading-api", "AK1") == 200
    wait = limiter.try_acquire(key, {"requests": 1})
    assert wait == pytest.approx(12.0)  # the venue's reset, not a full minute from now
    clock.advance(wait)
    assert limiter.try_acquire(key, {"requests": 1}) == 0.0
    assert limiter.used("trading-api", "AK1") == 2  # ours, and the one just admitted


def test_alpaca_remaining_on_a_larger_plan_counts_what_was_used() -> None:
    clock = FakeClock()
    limiter = RateLimiter(CAPABILITIES[Venue.ALPACA].limits, clock, wall_clock=FakeClock(0.0))
    headers = {
        "x-ratelimit-limit": "1000",
        "x-ratelimit-remaining": "990",
        "x-ratelimit-reset": "60",
    }
    limiter.observe_headers({"key": "AK1"}, headers)
    assert limiter.used("trading-api", "AK1") == 10


def test_429_blocks_for_retry_after_then_admits() -> None:
    clock = FakeClock()
    limiter = binance(clock)
    assert limiter.penalise(IP, 7.0, 429) == 7.0
    assert limiter.try_acquire(IP, {"weight": 1}) == pytest.approx(7.0)
    assert limiter.try_acquire(ACCT, {"orders": 1}) == pytest.approx(7.0)  # same IP
    clock.advance(7.0)
    assert limiter.try_acquire(IP, {"weight": 1}) == 0.0


def test_429_without_retry_after_doubles_until_a_request_gets_through() -> None:
    clock = FakeClock()
    limiter = binance(clock)
    assert [limiter.penalise(IP, None) for _ in range(3)] == [1.0, 2.0, 4.0]
    clock.advance(4.0)
    assert limiter.try_acquire(IP, {"weight": 1}) == 0.0
    assert limiter.penalise(IP, None) == 1.0


def test_418_ban_lasts_at_least_two_minutes_and_escalates() -> None:
    clock = FakeClock()
    limiter = binance(clock)
    assert limiter.penalise(IP, 30.0, 418) == FIRST_BAN_S
    assert limiter.try_acquire(IP, {"weight": 1}) == pytest.approx(FIRST_BAN_S)
    clock.advance(FIRST_BAN_S)
    assert limiter.try_acquire(IP, {"weight": 1}) == 0.0
    assert limiter.penalise(IP, None, 418) == 2 * FIRST_BAN_S
    assert limiter.penalise(IP, 10_000.0, 418) == 10_000.0  # the venue's longer ban wins
    assert limiter.blocked_until("ip", "10.0.0.1") == pytest.approx(clock.now + 10_000.0)
    with pytest.raises(ValueError, match="retry_after_s"):
        limiter.penalise(IP, -1.0)


def test_acquire_sleeps_until_admitted() -> None:
    clock = FakeClock()
    limiter = RateLimiter([LimitRule("o", "account", 1.0, 2, "orders")], clock)
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    async def run() -> list[float]:
        return [
            await limiter.acquire({"account": "a"}, {"orders": 1}, sleep=fake_sleep)
            for _ in range(5)
        ]

    waits = asyncio.run(run())
    assert waits == pytest.approx([0.0, 0.0, 1.0, 0.0, 1.0])
    assert sum(slept) == pytest.approx(2.0)


def test_backoff_stays_within_bounds_and_repeats_under_a_seed() -> None:
    backoff = Backoff(0.5, 30.0, random.Random(7))
    delays = [backoff.delay(k) for k in range(12) for _ in range(20)]
    for i, d in enumerate(delays):
        assert 0.0 <= d <= min(30.0, 0.5 * 2 ** (i // 20))
    assert max(delays[-20:]) > 15.0  # the cap is reached, not just respected
    again = Backoff(0.5, 30.0, random.Random(7))
    assert [again.delay(k) for k in range(12) for _ in range(20)] == delays
    assert backoff.ceiling(1000) == 30.0
    with pytest.raises(ValueError):
        Backoff(0.0, 1.0, random.Random(0))
    with pytest.raises(ValueError):
        backoff.delay(-1)


def _machine(kind: WindowKind) -> type[RuleBasedStateMachine]:
    window_s, capacity = 10.0, 7.0

    class NeverOverCapacity(RuleBasedStateMachine):
        """Random acquire / clock moves: no window ever holds more than the capacity."""

        def __init__(self) -> None:
            super().__init__()
            self.clock = FakeClock(0.0)
            self.limiter = RateLimiter(
                [LimitRule("r", "account", window_s, capacity, "orders", window=kind)],
                self.clock,
            )
            self.admitted: dict[str, list[tuple[float, float]]] = {"a": [], "b": []}
            self.last_wait = 0.0

        @rule(key=st.sampled_from(["a", "b"]), cost=st.sampled_from([1.0, 2.0, 3.0, 0.5]))
        def acquire(self, key: str, cost: float) -> None:
            wait = self.limiter.try_acquire({"account": key}, {"orders": cost})
            assert wait >= 0.0
            if wait == 0.0:
                self.admitted[key].append((self.clock.now, cost))
            self.last_wait = wait
            self.last = (key, cost)

        @precondition(lambda self: self.last_wait > 0.0)
        @rule()
        def wait_then_retry(self) -> None:
            self.clock.advance(self.last_wait)
            key, cost = self.last
            assert self.limiter.try_acquire({"account": key}, {"orders": cost}) == 0.0
            self.admitted[key].append((self.clock.now, cost))
            self.last_wait = 0.0

        @rule(dt=st.floats(0.0, 25.0, allow_nan=False))
        def advance(self, dt: float) -> None:
            self.clock.advance(dt)
            self.last_wait = 0.0

        @invariant()
        def within_capacity(self) -> None:
            for events in self.admitted.values():
                if kind == "sliding":
                    for start, _ in events:
                        inside = sum(c for t, c in events if start <= t < start + window_s)
                        assert inside <= capacity
                else:
                    per_window: dict[int, float] = {}
                    for t, c in events:
                        slot = int(t // window_s)
                        per_window[slot] = per_window.get(slot, 0.0) + c
                    assert all(v <= capacity for v in per_window.values())

    return NeverOverCapacity


TestSlidingNeverOverCapacity = _machine("sliding").TestCase
TestSlidingNeverOverCapacity.settings = settings(max_examples=60, stateful_step_count=40)
TestFixedNeverOverCapacity = _machine("fixed").TestCase
TestFixedNeverOverCapacity.settings = settings(max_examples=60, stateful_step_count=40)
