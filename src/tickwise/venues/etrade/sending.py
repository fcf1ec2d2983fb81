"""How the E*Trade adapter sends orders, finds the ones whose place got no answer, and learns
their outcomes (the flow `client.EtradeVenue` drives; see its module docstring).

    wake_sender -> one task per account sends its queued orders in turn:
                   preview -> place -> adopt the orderId
                   no answer to a place -> find_lost: adopted | sent again | parked
                   duplicate clientOrderId -> find_lost: adopted | REJECTED duplicate
    refresh     -> list the orders of the accounts with orders working; look for parked ones
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from tickwise.model.orders import OrderState, RejectReason
from tickwise.venues.etrade import wire
from tickwise.venues.etrade.errors import EtradeError, EtradeErrorKind
from tickwise.venues.etrade.session import EtradeSession, Sleep
from tickwise.venues.etrade.tracking import (
    STATE_OF_STATUS,
    AccountOrders,
    Stage,
    TrackedOrder,
    find_lost_order,
    outcome_of,
)
from tickwise.venues.etrade.wire import EtradeFormatError, VenueOrder
from tickwise.venues.http import HttpResponse, TransportError
from tickwise.venues.ratelimit import Backoff

log = logging.getLogger(__name__)

LIST_PAGE = 100  # E*Trade's largest orders page
MAX_LIST_PAGES = 10
_T = TypeVar("_T")


class OrderFlow:
    """Sending, finding and polling for every account of one adapter."""

    def __init__(
        self,
        session: EtradeSession,
        accounts: Mapping[int, AccountOrders],
        stats: Counter[str],
        *,
        clock: Callable[[], float],
        sleep: Sleep,
        backoff: Backoff,
        max_attempts: int,
        poll_concurrency: int,
    ) -> None:
        self._session = session
        self.accounts = accounts
        self.stats = stats
        self._clock = clock
        self._sleep = sleep
        self._backoff = backoff
        self._max_attempts = max(1, max_attempts)
        self._poll_concurrency = poll_concurrency
        self.outcomes: list[TrackedOrder] = []
        self._cancels: set[asyncio.Task[None]] = set()

    def stop(self) -> list[asyncio.Task[None]]:
        """Cancel every task of the flow; returns them to be awaited."""
        tasks = [*self._cancels]
        tasks += [a.sender for a in self.accounts.values() if a.sender is not None]
        for task in tasks:
            task.cancel()
        return tasks

    # -- polling ---------------------------------------------------------------------------

    async def refresh(self) -> None:
        """One polling round: list the orders of the accounts with orders working (only
        those), and look again for the parked orders of accounts not sending right now."""
        working = [a for a in self.accounts.values() if a.working]
        parked = [a for a in self.accounts.values() if a.parked and a.sender is None]
        if not working and not parked:
            return
        self.stats["refreshes"] += 1
        slots = asyncio.Semaphore(self._poll_concurrency)

        async def refresh_one(account: AccountOrders) -> None:
            async with slots:
                try:
                    entries = await self._list_orders(account, account.oldest_working_ms(), False)
                except (TransportError, EtradeError) as exc:
                    self.stats["refresh_errors"] += 1
                    log.info(
                        "E*Trade: orders of client %d not read: %s", account.session.client, exc
                    )
                    return
                for entry in entries or ():
                    order = account.working.get(entry.order_id)
                    if order is not None:
                        self.apply(account, order, entry)

        async def sweep_one(account: AccountOrders) -> None:
            async with slots, account.lock:
                for order in list(account.parked):
                    await self.settle_parked(account, order)

        await asyncio.gather(*map(refresh_one, working), *map(sweep_one, parked))

    async def wait_sent(self) -> None:
        """Wait until no account has orders queued or being sent."""
        while senders := [a.sender for a in self.accounts.values() if a.sender is not None]:
            await asyncio.gather(*senders, return_exceptions=True)

    # -- sending ---------------------------------------------------------------------------

    def wake_sender(self, account: AccountOrders) -> None:
        if account.sender is None and account.queue:
            account.sender = asyncio.get_running_loop().create_task(self._drain(account))

    async def _drain(self, account: AccountOrders) -> None:
        try:
            while account.queue:
                order = account.queue.popleft()
                async with account.lock:
                    try:
                        await self._send(account, order)
                    except Exception as exc:  # one order's trouble must not stop the account
                        log.exception("E*Trade: sending %s failed", order.coid)
                        self._give_up(account, order, f"{type(exc).__name__}: {exc}")
        finally:
            account.sender = None

    async def _send(self, account: AccountOrders, order: TrackedOrder) -> None:
        """Preview and place one order until E*Trade has it, refuses it, or it is parked."""
        request = order.request
        assert request is not None
        order.stage = Stage.SENDING
        path = f"{account.session.path}/orders"
        for attempt in range(self._max_attempts):
            if attempt:
                self.stats["retries"] += 1
                await self._sleep(self._backoff.delay(attempt - 1))
            try:
                body = request.preview_body()
                answer = await self._post(account, f"{path}/preview.json", body)
                preview_id = wire.preview_id(wire.parse_json(answer.body))
            except (TransportError, EtradeFormatError) as exc:
                self._count_no_answer(exc)
                continue
            except EtradeError as error:
                if error.kind is EtradeErrorKind.ALREADY_EXISTS:
                    await self._settle_duplicate(account, order, error)
                    return
                if not (error.retryable or error.kind is EtradeErrorKind.STALE_PREVIEW):
                    self._refuse(order, error)
                    return
                continue
            if order.first_place_ms is None:
                order.first_place_ms = int(self._clock() * 1000)
            try:
                answer = await self._post(
                    account, f"{path}/place.json", request.place_body(preview_id)
                )
                order_id = wire.placed_order_id(wire.parse_json(answer.body))
            except (TransportError, EtradeFormatError) as exc:
                self._count_no_answer(exc)
                if await self._after_unknown_place(account, order):
                    return
                continue
            except EtradeError as error:
                if error.kind is EtradeErrorKind.SERVER:
                    if await self._after_unknown_place(account, order):
                        return
                elif error.kind is EtradeErrorKind.ALREADY_EXISTS:
                    await self._settle_duplicate(account, order, error)
                    return
                elif error.kind is EtradeErrorKind.STALE_PREVIEW:
                    self.stats["stale_previews"] += 1
                elif error.kind is not EtradeErrorKind.RATE_LIMITED:
                    self._refuse(order, error)
                    return
                continue
            account.adopt(order, order_id)
            self._after_adopt(account, order)
            return
        self._give_up(account, order, f"no usable answer in {self._max_attempts} attempts")

    async def _post(self, account: AccountOrders, path: str, body: bytes) -> HttpResponse:
        response = await self._session.call(account.session, "POST", path, body=body)
        assert response is not None  # a waiting call always answers or raises
        return response

    async def _after_unknown_place(self, account: AccountOrders, order: TrackedOrder) -> bool:
        """A place got no answer: look for the order. True when it is settled (adopted or
        parked); False when E*Trade does not have it, so it is to be sent again."""
        self.stats["unknown_outcomes"] += 1
        order.stage = Stage.UNKNOWN
        found = await self.find_lost(account, order)
        if found is None:
            self._park(account, order)
            return True
        if found:
            self.stats["unknown_resolved"] += 1
            return True
        self.stats["resent"] += 1
        order.stage = Stage.SENDING
        return False

    async def find_lost(self, account: AccountOrders, order: TrackedOrder) -> bool | None:
        """Look for `order` in the account's orders: True adopted, False not there, None when
        the list could not be read."""
        try:
            entries = await self._list_orders(account, order.earliest_ms, True)
        except (TransportError, EtradeError) as exc:
            log.info("E*Trade: could not list orders of client %d: %s", order.client, exc)
            return None
        if entries is None:
            return None
        entry = find_lost_order(entries, order, account.claimed)
        if entry is None:
            return False
        account.adopt(order, entry.order_id)
        self.apply(account, order, entry)
        self._after_adopt(account, order)
        return True

    async def _settle_duplicate(
        self, account: AccountOrders, order: TrackedOrder, error: EtradeError
    ) -> None:
        """E*Trade has an order with this clientOrderId: ours (adopt it) unless none is found."""
        self.stats["duplicate_ids"] += 1
        found = await self.find_lost(account, order)
        if found is None:
            self._park(account, order)
        elif not found:
            self._refuse(order, error)

    async def settle_parked(self, account: AccountOrders, order: TrackedOrder) -> None:
        if order not in account.parked:
            return
        found = await self.find_lost(account, order)
        if found is False:  # never landed: send it again, first in the account's line
            account.parked.remove(order)
            order.stage = Stage.QUEUED
            account.queue.appendleft(order)
            self.stats["resent"] += 1
            self.wake_sender(account)
        elif found:
            self.stats["unknown_resolved"] += 1

    def _park(self, account: AccountOrders, order: TrackedOrder) -> None:
        order.stage = Stage.UNKNOWN
        if order not in account.parked:
            account.parked.append(order)
            self.stats["parked"] += 1

    def _give_up(self, account: AccountOrders, order: TrackedOrder, why: str) -> None:
        """No answer after every attempt: park it if a place may have landed, else refuse."""
        if order.first_place_ms is not None:
            self._park(account, order)
        else:
            self.stats["gave_up"] += 1
            self.finish(
                order,
                OrderState.REJECTED,
                reason=RejectReason.VENUE_ERROR,
                message=f"not sent: {why}",
            )

    def _after_adopt(self, account: AccountOrders, order: TrackedOrder) -> None:
        if order.cancel_wanted and order.stage is Stage.WORKING:
            task = asyncio.get_running_loop().create_task(self._cancel_quietly(account, order))
            self._cancels.add(task)
            task.add_done_callback(self._cancels.discard)

    # -- outcomes --------------------------------------------------------------------------

    def apply(self, account: AccountOrders, order: TrackedOrder, entry: VenueOrder) -> None:
        """Take what an orders-list entry says about one of our working orders."""
        state = outcome_of(entry)
        if state is None:
            if STATE_OF_STATUS.get(entry.status) is OrderState.PARTIALLY_FILLED:
                order.filled_qty, order.fill_price = entry.filled_qty, entry.avg_price
            return
        reason = RejectReason.VENUE_ERROR if state is OrderState.REJECTED else RejectReason.NONE
        self.finish(
            order,
            state,
            reason=reason,
            message="" if state is OrderState.FILLED else entry.status,
            filled_qty=entry.filled_qty,
            fill_price=entry.avg_price,
            fee=entry.commission,
        )
        account.working.pop(entry.order_id, None)

    def finish(
        self,
        order: TrackedOrder,
        state: OrderState,
        *,
        reason: RejectReason = RejectReason.NONE,
        message: str = "",
        filled_qty: float = 0.0,
        fill_price: float = 0.0,
        fee: float = 0.0,
    ) -> None:
        if order.finish(
            state,
            reason=reason,
            message=message,
            filled_qty=filled_qty,
            fill_price=fill_price,
            fee=fee,
        ):
            self.outcomes.append(order)

    def _refuse(self, order: TrackedOrder, error: EtradeError) -> None:
        self.stats["rejected"] += 1
        self.finish(
            order,
            OrderState.REJECTED,
            reason=error.reject_reason or RejectReason.VENUE_ERROR,
            message=f"{error.code} {error.message}",
        )

    def _count_no_answer(self, exc: Exception) -> None:
        self.stats["malformed" if isinstance(exc, EtradeFormatError) else "transport_errors"] += 1

    # -- cancel and reads ------------------------------------------------------------------

    async def send_cancel(self, account: AccountOrders, order: TrackedOrder) -> None:
        body = json.dumps({"CancelOrderRequest": {"orderId": order.order_id}}).encode()
        path = f"{account.session.path}/orders/cancel.json"
        try:
            await self._session.call(account.session, "PUT", path, body=body)
        except TransportError as exc:
            raise no_answer(exc) from exc
        except EtradeError:
            await self.refresh_order(account, order)  # refused because it is done: a no-op
            if order.stage is not Stage.DONE:
                raise

    async def refresh_order(self, account: AccountOrders, order: TrackedOrder) -> None:
        """Ask E*Trade for one working order's details and take what they say."""
        if order.stage is not Stage.WORKING or order.order_id is None:
            return
        path = f"{account.session.path}/orders/{order.order_id}.json"
        for entry in (await self.read(account, path, wire.orders_page)).orders:
            if entry.order_id == order.order_id:
                self.apply(account, order, entry)

    async def _cancel_quietly(self, account: AccountOrders, order: TrackedOrder) -> None:
        try:
            await self.send_cancel(account, order)
        except (EtradeError, TransportError) as exc:
            log.warning("E*Trade: cancel of %s failed: %s", order.coid, exc)

    async def _list_orders(
        self, account: AccountOrders, since_ms: int, wait: bool
    ) -> list[VenueOrder] | None:
        """The account's orders, newest first, back to `since_ms` (None: skipped for the rate
        limit, `wait=False`). An unreadable list counts as malformed and raises."""
        session = self._session
        out: list[VenueOrder] = []
        marker: str | None = None
        for _ in range(MAX_LIST_PAGES):
            params = [("count", str(LIST_PAGE))] + ([("marker", marker)] if marker else [])
            path = f"{account.session.path}/orders.json"
            answer = await session.call(account.session, "GET", path, params=params, wait=wait)
            if answer is None:
                return out or None
            try:
                page = wire.orders_page(wire.parse_json(answer.body))
            except EtradeFormatError as exc:
                self.stats["malformed"] += 1
                raise unreadable(exc) from exc
            out += page.orders
            marker = page.marker
            if marker is None or not page.orders or page.orders[-1].placed_ms < since_ms:
                break
        return out

    async def read(
        self,
        account: AccountOrders,
        path: str,
        parse: Callable[[object], _T],
        params: Sequence[tuple[str, str]] = (),
    ) -> _T:
        try:
            answer = await self._session.call(account.session, "GET", path, params=params)
        except TransportError as exc:
            raise no_answer(exc) from exc
        assert answer is not None
        try:
            return parse(wire.parse_json(answer.body))
        except EtradeFormatError as exc:
            self.stats["malformed"] += 1
            raise unreadable(exc) from exc


def no_answer(exc: TransportError) -> EtradeError:
    """A read that got no answer, as the `EtradeError` the adapter's reads raise."""
    return EtradeError(
        exc.kind, str(exc), http_status=0, kind=EtradeErrorKind.SERVER, retryable=True
    )


def unreadable(exc: EtradeFormatError) -> EtradeError:
    return EtradeError(
        "malformed", str(exc), http_status=200, kind=EtradeErrorKind.SERVER, retryable=True
    )
