"""Fault injection for the simulator servers: what can go wrong between a client and a venue.

A `FaultPlan` is a probability per fault, parsed from `--faults "5xx=0.01,unknown=0.02"`. Each
order request draws at most one fault; the server applies it in its venue's own words:

    5xx       refused with a 5xx before reaching matching: the order did NOT land
    unknown   the order lands, the answer is the venue's "unknown outcome" error (Alpaca 500,
              Binance -1007 "Timeout waiting for response from backend server", E*Trade 500)
    timeout   the order lands, the answer is held for `stall_s` (longer than a client waits)
    drop      the order lands, the connection is closed without an answer
    429       refused with the venue's rate-limit answer (Retry-After), the order did not land
    disconnect  per second of stream time: an open stream connection is closed by the server

"unknown", "timeout" and "drop" are the cases where a client cannot tell whether its order
landed; it must resolve the order by client order id before sending it again.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum


class Fault(Enum):
    NONE = "none"
    ERROR_5XX = "5xx"
    UNKNOWN = "unknown"
    TIMEOUT = "timeout"
    DROP = "drop"
    RATE_LIMIT = "429"
    DISCONNECT = "disconnect"

    @property
    def order_lands(self) -> bool:
        """Whether the order reaches matching despite the fault."""
        return self in (Fault.NONE, Fault.UNKNOWN, Fault.TIMEOUT, Fault.DROP)


_REQUEST_FAULTS = (Fault.ERROR_5XX, Fault.UNKNOWN, Fault.TIMEOUT, Fault.DROP, Fault.RATE_LIMIT)


class FaultPlanError(ValueError):
    """A fault specification that cannot be understood."""


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Probability per fault (see module doc); `stall_s` is how long a timeout holds."""

    rates: dict[Fault, float] = field(default_factory=dict)
    stall_s: float = 15.0

    def __post_init__(self) -> None:
        total = 0.0
        for fault, rate in self.rates.items():
            if fault is Fault.NONE:
                raise FaultPlanError("'none' is not a fault")
            if not 0.0 <= rate <= 1.0:
                raise FaultPlanError(f"fault {fault.value}: rate {rate} is not in [0, 1]")
            if fault is not Fault.DISCONNECT:
                total += rate
        if total > 1.0:
            raise FaultPlanError(f"request fault rates add up to {total:g} > 1")
        if self.stall_s <= 0:
            raise FaultPlanError("stall_s must be > 0")

    @classmethod
    def parse(cls, text: str, stall_s: float = 15.0) -> FaultPlan:
        """`"5xx=0.01,unknown=0.02,disconnect=0.001"`; an empty text means no faults."""
        rates: dict[Fault, float] = {}
        known = ", ".join(f.value for f in Fault if f is not Fault.NONE)
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, sep, value = item.partition("=")
            try:
                fault = Fault(name.strip().lower())
            except ValueError:
                raise FaultPlanError(
                    f"unknown fault {name.strip()!r} in --faults (known: {known})"
                ) from None
            if not sep:
                raise FaultPlanError(f"fault {fault.value}: expected {fault.value}=RATE")
            try:
                rates[fault] = float(value)
            except ValueError:
                raise FaultPlanError(f"fault {fault.value}: {value!r} is not a number") from None
        return cls(rates, stall_s)

    @property
    def active(self) -> bool:
        return any(rate > 0 for rate in self.rates.values())

    def describe(self) -> str:
        return ",".join(f"{f.value}={r:g}" for f, r in self.rates.items()) or "none"


class FaultInjector:
    """Draws faults from a plan with its own seeded generator and counts what it injected."""

    def __init__(self, plan: FaultPlan | None = None, seed: int = 0) -> None:
        self.plan = plan or FaultPlan()
        self._rng = random.Random(seed)
        self.injected: Counter[str] = Counter()

    def draw(self) -> Fault:
        """The fault for one order request (`Fault.NONE` most of the time)."""
        if not self.plan.active:
            return Fault.NONE
        u = self._rng.random()
        for fault in _REQUEST_FAULTS:
            rate = self.plan.rates.get(fault, 0.0)
            if u < rate:
                self.injected[fault.value] += 1
                return fault
            u -= rate
        return Fault.NONE

    def disconnect_now(self, elapsed_s: float) -> bool:
        """Whether a stream open for `elapsed_s` since the last check is dropped now."""
        rate = self.plan.rates.get(Fault.DISCONNECT, 0.0)
        if rate <= 0.0:
            return False
        if self._rng.random() < 1.0 - (1.0 - rate) ** max(elapsed_s, 0.0):
            self.injected[Fault.DISCONNECT.value] += 1
            return True
        return False
