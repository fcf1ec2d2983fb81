"""The orders one Binance adapter has in flight, from hand-over to outcome.

`OrderFlow.drive` sends one MARKET order (`newOrderRespType=FULL`) and settles it from the
answer: FILLED with the average price and commission in USD, EXPIRED, or a refusal with its
normalised reason. An answer that leaves the outcome unknown (no answer, 5xx, -1007, malformed)
is resolved by client order id before anything is sent again (`_resolve`). Executions from the
user data stream settle the same orders (`apply`), whichever comes first; each order's outcome
is recorded exactly once (`finish`), to be collected by `take`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tickwise.model.orders import OrderState, RejectReason, Side
from tickwise.venues.binance.errors import BinanceError
from tickwise.venues.binance.reports import (
    ExecutionEvent,
    OrderReport,
    read_order,
    read_trades_fee,
)
from tickwise.venues.binance.rest import BinanceRest
from tickwise.venues.binance.wire import SIDES
from tickwise.venues.http import TransportError

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[object]]

RESOLVE_MARGIN_MS = 1_000  # clock error allowed past a request's receive window
MAX_SENDS = 4  # sends of one order whose earlier sends provably did not land
WORKING_POLL_S = (0.05, 2.0)  # first and longest pause between queries of a working order
RECENT_IDS = 1_000_000  # client order ids remembered to refuse a repeat locally
AUTH_CODES = frozenset({-1022, -2014, -2015})


@dataclass(slots=True, eq=False)
class LiveOrder:
    """One order from `submit` until its outcome is known."""

    coid: str
    signal_id: int
    client: int
    instrument: int
    side: Side
    qty: float
    price: float
    ts_event: int
    ts_recv: int
    ts_sent: int
    symbol: str = ""
    base: str = ""
    qty_text: str = ""
    done: bool = False
    stream_fee: float | None = 0.0  # commissions the user data stream reported, USD


@dataclass(frozen=True, slots=True)
class Outcome:
    """One order's terminal outcome, as `poll` reports it; `message` is the venue's words."""

    order: LiveOrder
    state: OrderState
    reason: RejectReason
    fill_qty: float
    fill_price: float
    fee: float
    ts_ack: int
    message: str = ""


class RecentIds:
    """The last `capacity` client order ids sent, for refusing a repeat before it trades."""

    def __init__(self, capacity: int) -> None:
        self._order: deque[str] = deque()
        self._ids: set[str] = set()
        self._capacity = capacity

    def __contains__(self, coid: object) -> bool:
        return coid in self._ids

    def add(self, coid: str) -> None:
        self._ids.add(coid)
        self._order.append(coid)
        if len(self._order) > self._capacity:
            self._ids.discard(self._order.popleft())


class OrderFlow:
    """Sending, resolving and settling the orders of one adapter (see module doc)."""

    def __init__(
        self,
        rest: BinanceRest,
        stats: Counter[str],
        *,
        sleep: Sleep,
        recv_window_ms: int,
        max_in_flight: int,
    ) -> None:
        self._rest = rest
        self.stats = stats
        self._sleep = sleep
        self._recv_window_ms = recv_window_ms
        self._slots = asyncio.Semaphore(max_in_flight)
        self.live: dict[str, LiveOrder] = {}
        self.outcomes: list[Outcome] = []
        self.recent = RecentIds(RECENT_IDS)

    def seen(self, coid: str) -> bool:
        """Whether this id is in flight or was sent recently (a repeat must not be sent)."""
        return coid in self.live or coid in self.recent

    def track(self, order: LiveOrder) -> Awaitable[None]:
        """Take an order that passed the local checks; returns its sending coroutine."""
        self.live[order.coid] = order
        self.recent.add(order.coid)
        return self.drive(order)

    def reject_locally(self, order: LiveOrder, reason: RejectReason, message: str) -> None:
        self.stats["rejected_locally"] += 1
        order.done = True
        self.outcomes.append(
            Outcome(order, OrderState.REJECTED, reason, 0.0, 0.0, 0.0, time.time_ns(), message)
        )

    def take(self, now_ns: int) -> list[Outcome]:
        """The outcomes learned at or before `now_ns`, removed from the flow."""
        due = [o for o in self.outcomes if o.ts_ack <= now_ns]
        if due:
            self.outcomes = [o for o in self.outcomes if o.ts_ack > now_ns]
        return due

    @staticmethod
    def _params(order: LiveOrder) -> dict[str, object]:
        return {
            "symbol": order.symbol,
            "side": SIDES[order.side],
            "type": "MARKET",
            "quantity": order.qty_text,
            "newClientOrderId": order.coid,
            "newOrderRespType": "FULL",
        }

    async def drive(self, order: LiveOrder) -> None:
        """Send one order until its outcome is known (see `_resolve` for unknown outcomes)."""
        async with self._slots:
            try:
                await self._send(order)
            except asyncio.CancelledError:
                raise
            except Exception:  # the order stays pending; reconciliation will find it
                self.stats["internal_errors"] += 1
                log.exception("Binance order %s: unexpected failure while sending", order.coid)

    async def _send(self, order: LiveOrder) -> None:
        for send in range(MAX_SENDS):
            if order.done:
                return
            if send:
                self.stats["resent"] += 1
            try:
                body = await self._rest.call(
                    "POST",
                    "/api/v3/order",
                    self._params(order),
                    client=order.client,
                    side=order.side,
                )
            except TransportError:
                if await self._resolve(order, self._rest.clock.now_ms()):
                    return
                continue
            except BinanceError as err:
                if not err.outcome_unknown:
                    self._refused(order, err)
                    return
                if await self._resolve(order, self._rest.clock.now_ms()):
                    return
                continue
            try:
                report = read_order(body, order.base)
            except ValueError:
                self.stats["malformed"] += 1
                if await self._resolve(order, self._rest.clock.now_ms()):
                    return
                continue
            await self._settle(order, report)
            return
        self.finish(
            order,
            OrderState.REJECTED,
            RejectReason.VENUE_ERROR,
            message=f"not accepted after {MAX_SENDS} sends",
        )

    async def _resolve(self, order: LiveOrder, failed_ms: int) -> bool:
        """Find out whether a send whose outcome is unknown landed: True when the order is
        settled (adopted from the venue's answer), False when it did not land and may be sent
        again with the same client order id.

        The query must come before any resend: a Binance client order id is unique only among
        *open* orders, so if the first send filled, a resend is a new order that trades again.
        A "not found" is final only once the lost request can no longer land: Binance checks
        `timestamp` + `recvWindow` again before the matching engine, and the request was
        signed before it failed, so after `failed_ms` + recvWindow it is refused for good.
        """
        self.stats["unknown_outcomes"] += 1
        deadline = failed_ms + self._recv_window_ms + RESOLVE_MARGIN_MS
        final = False
        attempt = 0
        while not order.done:
            try:
                body = await self.query(order.client, order.symbol, order.coid)
                report = read_order(body, order.base)
            except BinanceError as err:
                if err.code == -2013:
                    wait_ms = deadline - self._rest.clock.now_ms()
                    if final or wait_ms <= 0:
                        self.stats["unknown_resolved"] += 1
                        return False
                    await self._sleep(wait_ms / 1000)
                    final = True
                    continue
                if not err.retryable:
                    self.stats["unresolved"] += 1
                    log.error("Binance order %s: cannot resolve its outcome: %s", order.coid, err)
                    return True
                attempt += 1
                await self._pause(attempt)
                continue
            except TransportError:
                attempt += 1
                await self._pause(attempt)
                continue
            except ValueError:
                self.stats["malformed"] += 1
                attempt += 1
                await self._pause(attempt)
                continue
            self.stats["unknown_resolved"] += 1
            self.stats["adopted"] += 1
            await self._settle(order, report)
            return True
        return True

    async def _pause(self, attempt: int) -> None:
        first, longest = WORKING_POLL_S
        await self._sleep(min(longest, first * 2.0 ** min(attempt, 16)))

    async def query(self, client: int, symbol: str, coid: str) -> object:
        return await self._rest.call(
            "GET",
            "/api/v3/order",
            {"symbol": symbol, "origClientOrderId": coid},
            client=client,
            retry_unknown=True,
        )

    async def _settle(self, order: LiveOrder, report: OrderReport) -> None:
        """Finish a landed order from its report, asking again while it is still working."""
        attempt = 0
        while not order.done and not report.state.terminal:
            attempt += 1
            await self._pause(attempt)
            if order.done:  # the user data stream reported it meanwhile
                return
            try:
                report = read_order(
                    await self.query(order.client, order.symbol, order.coid), order.base
                )
            except BinanceError as err:
                if err.code == -2013:  # accepted, then gone: refused by the matching engine
                    self.finish(
                        order, OrderState.REJECTED, RejectReason.VENUE_ERROR, message=str(err)
                    )
                    return
                if not err.retryable:
                    self.stats["unresolved"] += 1
                    log.error("Binance order %s: cannot follow it: %s", order.coid, err)
                    return
            except TransportError:
                continue
            except ValueError:
                self.stats["malformed"] += 1
                continue
        if order.done:
            return
        fee = report.fee
        if report.filled_qty > 0 and fee is None:
            fee = await self.trades_fee(order.client, order.symbol, order.base, report.order_id)
        if fee is None:
            if report.filled_qty > 0:
                self.stats["fee_unknown"] += 1
            fee = 0.0
        rejected = report.state is OrderState.REJECTED
        reason = RejectReason.VENUE_ERROR if rejected else RejectReason.NONE
        self.finish(order, report.state, reason, report.filled_qty, report.avg_price, fee)

    async def trades_fee(self, client: int, symbol: str, base: str, order_id: int) -> float | None:
        """The commission of an order's trades, in USD (None when it cannot be had)."""
        try:
            body = await self._rest.call(
                "GET",
                "/api/v3/myTrades",
                {"symbol": symbol, "orderId": order_id},
                client=client,
                weight_key="GET /api/v3/myTrades?orderId",
                retry_unknown=True,
            )
            return read_trades_fee(body, base)
        except (BinanceError, TransportError, ValueError) as exc:
            log.warning("Binance order %s: commission unknown: %s", order_id, exc)
            return None

    def _refused(self, order: LiveOrder, err: BinanceError) -> None:
        if err.code in AUTH_CODES:
            self.stats["auth_errors"] += 1
        self.finish(
            order,
            OrderState.REJECTED,
            err.reason or RejectReason.VENUE_ERROR,
            message=f"{err.code} {err.message}",
        )

    def finish(
        self,
        order: LiveOrder,
        state: OrderState,
        reason: RejectReason = RejectReason.NONE,
        fill_qty: float = 0.0,
        fill_price: float = 0.0,
        fee: float = 0.0,
        message: str = "",
    ) -> None:
        if order.done:
            return
        order.done = True
        self.live.pop(order.coid, None)
        self.outcomes.append(
            Outcome(order, state, reason, fill_qty, fill_price, fee, time.time_ns(), message)
        )

    def apply(self, client: int, ev: ExecutionEvent) -> bool:
        """Settle a live order from an `executionReport`; False when it is not one of ours."""
        order = self.live.get(ev.client_order_id)
        if order is None or order.client != client:
            return False
        if ev.exec_type == "TRADE":
            total = (
                None if ev.fee is None or order.stream_fee is None else order.stream_fee + ev.fee
            )
            # Fees past any float are as unknown as fees in an asset without a price.
            order.stream_fee = total if total is not None and math.isfinite(total) else None
        if ev.state.terminal:
            fee = order.stream_fee
            if fee is None:
                self.stats["fee_unknown"] += 1
                fee = 0.0
            self.stats["stream_outcomes"] += 1
            self.finish(order, ev.state, ev.reason, ev.filled_qty, ev.avg_price, fee)
        return True
