"""Orders: the state machine, reject reasons, and columnar order and execution batches.

Every order moves through an explicit transition table driven by events; an illegal transition
raises `IllegalTransitionError`. The table is also a numpy array so that whole batches of orders can
be advanced at once (`advance`), with the same rules.

    CREATED --journal--> JOURNALED --send--> SENT --ack--> ACKED --fill--> FILLED
                                              |  \\                \\--partial--> PARTIALLY_FILLED
                                              |   \\--lose--> UNKNOWN (resolved by client order id)
                                              \\--reject--> REJECTED        ... cancel / expire
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from tickwise.model.ids import COID_LEN


class OrderState(IntEnum):
    CREATED = 0
    JOURNALED = 1
    SENT = 2
    ACKED = 3
    PARTIALLY_FILLED = 4
    FILLED = 5
    REJECTED = 6
    CANCELED = 7
    EXPIRED = 8
    UNKNOWN = 9

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


class OrderEvent(IntEnum):
    JOURNAL = 0
    SEND = 1
    ACK = 2
    PARTIAL_FILL = 3
    FILL = 4
    REJECT = 5
    CANCEL = 6
    EXPIRE = 7
    LOSE = 8  # the send's outcome is unknown (timeout, 5xx, lost connection)
    NOT_FOUND = 9  # reconciliation: the venue never saw it


TERMINAL_STATES = frozenset(
    {OrderState.FILLED, OrderState.REJECTED, OrderState.CANCELED, OrderState.EXPIRED}
)

_S, _E = OrderState, OrderEvent
TRANSITIONS: dict[tuple[OrderState, OrderEvent], OrderState] = {
    (_S.CREATED, _E.JOURNAL): _S.JOURNALED,
    (_S.CREATED, _E.REJECT): _S.REJECTED,
    (_S.JOURNALED, _E.SEND): _S.SENT,
    (_S.JOURNALED, _E.REJECT): _S.REJECTED,
    (_S.SENT, _E.ACK): _S.ACKED,
    (_S.SENT, _E.PARTIAL_FILL): _S.PARTIALLY_FILLED,
    (_S.SENT, _E.FILL): _S.FILLED,
    (_S.SENT, _E.REJECT): _S.REJECTED,
    (_S.SENT, _E.LOSE): _S.UNKNOWN,
    (_S.ACKED, _E.PARTIAL_FILL): _S.PARTIALLY_FILLED,
    (_S.ACKED, _E.FILL): _S.FILLED,
    (_S.ACKED, _E.REJECT): _S.REJECTED,
    (_S.ACKED, _E.CANCEL): _S.CANCELED,
    (_S.ACKED, _E.EXPIRE): _S.EXPIRED,
    (_S.PARTIALLY_FILLED, _E.PARTIAL_FILL): _S.PARTIALLY_FILLED,
    (_S.PARTIALLY_FILLED, _E.FILL): _S.FILLED,
    (_S.PARTIALLY_FILLED, _E.CANCEL): _S.CANCELED,
    (_S.PARTIALLY_FILLED, _E.EXPIRE): _S.EXPIRED,
    (_S.UNKNOWN, _E.ACK): _S.ACKED,
    (_S.UNKNOWN, _E.PARTIAL_FILL): _S.PARTIALLY_FILLED,
    (_S.UNKNOWN, _E.FILL): _S.FILLED,
    (_S.UNKNOWN, _E.REJECT): _S.REJECTED,
    (_S.UNKNOWN, _E.CANCEL): _S.CANCELED,
    (_S.UNKNOWN, _E.EXPIRE): _S.EXPIRED,
    (_S.UNKNOWN, _E.NOT_FOUND): _S.REJECTED,
}

# The same table as an array: TRANSITION_TABLE[state, event] -> new state, or -1 if illegal.
TRANSITION_TABLE: npt.NDArray[np.int8] = np.full((len(OrderState), len(OrderEvent)), -1, np.int8)
for (_state, _event), _target in TRANSITIONS.items():
    TRANSITION_TABLE[_state, _event] = _target


class IllegalTransitionError(ValueError):
    """An event that the order's current state does not allow."""


def transition(state: OrderState, event: OrderEvent) -> OrderState:
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransitionError(
            f"order in state {state.name} cannot take event {event.name}"
        ) from None


def advance(states: npt.NDArray[np.int8], event: OrderEvent) -> npt.NDArray[np.int8]:
    """Apply one event to a batch of order states; raises if any order can't take it."""
    new = TRANSITION_TABLE[states.astype(np.intp), int(event)]
    bad = np.flatnonzero(new < 0)
    if bad.size:
        first = OrderState(int(states[bad[0]]))
        raise IllegalTransitionError(
            f"{bad.size} order(s) cannot take event {event.name} (first in state {first.name})"
        )
    return new


class RejectReason(IntEnum):
    """Why an order did not trade. Venue reasons keep the venue's wording in the journal.

    Codes are stored (journal, executions): append new reasons, never renumber."""

    NONE = 0
    INSUFFICIENT_BUYING_POWER = 1
    INSUFFICIENT_POSITION = 2
    INVALID_QUANTITY_INCREMENT = 3
    BELOW_MIN_NOTIONAL = 4
    UNKNOWN_SYMBOL = 5
    DUPLICATE_CLIENT_ORDER_ID = 6
    RISK_MAX_ORDER_NOTIONAL = 7
    RISK_MAX_POSITION = 8
    RISK_BUYING_POWER = 9
    VENUE_ERROR = 10
    RISK_PRICE_BAND = 11  # the signal's price is outside the instrument's band (fat finger)
    RISK_STALE_DATA = 12  # the signal's market data is older than the allowed age
    RISK_MAX_DAILY_LOSS = 13  # a buy for a client past its daily loss limit
    RISK_HALTED = 14  # kill switch: the desk, the client or the portfolio is halted
    RISK_THROTTLED = 15  # over the desk's order rate to the venue


class Side(IntEnum):
    BUY = 1
    SELL = -1


COID_DTYPE = np.dtype(f"S{COID_LEN}")


@dataclass(slots=True)
class OrderBatch:
    """Market orders, one row per (client, instrument), with every stage's timestamp (ns)."""

    client_order_id: npt.NDArray[np.bytes_]
    signal_id: npt.NDArray[np.int64]
    client: npt.NDArray[np.int32]
    venue: npt.NDArray[np.uint8]
    instrument: npt.NDArray[np.uint32]
    side: npt.NDArray[np.int8]
    qty: npt.NDArray[np.float64]
    price: npt.NDArray[np.float64]
    ts_event: npt.NDArray[np.int64]
    ts_recv: npt.NDArray[np.int64]
    ts_signal: npt.NDArray[np.int64]
    ts_alloc: npt.NDArray[np.int64]
    ts_journal: npt.NDArray[np.int64]
    ts_sent: npt.NDArray[np.int64]

    @classmethod
    def empty(cls) -> OrderBatch:
        return cls(
            client_order_id=np.empty(0, COID_DTYPE),
            signal_id=np.empty(0, np.int64),
            client=np.empty(0, np.int32),
            venue=np.empty(0, np.uint8),
            instrument=np.empty(0, np.uint32),
            side=np.empty(0, np.int8),
            qty=np.empty(0, np.float64),
            price=np.empty(0, np.float64),
            ts_event=np.empty(0, np.int64),
            ts_recv=np.empty(0, np.int64),
            ts_signal=np.empty(0, np.int64),
            ts_alloc=np.empty(0, np.int64),
            ts_journal=np.empty(0, np.int64),
            ts_sent=np.empty(0, np.int64),
        )

    def __len__(self) -> int:
        return len(self.client_order_id)

    def take(self, index: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> OrderBatch:
        return OrderBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @classmethod
    def concat(cls, batches: Sequence[OrderBatch]) -> OrderBatch:
        if not batches:
            return cls.empty()
        return cls(
            **{f.name: np.concatenate([getattr(b, f.name) for b in batches]) for f in fields(cls)}
        )

    @property
    def signed_qty(self) -> npt.NDArray[np.float64]:
        return self.qty * self.side

    @property
    def notional(self) -> npt.NDArray[np.float64]:
        return self.qty * self.price


@dataclass(slots=True)
class ExecutionBatch:
    """What venues answered for a batch of orders: one row per order outcome.

    `state` is the order's new normalised state (ACKED, FILLED, REJECTED, ...). For fills,
    `fill_qty`/`fill_price`/`fee` describe the execution; for rejects, `reason` says why.
    """

    client_order_id: npt.NDArray[np.bytes_]
    signal_id: npt.NDArray[np.int64]
    client: npt.NDArray[np.int32]
    venue: npt.NDArray[np.uint8]
    instrument: npt.NDArray[np.uint32]
    side: npt.NDArray[np.int8]
    state: npt.NDArray[np.int8]
    reason: npt.NDArray[np.int8]
    fill_qty: npt.NDArray[np.float64]
    fill_price: npt.NDArray[np.float64]
    fee: npt.NDArray[np.float64]
    ts_event: npt.NDArray[np.int64]
    ts_recv: npt.NDArray[np.int64]
    ts_sent: npt.NDArray[np.int64]
    ts_ack: npt.NDArray[np.int64]

    @classmethod
    def empty(cls) -> ExecutionBatch:
        return cls(
            client_order_id=np.empty(0, COID_DTYPE),
            signal_id=np.empty(0, np.int64),
            client=np.empty(0, np.int32),
            venue=np.empty(0, np.uint8),
            instrument=np.empty(0, np.uint32),
            side=np.empty(0, np.int8),
            state=np.empty(0, np.int8),
            reason=np.empty(0, np.int8),
            fill_qty=np.empty(0, np.float64),
            fill_price=np.empty(0, np.float64),
            fee=np.empty(0, np.float64),
            ts_event=np.empty(0, np.int64),
            ts_recv=np.empty(0, np.int64),
            ts_sent=np.empty(0, np.int64),
            ts_ack=np.empty(0, np.int64),
        )

    @classmethod
    def answering(
        cls,
        orders: OrderBatch,
        state: npt.ArrayLike,
        *,
        reason: npt.ArrayLike = 0,
        fill_qty: npt.ArrayLike = 0.0,
        fill_price: npt.ArrayLike = 0.0,
        fee: npt.ArrayLike = 0.0,
        ts_sent: npt.ArrayLike | None = None,
        ts_ack: npt.ArrayLike = 0,
    ) -> ExecutionBatch:
        """One answer per order of `orders`, each column given for all (a scalar) or per row."""
        n = len(orders)

        def column(value: npt.ArrayLike, dtype: type[np.generic]) -> npt.NDArray[Any]:
            return np.broadcast_to(np.asarray(value, dtype), n).copy()

        return cls(
            client_order_id=orders.client_order_id.copy(),
            signal_id=orders.signal_id.copy(),
            client=orders.client.copy(),
            venue=orders.venue.copy(),
            instrument=orders.instrument.copy(),
            side=orders.side.copy(),
            state=column(state, np.int8),
            reason=column(reason, np.int8),
            fill_qty=column(fill_qty, np.float64),
            fill_price=column(fill_price, np.float64),
            fee=column(fee, np.float64),
            ts_event=orders.ts_event.copy(),
            ts_recv=orders.ts_recv.copy(),
            ts_sent=orders.ts_sent.copy() if ts_sent is None else column(ts_sent, np.int64),
            ts_ack=column(ts_ack, np.int64),
        )

    def __len__(self) -> int:
        return len(self.client_order_id)

    def take(self, index: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> ExecutionBatch:
        return ExecutionBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @classmethod
    def concat(cls, batches: Sequence[ExecutionBatch]) -> ExecutionBatch:
        if not batches:
            return cls.empty()
        return cls(
            **{f.name: np.concatenate([getattr(b, f.name) for b in batches]) for f in fields(cls)}
        )

    @property
    def fills(self) -> npt.NDArray[np.bool_]:
        return self.fill_qty > 0.0
