"""How each Alpaca order's outcome is established, exactly once (venues.md §1.2, §1.5).

`OrderFlow` POSTs queued orders (a pool of `run_sender` tasks) and reads what comes back:

    200 order             its status: terminal -> outcome; working -> wait for the stream
    403/422 refusal       REJECTED with the reason read from Alpaca's message
    401 / bare 403        REJECTED (the keys are refused), counted in `auth_errors`
    422 duplicate id      look the order up by client order id and adopt it; never resend
    5xx, no answer,       the outcome is unknown: look the order up by client order id; adopt
    unreadable answer     it if it landed, else send it again with the same id (at most
                          `max_attempts` POSTs in all)

Stream events (`on_event`) end orders as they come; orders with no terminal event within the
outcome timeout, and unresolved ones, are looked up by `run_sweeper`. Whatever tells first wins
(`tracking.OrderTracker.finish`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Coroutine, Mapping, MutableMapping
from typing import Any

from tickwise.model.orders import OrderState, RejectReason
from tickwise.venues.alpaca.errors import AlpacaError, AlpacaErrorKind, error_from_response
from tickwise.venues.alpaca.orders import (
    TERMINAL_EVENTS,
    AlpacaOrder,
    MalformedOrderError,
    parse_order,
)
from tickwise.venues.alpaca.rest import AlpacaRequests
from tickwise.venues.alpaca.tracking import OrderTracker, Phase, TrackedOrder
from tickwise.venues.http import TransportError

log = logging.getLogger(__name__)

SWEEP_S = 0.1  # how often due lookups are started
_LOOKUP_FAILURES = (TransportError, AlpacaError, MalformedOrderError, ValueError)


class OrderFlow:
    """Sends orders and settles each one's outcome in the tracker (see the module doc)."""

    def __init__(
        self,
        requests: AlpacaRequests,
        tracker: OrderTracker,
        stats: MutableMapping[str, int],
        *,
        max_attempts: int,
        timeout_s: float,
    ) -> None:
        self._requests = requests
        self._tracker = tracker
        self.stats = stats
        self._max_attempts = max_attempts
        self._timeout_s = timeout_s
        self.queue: asyncio.Queue[TrackedOrder] = asyncio.Queue()

    async def run_sender(self) -> None:
        """One sending task: take queued orders and see each POST through."""
        while True:
            order = await self.queue.get()
            order.checking = True  # no sweeper lookup while this task has the order
            try:
                await self._send(order)
            except Exception:
                log.exception("Alpaca: sending %s failed; it will be looked up", order.coid)
                self._unresolved(order)
            finally:
                order.checking = False

    async def _send(self, order: TrackedOrder) -> None:
        if order.phase is Phase.DONE:
            return
        order.phase = Phase.SENDING
        order.check_at = math.inf  # rescheduled by what the answer says
        order.attempts += 1
        order.last_sent = time.monotonic()
        try:
            resp = await self._requests.call(
                order.route, "POST", order.route.paths.orders(), order.body
            )
        except TransportError:
            self.stats["unknown_outcomes"] += 1
            await self._resolve(order)
            return
        except AlpacaError:  # still rate limited after every retry: it did not land
            self._tracker.finish(order, OrderState.REJECTED, RejectReason.VENUE_ERROR)
            return
        if order.phase is Phase.DONE:
            return  # the stream told first
        if resp.status == 200:
            try:
                found = parse_order(resp.json())
            except (ValueError, MalformedOrderError):
                self.stats["malformed"] += 1
                await self._resolve(order)
                return
            self._apply(order, found)
            return
        refusal = error_from_response(resp.status, resp.body)
        if refusal.kind is AlpacaErrorKind.SERVER:
            self.stats["unknown_outcomes"] += 1
            await self._resolve(order)
        elif refusal.kind is AlpacaErrorKind.ALREADY_EXISTS:
            self.stats["duplicates"] += 1
            await self._resolve(order, may_resend=False)
        else:
            if refusal.kind is AlpacaErrorKind.UNAUTHORIZED:
                self.stats["auth_errors"] += 1
                log.error("Alpaca refused the keys for client %d: %s", order.client, refusal)
            self.stats["rejected"] += 1
            reason = refusal.reject_reason or RejectReason.VENUE_ERROR
            self._tracker.finish(order, OrderState.REJECTED, reason)

    async def _resolve(self, order: TrackedOrder, *, may_resend: bool = True) -> None:
        """The last POST's outcome is unknown: adopt the order if it landed, else send it
        again with the same client order id."""
        if order.phase is Phase.DONE:
            return  # the stream told while the POST was out
        order.phase = Phase.RESOLVING
        try:
            found = await self._requests.find_order(order.route, order.coid)
        except _LOOKUP_FAILURES:
            self.stats["query_failures"] += 1
            self._unresolved(order)
            return
        if order.phase is Phase.DONE:
            return
        if found is not None:
            self.stats["unknown_resolved"] += 1
            self._apply(order, found)
        elif not may_resend:
            self._unresolved(order)  # "already used" yet not found: ask again later
        elif order.attempts < self._max_attempts:
            self.stats["resent"] += 1
            self.stats["retries"] += 1
            order.phase = Phase.QUEUED
            self.queue.put_nowait(order)
        elif time.monotonic() - order.last_sent < self._timeout_s:
            order.check_at = order.last_sent + self._timeout_s  # a late POST may still land
        else:
            log.warning("Alpaca: %s not accepted after %d sends", order.coid, order.attempts)
            self._tracker.finish(order, OrderState.REJECTED, RejectReason.VENUE_ERROR)

    def _unresolved(self, order: TrackedOrder) -> None:
        if order.phase is Phase.DONE:
            return
        order.phase = Phase.RESOLVING
        self._tracker.schedule_check(order)

    def _apply(self, order: TrackedOrder, found: AlpacaOrder) -> None:
        """What the venue says about an order of ours (a POST answer or a lookup)."""
        if order.phase is Phase.DONE:
            return
        order.venue_order_id = found.order_id
        if not found.state.terminal:
            order.phase = Phase.WORKING
            self._tracker.schedule_check(order)
            return
        rejected = found.state is OrderState.REJECTED
        reason = RejectReason.VENUE_ERROR if rejected else RejectReason.NONE
        fill = (found.filled_qty, found.filled_avg_price, found.fee)
        self._tracker.finish(order, found.state, reason, *fill)

    def on_event(self, client: int, data: Mapping[str, Any]) -> None:
        """One order event from a stream."""
        self.stats["events"] += 1
        try:
            found = parse_order(data.get("order"))
        except MalformedOrderError:
            self.stats["malformed_events"] += 1
            return
        order = self._tracker.get(client, found.client_order_id)
        if order is None:
            self.stats["events_unmatched"] += 1
            return
        order.venue_order_id = found.order_id
        state = TERMINAL_EVENTS.get(str(data.get("event")))
        if state is None:
            return  # new, accepted, partial_fill ...: still working
        reason = RejectReason.VENUE_ERROR if state is OrderState.REJECTED else RejectReason.NONE
        fill = (found.filled_qty, found.filled_avg_price, found.fee)
        self._tracker.finish(order, state, reason, *fill)

    async def run_sweeper(self, spawn: Callable[[Coroutine[Any, Any, None]], None]) -> None:
        """Start the lookups that are due (overdue outcomes, unknown POST outcomes) as tasks
        made by `spawn`."""
        while True:
            await asyncio.sleep(SWEEP_S)
            for order in self._tracker.due(time.monotonic()):
                order.checking = True
                spawn(self._check(order))

    async def _check(self, order: TrackedOrder) -> None:
        try:
            if order.phase is Phase.RESOLVING:
                await self._resolve(order)
                return
            try:
                found = await self._requests.find_order(order.route, order.coid)
            except _LOOKUP_FAILURES:
                self.stats["query_failures"] += 1
                self._tracker.schedule_check(order)
                return
            if order.phase is Phase.DONE:
                return
            if found is None:
                self._unresolved(order)  # acknowledged, yet unknown now: keep asking
                return
            if found.state.terminal:
                self.stats["outcomes_by_query"] += 1
            self._apply(order, found)
        finally:
            order.checking = False
