"""The desk's own cap on the order rate to one venue: a token bucket a venue router asks before
sending.

This is a pre-trade control over the whole flow to a venue (a runaway strategy, a replay storm),
separate from the venues' published request limits, which the adapters already respect per key
or IP (`tickwise.venues.ratelimit`). The bucket holds at most `burst` orders and refills at
`max_orders_per_s`, so over any span of t seconds it admits at most `max_orders_per_s * t +
burst` orders. `admit(n, now_ns)` says how many of n orders may go now; the caller holds the
rest and asks again (`delay_ns` says when the next ones will fit), it never drops them here.

Pure: time is the caller's `now_ns` (nanoseconds, the engine's wall clock), nothing sleeps. A
clock that steps back refills nothing and never makes the bucket owe tokens.
"""

from __future__ import annotations

import math

_SECOND_NS = 1_000_000_000


class VenueThrottle:
    """Token bucket: `max_orders_per_s` sustained, `burst` at once (full at the first call).

    `counters["admitted"]` counts orders let through; `counters["throttled"]` counts, per call,
    the orders asked for but not admitted (an order held over three calls counts three times:
    it measures how hard the cap is pressed, reported under `RejectReason.RISK_THROTTLED`).
    """

    def __init__(self, max_orders_per_s: float, burst: float) -> None:
        if not (max_orders_per_s > 0.0 and math.isfinite(max_orders_per_s)):
            raise ValueError("max_orders_per_s must be a finite number > 0")
        if not (burst >= 1.0 and math.isfinite(burst)):
            raise ValueError("burst must be a finite number >= 1 (one order at least)")
        self.max_orders_per_s = max_orders_per_s
        self.burst = burst
        self._tokens = burst
        self._last_ns: int | None = None
        self.counters: dict[str, int] = {"admitted": 0, "throttled": 0}

    def tokens(self, now_ns: int) -> float:
        """Orders (fractional) the bucket holds at `now_ns`."""
        self._refill(now_ns)
        return self._tokens

    def admit(self, n: int, now_ns: int) -> int:
        """How many of `n` orders may be sent at `now_ns` (they are charged to the bucket)."""
        if n < 0:
            raise ValueError("n must be >= 0")
        self._refill(now_ns)
        k = min(n, math.floor(self._tokens))
        self._tokens -= k
        self.counters["admitted"] += k
        self.counters["throttled"] += n - k
        return k

    def delay_ns(self, n: int, now_ns: int) -> int:
        """Nanoseconds from `now_ns` until `min(n, burst)` orders fit (0 if they fit now)."""
        self._refill(now_ns)
        need = min(n, math.floor(self.burst))
        wait = max(0, math.ceil((need - self._tokens) * _SECOND_NS / self.max_orders_per_s))
        while self._after(wait) < need:  # float rounding: the refill must really reach `need`
            wait += 1
        return wait

    def _after(self, elapsed_ns: int) -> int:
        """Whole orders the bucket will hold `elapsed_ns` from its last refill."""
        gained = elapsed_ns * self.max_orders_per_s / _SECOND_NS
        return math.floor(min(self.burst, self._tokens + gained))

    def _refill(self, now_ns: int) -> None:
        if self._last_ns is None:
            self._last_ns = now_ns
            return
        elapsed = now_ns - self._last_ns
        if elapsed <= 0:
            return
        self._last_ns = now_ns
        self._tokens = min(self.burst, self._tokens + elapsed * self.max_orders_per_s / _SECOND_NS)
