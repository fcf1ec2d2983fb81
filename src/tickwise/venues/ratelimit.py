"""Client-side rate limiting that counts as the venue counts (venues.md §1.4, §2, §3.5, §4.4).

`RateLimiter` keeps one window per (rule, scope key): a sliding window holds every admitted cost
until it ages out after `window_s`; a fixed window resets at multiples of `window_s`. A request is
admitted only when every rule that applies to it has room, and then it is charged to all of
them at once. The venue's own counters (response headers) win over ours (`observe_headers`), and
a 429/418 blocks the offending scope keys until the venue's Retry-After, with Binance-style
escalation of repeated bans (`penalise`). Time comes from an injectable monotonic clock, so the
whole module is deterministic under a fake clock.

`Backoff` gives exponential delays with full jitter from a caller-owned `random.Random`.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from tickwise.venues.alpaca.errors import rate_limit_from_headers
from tickwise.venues.capabilities import LimitRule

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[object]]

BAN_STATUS = 418  # Binance: IP banned for ignoring 429s
FIRST_BAN_S = 120.0  # venues.md §3.5: bans last 2 min ... 3 days, escalating
MAX_BAN_S = 3 * 86400.0
DEFAULT_RETRY_AFTER_S = 1.0  # a 429 without Retry-After: wait this long, doubling per repeat


def _after(deadline: float, now: float) -> float:
    """Seconds from `now` until `deadline`, rounded up so that `now + wait >= deadline` holds."""
    return math.nextafter(deadline - now, math.inf)


@dataclass(slots=True)
class _Window:
    """Usage of one rule for one scope key."""

    rule: LimitRule
    used: float = 0.0
    events: deque[tuple[float, float]] = field(default_factory=deque)  # sliding: (expiry, cost)
    end: float = -math.inf  # fixed: when the current window closes

    def refresh(self, now: float) -> None:
        if self.rule.window == "sliding":
            events = self.events
            while events and events[0][0] <= now:
                self.used -= events.popleft()[1]
            if not events:
                self.used = 0.0
        elif now >= self.end:
            index = max(math.floor(now / self.rule.window_s), 0)
            end = (index + 1) * self.rule.window_s
            while end <= now:  # floor(now / w) may round down at a boundary
                end += self.rule.window_s
            self.end, self.used = end, 0.0

    def wait(self, cost: float, now: float) -> float:
        """Seconds until `cost` fits (after `refresh(now)`); 0 when it fits now."""
        room = self.rule.capacity - self.used
        if cost <= room:
            return 0.0
        if self.rule.window == "fixed":
            return _after(self.end, now)
        for expiry, spent in self.events:
            room += spent
            if cost <= room:
                return _after(expiry, now)
        return _after(self.events[-1][0], now)  # unreachable while cost <= capacity

    def charge(self, cost: float, now: float) -> None:
        self.used += cost
        if self.rule.window == "sliding":
            self.events.append((now + self.rule.window_s, cost))

    def resync(self, used: float, now: float, expiry: float | None = None) -> None:
        """Make our count equal the venue's: add the missing usage now (leaving at `expiry`,
        by default a full window from now), or forget the oldest."""
        if self.rule.window == "fixed":
            self.used = used
            return
        if used > self.used:
            leaves = now + self.rule.window_s if expiry is None else expiry
            self.events.append((leaves, used - self.used))
            if len(self.events) > 1 and leaves < self.events[-2][0]:
                self.events = deque(sorted(self.events))
            self.used = used
            return
        while self.events and self.used - self.events[0][1] >= used:
            self.used -= self.events.popleft()[1]
        if self.events and self.used > used:
            expiry, spent = self.events.popleft()
            self.events.appendleft((expiry, spent - (self.used - used)))
            self.used = used
        if not self.events:
            self.used = 0.0


@dataclass(slots=True)
class _Penalty:
    until: float = -math.inf
    strikes: int = 0  # 429s in a row
    bans: int = 0  # 418s ever


class RateLimiter:
    """Admits requests against a venue's `LimitRule`s per scope key; see the module docstring.

    `scope_keys` maps a scope ("ip", "key", "account") to the identity it counts by for this
    request; a rule whose scope is absent does not apply (Alpaca Broker account-scoped calls
    pass only "account"). `cost` maps a meter (`LimitRule.meter`: "weight", "orders",
    "order:requests" ...) to the amount; a rule whose meter is absent does not apply.
    """

    def __init__(
        self,
        rules: Sequence[LimitRule],
        clock: Clock = time.monotonic,
        *,
        wall_clock: Clock = time.time,
    ) -> None:
        self._rules = tuple(rules)
        self._clock = clock
        self._wall_clock = wall_clock
        self._windows: dict[tuple[int, str], _Window] = {}
        self._penalties: dict[tuple[str, str], _Penalty] = {}

    @property
    def rules(self) -> tuple[LimitRule, ...]:
        return self._rules

    def _applicable(
        self, scope_keys: Mapping[str, str], cost: Mapping[str, float], now: float
    ) -> list[tuple[_Window, float]]:
        out: list[tuple[_Window, float]] = []
        for i, rule in enumerate(self._rules):
            key = scope_keys.get(rule.scope)
            amount = cost.get(rule.meter)
            if key is None or amount is None or amount == 0:
                continue
            if not 0.0 <= amount <= rule.capacity:  # NaN too
                raise ValueError(
                    f"rate limit {rule.name!r}: cost {amount} outside 0..{rule.capacity}"
                )
            window = self._windows.get((i, key))
            if window is None:
                window = self._windows[(i, key)] = _Window(rule)
            window.refresh(now)
            out.append((window, amount))
        return out

    def _blocked_for(self, scope_keys: Mapping[str, str], now: float) -> float:
        wait = 0.0
        for scope, key in scope_keys.items():
            penalty = self._penalties.get((scope, key))
            if penalty is not None and penalty.until > now:
                wait = max(wait, _after(penalty.until, now))
        return wait

    def wait_for(self, scope_keys: Mapping[str, str], cost: Mapping[str, float]) -> float:
        """Seconds until a request with `cost` would be admitted (0: now); records nothing."""
        now = self._clock()
        wait = self._blocked_for(scope_keys, now)
        for window, amount in self._applicable(scope_keys, cost, now):
            wait = max(wait, window.wait(amount, now))
        return wait

    def try_acquire(self, scope_keys: Mapping[str, str], cost: Mapping[str, float]) -> float:
        """Admit and record the request when every applicable rule has room (returns 0.0),
        else record nothing and return the seconds to wait before trying again."""
        now = self._clock()
        wait = self._blocked_for(scope_keys, now)
        applicable = self._applicable(scope_keys, cost, now)
        for window, amount in applicable:
            wait = max(wait, window.wait(amount, now))
        if wait > 0.0:
            return wait
        for window, amount in applicable:
            window.charge(amount, now)
        for scope, key in scope_keys.items():  # admitted after a pause: the 429 streak is over
            penalty = self._penalties.get((scope, key))
            if penalty is not None:
                penalty.strikes = 0
        return 0.0

    async def acquire(
        self,
        scope_keys: Mapping[str, str],
        cost: Mapping[str, float],
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> float:
        """Wait (with `sleep`) until the request is admitted; returns the seconds waited."""
        waited = 0.0
        while (wait := self.try_acquire(scope_keys, cost)) > 0.0:
            await sleep(wait)
            waited += wait
        return waited

    def admit_batch(
        self, scope_keys: Sequence[Mapping[str, str]], cost: Mapping[str, float]
    ) -> npt.NDArray[np.bool_]:
        """Admit what fits now of a batch of requests of equal `cost`, in order, one scope-key
        mapping each; returns the admitted mask (refused ones are not recorded)."""
        out = np.zeros(len(scope_keys), dtype=np.bool_)
        for i, keys in enumerate(scope_keys):
            out[i] = self.try_acquire(keys, cost) == 0.0
        return out

    def fits(self, scope_keys: Mapping[str, str], cost: Mapping[str, float], n: int) -> int:
        """How many of `n` requests of `cost` for the same scope keys would be admitted now."""
        now = self._clock()
        if n <= 0 or self._blocked_for(scope_keys, now) > 0.0:
            return 0
        count = n
        for window, amount in self._applicable(scope_keys, cost, now):
            room = window.rule.capacity - window.used
            count = min(count, max(0, math.floor(room / amount)))
        return count

    def used(self, rule_name: str, scope_key: str) -> float:
        """What `rule_name` has counted for `scope_key` in its current window."""
        for i, rule in enumerate(self._rules):
            if rule.name == rule_name:
                window = self._windows.get((i, scope_key))
                if window is None:
                    return 0.0
                window.refresh(self._clock())
                return window.used
        raise KeyError(f"no rate limit rule named {rule_name!r}")

    def observe_headers(self, scope_keys: Mapping[str, str], headers: Mapping[str, str]) -> None:
        """Resync from a response's usage headers (any case): Binance `X-MBX-USED-WEIGHT-1M`,
        `X-MBX-ORDER-COUNT-10S/-1D` (used so far); Alpaca `X-Ratelimit-Remaining`, used =
        `X-Ratelimit-Limit` - remaining, which frees at `X-Ratelimit-Reset` (epoch s, read
        against `wall_clock`). Unparseable values are ignored."""
        lowered = {name.lower(): value for name, value in headers.items()}
        now = self._clock()
        reported = rate_limit_from_headers(lowered)
        for i, rule in enumerate(self._rules):
            key = scope_keys.get(rule.scope)
            if key is None or rule.header is None or rule.header not in lowered:
                continue
            try:
                value = float(lowered[rule.header])
            except ValueError:
                continue
            if not math.isfinite(value) or value < 0:
                continue
            expiry: float | None = None
            if rule.header_counts == "used":
                used = value
            elif reported is not None:
                used = reported.limit - value
                expiry = now + max(0.0, reported.reset_epoch_s - self._wall_clock())
            else:
                used = rule.capacity - value
            window = self._windows.get((i, key))
            if window is None:
                window = self._windows[(i, key)] = _Window(rule)
            window.refresh(now)
            window.resync(min(max(used, 0.0), rule.capacity), now, expiry)

    def _block(self, scope: str, key: str, until: float) -> _Penalty:
        penalty = self._penalties.setdefault((scope, key), _Penalty())
        penalty.until = max(penalty.until, until)
        return penalty

    def penalise(
        self, scope_keys: Mapping[str, str], retry_after_s: float | None, status: int = 429
    ) -> float:
        """The venue said "too many" (429, Binance 418, E*Trade's 400 page): block every scope key
        in `scope_keys` for the Retry-After, or for a default that doubles with each repeat.
        A 418 ban lasts at least 2 min, doubling per ban up to 3 days. Returns the block seconds."""
        if retry_after_s is not None and not (math.isfinite(retry_after_s) and retry_after_s >= 0):
            raise ValueError(f"retry_after_s must be a finite number >= 0, got {retry_after_s}")
        now = self._clock()
        longest = 0.0
        for scope, key in scope_keys.items():
            penalty = self._penalties.setdefault((scope, key), _Penalty())
            if status == BAN_STATUS:
                penalty.bans += 1
                floor = min(FIRST_BAN_S * 2.0 ** (penalty.bans - 1), MAX_BAN_S)
            else:
                penalty.strikes += 1
                doubling = DEFAULT_RETRY_AFTER_S * 2.0 ** min(penalty.strikes - 1, 16)
                floor = 0.0 if retry_after_s is not None else min(doubling, FIRST_BAN_S)
            block = max(retry_after_s or 0.0, floor)
            self._block(scope, key, now + block)
            longest = max(longest, block)
        return longest

    def blocked_until(self, scope: str, key: str) -> float:
        """The clock time until which `key` is blocked (-inf when it is not)."""
        penalty = self._penalties.get((scope, key))
        return -math.inf if penalty is None else penalty.until


class Backoff:
    """Exponential backoff with full jitter: attempt k waits uniform(0, min(cap, base * 2**k)).

    Deterministic for a seeded `rng`; the caller owns the rng so tests and replays can fix it.
    """

    def __init__(self, base: float, cap: float, rng: random.Random) -> None:
        if not (base > 0.0 and cap >= base):
            raise ValueError(f"backoff needs 0 < base <= cap, got base={base}, cap={cap}")
        self.base = base
        self.cap = cap
        self._rng = rng

    def ceiling(self, attempt: int) -> float:
        """The largest delay attempt `attempt` (0-based) can draw."""
        if attempt < 0:
            raise ValueError(f"backoff attempt must be >= 0, got {attempt}")
        if attempt >= 64:  # 2**64 * base is past any sane cap; avoid overflow
            return self.cap
        return min(self.cap, self.base * 2.0**attempt)

    def delay(self, attempt: int) -> float:
        return self._rng.uniform(0.0, self.ceiling(attempt))
