"""What the E*Trade adapter knows about each order and account, and how a lost order is found.

Pure bookkeeping, no network: `TrackedOrder` (one submitted order), `AccountOrders` (one
account's queue, working orders and the orderIds that are ours), `find_lost_order` (which entry of
an orders list is an order whose place got no answer), and the conversions to the normalised
`ExecutionBatch` rows and `OrderStatus`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from tickwise.model.ids import ClientOrderId
from tickwise.model.instruments import Venue
from tickwise.model.orders import COID_DTYPE, ExecutionBatch, OrderState, RejectReason, Side
from tickwise.venues.base import OrderStatus
from tickwise.venues.etrade.session import AccountSession
from tickwise.venues.etrade.wire import MARKET, OrderRequest, VenueOrder

CLOCK_SKEW_MS = 60_000  # how much earlier than our send E*Trade's placedTime may read
STATE_OF_STATUS: dict[str, OrderState] = {
    "OPEN": OrderState.ACKED,
    "CANCEL_REQUESTED": OrderState.ACKED,
    "PARTIAL": OrderState.PARTIALLY_FILLED,
    "EXECUTED": OrderState.FILLED,
    "CANCELLED": OrderState.CANCELED,
    "REJECTED": OrderState.REJECTED,
    "EXPIRED": OrderState.EXPIRED,
}
_NS_PER_MS = 1_000_000


class Stage(IntEnum):
    QUEUED = 0  # waiting for the account's sending task
    SENDING = 1  # preview / place in progress
    UNKNOWN = 2  # placed without an answer and not found yet (parked)
    WORKING = 3  # E*Trade has it (orderId known); its outcome comes from the orders list
    DONE = 4  # outcome known


@dataclass(slots=True, eq=False)
class TrackedOrder:
    """One submitted order: the engine's columns, the request, and what E*Trade said."""

    coid: str
    signal_id: int
    client: int
    instrument: int
    side: Side
    qty: float
    ts_event: int
    ts_recv: int
    ts_sent: int
    request: OrderRequest | None = None
    stage: Stage = Stage.QUEUED
    order_id: int | None = None
    first_place_ms: int | None = None
    state: OrderState = OrderState.SENT
    reason: RejectReason = RejectReason.NONE
    filled_qty: float = 0.0
    fill_price: float = 0.0
    fee: float = 0.0
    message: str = ""
    ts_ack: int = 0
    cancel_wanted: bool = False

    @property
    def earliest_ms(self) -> int:
        """The earliest placedTime this order can carry at E*Trade (with clock skew)."""
        sent = min(self.ts_event, self.ts_sent) // _NS_PER_MS
        if self.first_place_ms is not None:
            sent = min(sent, self.first_place_ms)
        return sent - CLOCK_SKEW_MS

    def finish(
        self,
        state: OrderState,
        *,
        reason: RejectReason = RejectReason.NONE,
        message: str = "",
        filled_qty: float = 0.0,
        fill_price: float = 0.0,
        fee: float = 0.0,
    ) -> bool:
        """Record the outcome (stamped now); False when it was already known."""
        if self.stage is Stage.DONE:
            return False
        self.stage = Stage.DONE
        self.state = state
        self.reason = reason
        self.message = message
        self.filled_qty = filled_qty
        self.fill_price = fill_price
        self.fee = fee
        self.ts_ack = time.time_ns()
        return True

    def status(self, venue_message: str = "") -> OrderStatus:
        state = self.state
        if self.stage is Stage.WORKING and state is OrderState.SENT:
            state = OrderState.ACKED
        elif self.stage is Stage.UNKNOWN:
            state = OrderState.UNKNOWN
        return OrderStatus(
            client_order_id=ClientOrderId(self.coid),
            venue=Venue.ETRADE,
            client=self.client,
            instrument=self.instrument,
            side=self.side,
            qty=self.qty,
            state=state,
            reason=self.reason,
            filled_qty=self.filled_qty,
            avg_fill_price=self.fill_price,
            fee=self.fee,
            venue_message=venue_message or self.message,
        )


@dataclass(eq=False)
class AccountOrders:
    """One account: its session, the orders waiting to be sent (one at a time), the working
    ones by orderId, the orderIds that are ours, and orders placed without an answer."""

    session: AccountSession
    queue: deque[TrackedOrder] = field(default_factory=deque)
    sender: asyncio.Task[None] | None = None
    working: dict[int, TrackedOrder] = field(default_factory=dict)
    claimed: dict[int, str] = field(default_factory=dict)
    parked: list[TrackedOrder] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def adopt(self, order: TrackedOrder, order_id: int) -> None:
        order.order_id = order_id
        order.stage = Stage.WORKING
        self.claimed[order_id] = order.coid
        self.working[order_id] = order
        if order in self.parked:
            self.parked.remove(order)

    def oldest_working_ms(self) -> int:
        return min(o.earliest_ms for o in self.working.values())


def find_lost_order(
    entries: Iterable[VenueOrder], order: TrackedOrder, claimed: Mapping[int, str]
) -> VenueOrder | None:
    """The orders-list entry that is `order`, placed without an answer: same symbol, action and
    quantity, a MARKET order placed after `order` was sent, whose orderId no other order of ours
    holds; the oldest such entry when there are several."""
    if order.request is None:
        return None
    want = order.request
    candidates = [
        e
        for e in entries
        if e.order_id not in claimed
        and e.symbol == want.symbol
        and e.action == want.action
        and e.ordered_qty == want.quantity
        and e.price_type in (MARKET, "")
        and e.placed_ms >= order.earliest_ms
    ]
    return min(candidates, key=lambda e: (e.placed_ms, e.order_id), default=None)


def outcome_of(entry: VenueOrder) -> OrderState | None:
    """The terminal state an orders-list entry reports, None while it is working."""
    state = STATE_OF_STATUS.get(entry.status)
    return state if state is not None and state.terminal else None


def execution_batch(done: Sequence[TrackedOrder]) -> ExecutionBatch:
    """The outcome rows of finished orders."""
    n = len(done)
    if n == 0:
        return ExecutionBatch.empty()
    coids = [o.coid.encode("ascii", "replace") for o in done]
    return ExecutionBatch(
        client_order_id=np.array(coids, COID_DTYPE),
        signal_id=np.fromiter((o.signal_id for o in done), np.int64, n),
        client=np.fromiter((o.client for o in done), np.int32, n),
        venue=np.full(n, int(Venue.ETRADE), np.uint8),
        instrument=np.fromiter((o.instrument for o in done), np.uint32, n),
        side=np.fromiter((int(o.side) for o in done), np.int8, n),
        state=np.fromiter((int(o.state) for o in done), np.int8, n),
        reason=np.fromiter((int(o.reason) for o in done), np.int8, n),
        fill_qty=np.fromiter((o.filled_qty for o in done), np.float64, n),
        fill_price=np.fromiter((o.fill_price for o in done), np.float64, n),
        fee=np.fromiter((o.fee for o in done), np.float64, n),
        ts_event=np.fromiter((o.ts_event for o in done), np.int64, n),
        ts_recv=np.fromiter((o.ts_recv for o in done), np.int64, n),
        ts_sent=np.fromiter((o.ts_sent for o in done), np.int64, n),
        ts_ack=np.fromiter((o.ts_ack for o in done), np.int64, n),
    )
