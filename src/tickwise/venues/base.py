"""The venue interface every adapter implements (Alpaca, Binance, E*Trade, the simulator).

Batch-first and async where a real adapter waits on the network: the router hands a whole
`OrderBatch` to `submit`, then collects outcomes with `poll`, which never blocks. Everything a
venue answers is normalised to `model.orders` states and reject reasons; the venue's own error
code and text survive in `VenueError` and in `OrderStatus.venue_message` for the journal.

Errors:

    VenueError(venue, code, message)   one normalised type for anything a venue refuses or
                                       fails at; `retryable` says whether resending may help
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from tickwise.model.ids import ClientOrderId
from tickwise.model.instruments import Venue
from tickwise.model.orders import ExecutionBatch, OrderBatch, OrderState, RejectReason, Side
from tickwise.model.positions import PositionBook


class VenueError(Exception):
    """A venue refused a request or failed to answer; keeps the venue's own code and text.

    `code` is whatever the venue uses (Alpaca 40010001, Binance -2010, E*Trade 101, HTTP 429).
    `retryable` is True when the outcome is unknown or transient (timeouts, 5xx, rate limits):
    the caller must then resolve the order by client order id before sending it again.
    """

    def __init__(
        self, venue: Venue, code: int | str, message: str, *, retryable: bool = False
    ) -> None:
        super().__init__(f"{venue.label} error {code}: {message}")
        self.venue = venue
        self.code = code
        self.message = message
        self.retryable = retryable

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only fields are lost by the default pickling; errors cross process boundaries.
        return (_rebuild_venue_error, (self.venue, self.code, self.message, self.retryable))


def _rebuild_venue_error(
    venue: Venue, code: int | str, message: str, retryable: bool
) -> VenueError:
    return VenueError(venue, code, message, retryable=retryable)


class HttpVenueError(VenueError):
    """A `VenueError` answered over HTTP: the status, and the venue's own `kind` of error (an
    enum of its errors module) saying what the adapter should do next.

    Subclasses fix the venue in a constructor taking `(code, message, *, http_status, kind,
    retryable)`, which is also how an error is rebuilt after crossing a process boundary."""

    def __init__(
        self,
        venue: Venue,
        code: int | str,
        message: str,
        *,
        http_status: int,
        kind: IntEnum,
        retryable: bool,
    ) -> None:
        super().__init__(venue, code, message, retryable=retryable)
        self.http_status = http_status
        self.kind = kind

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_http_venue_error,
            (type(self), self.code, self.message, self.http_status, self.kind, self.retryable),
        )


def _rebuild_http_venue_error(
    cls: Any, code: int | str, message: str, http_status: int, kind: IntEnum, retryable: bool
) -> HttpVenueError:
    error: HttpVenueError = cls(
        code, message, http_status=http_status, kind=kind, retryable=retryable
    )
    return error


@dataclass(frozen=True, slots=True)
class OrderStatus:
    """What a venue says about one order, looked up by client order id (reconciliation)."""

    client_order_id: ClientOrderId
    venue: Venue
    client: int
    instrument: int
    side: Side
    qty: float
    state: OrderState
    reason: RejectReason
    filled_qty: float
    avg_fill_price: float
    fee: float
    venue_message: str = ""

    @property
    def open(self) -> bool:
        return not self.state.terminal


@dataclass(frozen=True, slots=True)
class Balances:
    """Cash per account holder at one venue, in USD, as columns sorted by client id."""

    client: npt.NDArray[np.int32]
    cash: npt.NDArray[np.float64]

    def of(self, client: int) -> float:
        row = int(np.searchsorted(self.client, client))
        if row >= self.client.size or self.client[row] != client:
            raise KeyError(f"client {client} has no account here")
        return float(self.cash[row])


@runtime_checkable
class VenueClient(Protocol):
    """One venue, for a range of client accounts.

    Contracts:
    - `submit` accepts a batch for sending and returns once the venue has it (or raises
      `VenueError` for the whole batch when it could not be handed over). Per-order refusals are
      not exceptions: they arrive from `poll` as REJECTED rows with a `RejectReason`. Submitting
      a client order id again is safe: the venue applies its own duplicate rule and the repeat
      comes back REJECTED with `DUPLICATE_CLIENT_ORDER_ID`, never as a second trade.
    - `poll(now_ns)` returns every outcome that became known at or before `now_ns`, each exactly
      once (FILLED with fill qty, price and fee, or REJECTED with a reason), stamped
      `ts_ack = now_ns`. It never blocks and never raises for a single order's outcome.
    - `cancel` asks the venue to cancel an open order; idempotent, and a no-op for an order that
      already reached a terminal state. Raises `VenueError` for an id the venue never saw.
    - `query` answers the current status of an order by client order id, or None if the venue
      never saw it (the order is then safe to send). Read-only; asks the venue (network).
    - `open_orders`, `positions`, `balances` are read-only snapshots of the venue's own books
      (asked over the network by a real adapter), which reconciliation compares with the
      ledger. `pending` counts orders sent but not yet answered by `poll`; `working` lists them
      as (client order id, client, instrument), for a kill switch that cancels open orders.
    """

    venue: Venue

    async def submit(self, orders: OrderBatch) -> None: ...

    def poll(self, now_ns: int) -> ExecutionBatch: ...

    async def cancel(self, client_order_id: ClientOrderId) -> None: ...

    async def query(self, client_order_id: ClientOrderId) -> OrderStatus | None: ...

    async def open_orders(self, client: int) -> list[OrderStatus]: ...

    async def positions(self) -> PositionBook: ...

    async def balances(self) -> Balances: ...

    def working(self) -> list[tuple[str, int, int]]: ...

    def pending(self) -> int: ...
