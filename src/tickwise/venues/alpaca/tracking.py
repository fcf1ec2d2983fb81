"""The adapter's book of orders in flight at Alpaca, from `submit` until `poll` hands back the
outcome: each order's phase, when to look it up next, and the outcomes not yet polled.

    QUEUED -> SENDING -> WORKING -------------> DONE (outcome recorded, polled once)
                 |          ^                    ^
                 v          | found              |
              RESOLVING ----+--- not found: QUEUED again (same client order id)

An order is DONE once, whatever tells first (the POST answer, the stream, a lookup); anything
later about it is ignored. No network here: `client.AlpacaVenue` drives it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from tickwise.model.instruments import Venue
from tickwise.model.orders import COID_DTYPE, ExecutionBatch, OrderState, RejectReason
from tickwise.venues.alpaca.rest import AccountRoute

MAX_CHECK_BACKOFF = 6  # lookups of one order back off up to 2**6 x the first wait


class Phase(Enum):
    QUEUED = "queued"  # waiting for a sending task
    SENDING = "sending"  # POST in flight
    WORKING = "working"  # at the venue, outcome not known yet
    RESOLVING = "resolving"  # the last POST's outcome is unknown: look it up before anything
    DONE = "done"  # outcome recorded


@dataclass(slots=True, eq=False)
class TrackedOrder:
    """One market order of the engine at Alpaca."""

    route: AccountRoute
    coid: str
    signal_id: int
    client: int
    instrument: int
    side: int
    ts_event: int
    ts_recv: int
    ts_sent: int
    body: bytes = b""  # the POST body, the same for every attempt
    phase: Phase = Phase.QUEUED
    venue_order_id: str = ""
    attempts: int = 0  # POSTs sent
    last_sent: float = 0.0  # monotonic time of the last POST
    check_at: float = math.inf  # monotonic time of the next lookup
    checks: int = 0
    checking: bool = False  # a lookup is in flight


@dataclass(frozen=True, slots=True)
class _Outcome:
    order: TrackedOrder
    state: OrderState
    reason: RejectReason
    fill_qty: float
    fill_price: float
    fee: float
    ts_ack: int


class OrderTracker:
    """Orders in flight by (client, client order id), and outcomes waiting for `poll`."""

    def __init__(self, outcome_timeout_s: float) -> None:
        self._outcome_timeout_s = outcome_timeout_s
        self.live: dict[tuple[int, str], TrackedOrder] = {}
        self.client_of_coid: dict[str, int] = {}  # every id ever submitted here
        self._outcomes: list[_Outcome] = []

    def add(self, order: TrackedOrder) -> None:
        self.client_of_coid[order.coid] = order.client
        self.live[(order.client, order.coid)] = order

    def get(self, client: int, coid: str) -> TrackedOrder | None:
        return self.live.get((client, coid))

    def finish(
        self,
        order: TrackedOrder,
        state: OrderState,
        reason: RejectReason = RejectReason.NONE,
        fill_qty: float = 0.0,
        fill_price: float = 0.0,
        fee: float = 0.0,
    ) -> bool:
        """Record the outcome (first caller wins); False if it was already recorded."""
        if order.phase is Phase.DONE:
            return False
        order.phase = Phase.DONE
        self.live.pop((order.client, order.coid), None)
        outcome = _Outcome(order, state, reason, fill_qty, fill_price, fee, time.time_ns())
        self._outcomes.append(outcome)
        return True

    def schedule_check(self, order: TrackedOrder) -> None:
        """Look the order up after the outcome timeout, backing off with each lookup."""
        wait = self._outcome_timeout_s * 2.0 ** min(order.checks, MAX_CHECK_BACKOFF)
        order.checks += 1
        order.check_at = time.monotonic() + wait

    def due(self, now: float) -> list[TrackedOrder]:
        """Working or unresolved orders whose lookup is due and not already running."""
        return [
            order
            for order in self.live.values()
            if order.check_at <= now
            and not order.checking
            and order.phase in (Phase.WORKING, Phase.RESOLVING)
        ]

    def check_all_now(self) -> None:
        """Every working or unresolved order is looked up at the next sweep."""
        now = time.monotonic()
        for order in self.live.values():
            if order.phase in (Phase.WORKING, Phase.RESOLVING):
                order.check_at = now

    def pending(self) -> int:
        return len(self.live) + len(self._outcomes)

    def take(self) -> ExecutionBatch:
        """Every outcome recorded since the last call, as one batch."""
        outcomes, self._outcomes = self._outcomes, []
        if not outcomes:
            return ExecutionBatch.empty()

        def column(values: list[Any], dtype: Any) -> Any:
            return np.array(values, dtype=dtype)

        orders = [o.order for o in outcomes]
        return ExecutionBatch(
            client_order_id=column([o.coid.encode() for o in orders], COID_DTYPE),
            signal_id=column([o.signal_id for o in orders], np.int64),
            client=column([o.client for o in orders], np.int32),
            venue=np.full(len(orders), int(Venue.ALPACA), np.uint8),
            instrument=column([o.instrument for o in orders], np.uint32),
            side=column([o.side for o in orders], np.int8),
            state=column([int(o.state) for o in outcomes], np.int8),
            reason=column([int(o.reason) for o in outcomes], np.int8),
            fill_qty=column([o.fill_qty for o in outcomes], np.float64),
            fill_price=column([o.fill_price for o in outcomes], np.float64),
            fee=column([o.fee for o in outcomes], np.float64),
            ts_event=column([o.ts_event for o in orders], np.int64),
            ts_recv=column([o.ts_recv for o in orders], np.int64),
            ts_sent=column([o.ts_sent for o in orders], np.int64),
            ts_ack=column([o.ts_ack for o in outcomes], np.int64),
        )
