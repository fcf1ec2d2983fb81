"""Settling orders the journal holds but no venue answer recorded, by client order id.

An order is journaled before it is sent, so after any failure — a venue router killed with
orders in its mailbox, a ledger killed before it recorded the fills it had applied, the whole
process killed between the journal's commit and the send — the journal knows of orders whose
outcome the store does not. Each is settled by asking the venue about its client order id:

    the venue knows it      -> adopt the venue's answer (filled, rejected, canceled, or still open)
    the venue never saw it  -> resend it if its signal is still fresh (same client order id, so
                               a copy already on its way can never trade twice); otherwise mark it
                               EXPIRED: it was never sent and never will be

The adopted answers travel the same way as live ones (ledger, store, allocators), whose handlers
are idempotent by client order id, so settling an order twice is harmless. The same routine runs
at start (orders of earlier runs), when Ray restarts a router (its lane's orders of this run) and
at the end of every drain (whatever a failure left unanswered).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tickwise.model.ids import ClientOrderId
from tickwise.model.orders import ExecutionBatch, OrderBatch, OrderState
from tickwise.venues.base import OrderStatus, VenueClient, VenueError

# Venue look-ups in flight at once per router: enough to settle thousands of orders in seconds
# over HTTP, few enough to stay inside every venue's request-rate limits.
QUERY_CONCURRENCY = 16
OUTCOMES = ("adopted", "resent", "expired", "unresolved")


@dataclass(frozen=True, slots=True)
class Resolution:
    """What the venue said about each order asked after.

    `adopted`: one execution row per order the venue knows (its current state and fill);
    `resend`: orders the venue never saw whose signal is still fresh;
    `expired`: EXPIRED rows for orders the venue never saw whose signal is stale;
    `unresolved`: orders the venue could not be asked about (an error): left for the next pass.
    """

    adopted: ExecutionBatch
    resend: OrderBatch
    expired: ExecutionBatch
    unresolved: OrderBatch

    def counts(self) -> dict[str, int]:
        """How many orders had each outcome, keyed by `OUTCOMES`."""
        sizes = (len(self.adopted), len(self.resend), len(self.expired), len(self.unresolved))
        return dict(zip(OUTCOMES, sizes, strict=True))


def adopt(orders: OrderBatch, statuses: Sequence[OrderStatus], now_ns: int) -> ExecutionBatch:
    """Execution rows from the venue's statuses of `orders` (same order, one each).

    A terminal answer is adopted as it is (a fill with its quantity, average price and fee). An
    open order (working, or partially filled) is adopted as ACKED without a fill: the ledger
    takes one fill per order, the whole one, which a later pass adopts once the order is done.
    """
    state = np.array([s.state if s.state.terminal else OrderState.ACKED for s in statuses], np.int8)
    filled = state == OrderState.FILLED
    return ExecutionBatch.answering(
        orders,
        state,
        reason=[int(s.reason) for s in statuses],
        fill_qty=np.where(filled, [s.filled_qty for s in statuses], 0.0),
        fill_price=np.where(filled, [s.avg_fill_price for s in statuses], 0.0),
        fee=np.where(filled, [s.fee for s in statuses], 0.0),
        ts_ack=now_ns,
    )


def expire(orders: OrderBatch, now_ns: int) -> ExecutionBatch:
    """EXPIRED rows for orders that were never sent and will not be (stale signal)."""
    return ExecutionBatch.answering(orders, OrderState.EXPIRED, ts_ack=now_ns)


async def resolve_orders(
    venue: VenueClient,
    orders: OrderBatch,
    fresh_after_ns: int,
    now_ns: int,
    concurrency: int = QUERY_CONCURRENCY,
) -> Resolution:
    """Ask `venue` about every order by client order id and decide each one's fate.

    An order the venue never saw is resent when its market event is at or after
    `fresh_after_ns`, else expired. A look-up that fails (a venue error, a lost connection)
    leaves the order unresolved for the next pass; it is never guessed.
    """
    gate = asyncio.Semaphore(max(1, concurrency))

    async def ask(coid: bytes) -> OrderStatus | VenueError | None:
        async with gate:
            try:
                return await venue.query(ClientOrderId(coid.decode("ascii")))
            except VenueError as exc:
                return exc
            except Exception as exc:  # a lost connection, a timeout: ask again next pass
                return VenueError(venue.venue, -1, f"{type(exc).__name__}: {exc}")

    answers: list[OrderStatus | VenueError | None]
    locate = getattr(venue, "locate", None)
    if locate is not None:
        # A venue with no look-up by client order id (E*Trade) finds the orders from their
        # journaled details (symbol, side, quantity, time).
        try:
            answers = list(await locate(orders))
        except Exception as exc:
            failure = exc if isinstance(exc, VenueError) else VenueError(venue.venue, -1, str(exc))
            answers = [failure] * len(orders)
    else:
        answers = list(await asyncio.gather(*(ask(bytes(c)) for c in orders.client_order_id)))
    known = np.array([isinstance(a, OrderStatus) for a in answers], np.bool_)
    failed = np.array([isinstance(a, VenueError) for a in answers], np.bool_)
    unseen = ~known & ~failed
    fresh = orders.ts_event >= fresh_after_ns
    statuses = [a for a in answers if isinstance(a, OrderStatus)]
    return Resolution(
        adopted=adopt(orders.take(np.flatnonzero(known)), statuses, now_ns),
        resend=orders.take(np.flatnonzero(unseen & fresh)),
        expired=expire(orders.take(np.flatnonzero(unseen & ~fresh)), now_ns),
        unresolved=orders.take(np.flatnonzero(failed)),
    )
