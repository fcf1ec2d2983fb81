"""The E*Trade v1 adapter: market orders for many accounts, preview then place, outcomes polled.

    submit  -> per account, one sending task takes the account's orders in turn:
               preview -> place (the identical order + previewId) -> the orderId is kept
    refresh -> every `poll_interval_s`, only the accounts with orders working list their orders;
               EXECUTED / CANCELLED / REJECTED / EXPIRED become outcomes for `poll`

E*Trade has no order stream (venues.md §4.5) and does not echo the clientOrderId (§4.3), so an
order whose place got no answer (no response, HTTP 5xx, an unreadable answer) is looked for in
the account's orders list by what it is (`tracking.find_lost_order`). Found: adopted, never sent
again. Not there: previewed and placed again with the same clientOrderId, which E*Trade refuses
as a duplicate should the first one have landed after all (then it is looked for again). An
account's orders are sent one at a time, so a search never takes an order still on its way for
a lost one. An order that cannot be looked for (the list fails too) is parked and looked for at
each refresh.

Errors: a refusal becomes a REJECTED outcome with E*Trade's code and text and the normalised
reason; the reads (`query`, `open_orders`, `positions`, `balances`, `cancel`) raise
`EtradeError`. Rate limits, token renewal and re-signing happen below, in `EtradeSession`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping

import numpy as np

from tickwise.model.ids import ClientOrderId
from tickwise.model.instruments import AssetClass, InstrumentRegistry, Venue
from tickwise.model.orders import ExecutionBatch, OrderBatch, OrderState, RejectReason, Side
from tickwise.model.positions import PositionBook
from tickwise.venues.base import Balances, OrderStatus
from tickwise.venues.capabilities import ETRADE
from tickwise.venues.credentials import Credential, CredentialKind
from tickwise.venues.etrade import wire
from tickwise.venues.etrade.errors import EtradeError, EtradeErrorKind
from tickwise.venues.etrade.login import Authorize
from tickwise.venues.etrade.oauth import (
    ConsumerCredentials,
    OAuthEndpoints,
    TokenCredentials,
    TokenState,
)
from tickwise.venues.etrade.sending import LIST_PAGE, MAX_LIST_PAGES, OrderFlow
from tickwise.venues.etrade.session import RENEW_MARGIN, AccountSession, EtradeSession, Sleep
from tickwise.venues.etrade.tracking import (
    STATE_OF_STATUS,
    AccountOrders,
    Stage,
    TrackedOrder,
    execution_batch,
)
from tickwise.venues.etrade.wire import OrderRequest, VenueOrder
from tickwise.venues.http import AiohttpTransport, Transport
from tickwise.venues.ratelimit import Backoff, RateLimiter

log = logging.getLogger(__name__)

_ACTIONS = {Side.BUY: "BUY", Side.SELL: "SELL"}


class EtradeVenue:
    """E*Trade for a set of client accounts (implements `VenueClient`; module docstring)."""

    venue = Venue.ETRADE

    def __init__(
        self,
        registry: InstrumentRegistry,
        credentials: Mapping[int, Credential],
        *,
        base_url: str,
        stream_url: str = "",
        transport_factory: Callable[[], Transport] = AiohttpTransport,
        max_in_flight: int = 256,
        request_timeout_s: float = 10.0,
        rate_limits: bool = True,
        oauth_url: str | None = None,
        authorize_page: str | None = None,
        authorize: Callable[[Transport], Authorize] | None = None,
        poll_interval_s: float | None = 1.0,
        poll_concurrency: int = 64,
        max_attempts: int = 4,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
        limiter: RateLimiter | None = None,
        seed: int = 0,
    ) -> None:
        """`stream_url` is unused: E*Trade has no order stream; outcomes are polled every
        `poll_interval_s` (None: only when `refresh` is called). `oauth_url` is the OAuth host
        (default `base_url`), `authorize_page` the login page (default E*Trade's). `authorize`
        makes, from the transport, the user's step of a login (`login.Authorize`): with it, an
        account whose token passed midnight US Eastern logs in again; without, its calls fail
        with an AUTH error until the venue is restarted with a new token. `clock` (epoch s)
        signs calls and ages tokens; `sleep` waits out limits and backoff; `limiter` replaces
        E*Trade's rules (`rate_limits=False`: none, but the venue's rate-limit answers are
        still honoured)."""
        for client, cred in credentials.items():
            if cred.kind is not CredentialKind.ETRADE_OAUTH or not cred.account_id:
                raise ValueError(
                    f"client {client}: E*Trade needs an {CredentialKind.ETRADE_OAUTH.label} "
                    "credential with an account id key"
                )
        self.registry = registry
        self._credentials = dict(credentials)
        self._base_url = base_url.rstrip("/")
        oauth_base = (oauth_url or base_url).rstrip("/")
        self._endpoints = (
            OAuthEndpoints(oauth_base, authorize_page)
            if authorize_page
            else OAuthEndpoints(oauth_base=oauth_base)
        )
        self._authorize = authorize
        self._transport_factory = transport_factory
        self._max_in_flight = max_in_flight
        self._timeout_s = request_timeout_s
        self._poll_interval_s = poll_interval_s
        self._poll_concurrency = poll_concurrency
        self._max_attempts = max(1, max_attempts)
        self._clock = clock
        self._sleep = sleep
        self._limiter = limiter or RateLimiter(ETRADE.limits if rate_limits else ())
        self._backoff = Backoff(0.05, 2.0, random.Random(seed))
        self.stats: Counter[str] = Counter()
        self._transport: Transport | None = None
        self._flow: OrderFlow | None = None
        self._accounts: dict[int, AccountOrders] = {}
        self._orders: dict[str, TrackedOrder] = {}
        self._refused: list[TrackedOrder] = []  # refused before sending, for `poll`
        self._pending = 0
        self._poller: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the transport (inside the running loop) and start polling for outcomes."""
        self._transport = self._transport_factory()
        session = EtradeSession(
            self._transport,
            self._base_url,
            self._endpoints,
            self._limiter,
            self.stats,
            clock=self._clock,
            sleep=self._sleep,
            max_in_flight=self._max_in_flight,
            timeout_s=self._timeout_s,
            authorize=self._authorize(self._transport) if self._authorize else None,
        )
        now = session.now()
        for client, cred in sorted(self._credentials.items()):
            secret = cred.secret
            token = TokenCredentials(
                secret.reveal("oauth_token"), secret.reveal("oauth_token_secret")
            )
            consumer = ConsumerCredentials(cred.key_id, secret.reveal("consumer_secret"))
            state = TokenState.issued(token, now, RENEW_MARGIN)
            self._accounts[client] = AccountOrders(
                AccountSession(client, cred.account_id, consumer, state)
            )
        self._flow = OrderFlow(
            session,
            self._accounts,
            self.stats,
            clock=self._clock,
            sleep=self._sleep,
            backoff=self._backoff,
            max_attempts=self._max_attempts,
            poll_concurrency=self._poll_concurrency,
        )
        if self._poll_interval_s is not None:
            self._poller = asyncio.get_running_loop().create_task(self._poll_forever())

    async def close(self) -> None:
        """Stop polling and sending (an order in the middle of a send stays as the venue has
        it) and close the transport."""
        tasks = self._flow.stop() if self._flow is not None else []
        if self._poller is not None:
            self._poller.cancel()
            tasks.append(self._poller)
        await asyncio.gather(*tasks, return_exceptions=True)
        self._poller = None
        if self._transport is not None:
            await self._transport.close()
            self._transport = None

    # -- VenueClient -----------------------------------------------------------------------

    async def submit(self, orders: OrderBatch) -> None:
        """Hand every order to its account's sending task. What is refused here (whole
        shares, equities only, the id rule, an id already submitted) comes back from `poll`."""
        flow = self._require_flow()
        for row in range(len(orders)):
            order = TrackedOrder(
                coid=bytes(orders.client_order_id[row]).decode("ascii", "replace"),
                signal_id=int(orders.signal_id[row]),
                client=int(orders.client[row]),
                instrument=int(orders.instrument[row]),
                side=Side(int(orders.side[row])),
                qty=float(orders.qty[row]),
                ts_event=int(orders.ts_event[row]),
                ts_recv=int(orders.ts_recv[row]),
                ts_sent=int(orders.ts_sent[row]),
            )
            self._pending += 1
            reason, text = self._local_refusal(order)
            if reason is not RejectReason.NONE:
                order.finish(OrderState.REJECTED, reason=reason, message=text)
                self._refused.append(order)
                continue
            symbol = self.registry[order.instrument].symbol
            order.request = OrderRequest(order.coid, symbol, _ACTIONS[order.side], int(order.qty))
            self._orders[order.coid] = order
            account = self._accounts[order.client]
            account.queue.append(order)
            flow.wake_sender(account)

    def poll(self, now_ns: int) -> ExecutionBatch:
        """Every outcome learned since the last poll, each order once (`ts_ack`: learned)."""
        done, self._refused = self._refused, []
        if self._flow is not None:
            done += self._flow.outcomes
            self._flow.outcomes = []
        self._pending -= len(done)
        return execution_batch(done)

    def working(self) -> list[tuple[str, int, int]]:
        """(client order id, client, instrument) of every order sent here without an outcome
        yet: what a kill switch with `cancel_open` asks the venue to cancel."""
        return [
            (o.coid, o.client, o.instrument)
            for o in self._orders.values()
            if o.stage is not Stage.DONE
        ]

    def pending(self) -> int:
        return self._pending

    async def cancel(self, client_order_id: ClientOrderId) -> None:
        """Ask E*Trade to cancel an order: it answers 5011 and cancels later, and the outcome
        comes from `poll`. A no-op for a finished order; raises for an id never submitted."""
        order = self._orders.get(str(client_order_id))
        if order is None:
            raise _never_submitted(client_order_id)
        if order.stage is Stage.DONE:
            return
        if order.order_id is None:
            order.cancel_wanted = True  # sent once the orderId is known
            return
        await self._require_flow().send_cancel(self._accounts[order.client], order)

    async def query(self, client_order_id: ClientOrderId) -> OrderStatus | None:
        """The order's status, asked of E*Trade while it is open; None if never submitted."""
        order = self._orders.get(str(client_order_id))
        if order is None:
            return None
        flow, account = self._require_flow(), self._accounts[order.client]
        if order.stage is Stage.WORKING:
            await flow.refresh_order(account, order)
        elif order.stage is Stage.UNKNOWN and account.sender is None:
            async with account.lock:
                await flow.settle_parked(account, order)
        return order.status()

    async def locate(self, orders: OrderBatch) -> list[OrderStatus | EtradeError | None]:
        """The status of journaled orders, this process's or an earlier one's (recovery).

        E*Trade answers no look-up by clientOrderId and does not echo it in order listings
        (venues.md §4), so an order an earlier process placed is found the way a lost answer is:
        the oldest unclaimed MARKET entry of its account with its symbol, action and whole-share
        quantity, placed after its market event; it is then adopted and followed like one of
        ours. None for an order the venue never saw; an `EtradeError` in place of an order whose
        account's orders could not be listed (the caller leaves it for a later pass).
        """
        out: list[OrderStatus | EtradeError | None] = []
        for row in range(len(orders)):
            coid = bytes(orders.client_order_id[row]).decode("ascii", "replace")
            if coid in self._orders:
                out.append(await self.query(ClientOrderId(coid)))
                continue
            client, instrument = int(orders.client[row]), int(orders.instrument[row])
            account = self._accounts.get(client)
            if account is None or not 0 <= instrument < len(self.registry):
                out.append(None)
                continue
            order = TrackedOrder(
                coid=coid,
                signal_id=int(orders.signal_id[row]),
                client=client,
                instrument=instrument,
                side=Side(int(orders.side[row])),
                qty=float(orders.qty[row]),
                ts_event=int(orders.ts_event[row]),
                ts_recv=int(orders.ts_recv[row]),
                ts_sent=int(max(orders.ts_journal[row], orders.ts_sent[row])),
            )
            order.request = OrderRequest(
                coid, self.registry[instrument].symbol, _ACTIONS[order.side], int(order.qty)
            )
            async with account.lock:
                found = await self._require_flow().find_lost(account, order)
            if found is None:
                out.append(
                    EtradeError(
                        "unlisted",
                        f"the orders of client {client} could not be listed",
                        http_status=0,
                        kind=EtradeErrorKind.SERVER,
                        retryable=True,
                    )
                )
                continue
            if not found:
                out.append(None)
                continue
            self._orders[coid] = order
            self._pending += 1  # followed from now on: `poll` reports its outcome once
            out.append(order.status())
        return out

    async def open_orders(self, client: int) -> list[OrderStatus]:
        """The account's OPEN orders at E*Trade (ours with their clientOrderId, others "")."""
        account = self._accounts.get(client)
        if account is None:
            return []
        out: list[OrderStatus] = []
        marker: str | None = None
        for _ in range(MAX_LIST_PAGES):
            params = [("status", "OPEN"), ("count", str(LIST_PAGE))]
            params += [("marker", marker)] if marker else []
            path = f"{account.session.path}/orders.json"
            page = await self._require_flow().read(account, path, wire.orders_page, params)
            out += [s for e in page.orders if (s := self._foreign_status(account, e)) is not None]
            marker = page.marker
            if marker is None:
                break
        return out

    async def positions(self) -> PositionBook:
        """Every account's portfolio at E*Trade."""
        book = PositionBook(np.fromiter(self._accounts, np.int32, len(self._accounts)))

        async def one(account: AccountOrders) -> None:
            page, pages = 1, 1
            # The venue says how many pages there are; a wrong count never holds us for long.
            while page <= min(pages, MAX_LIST_PAGES):
                params = [("count", "50"), ("pageNumber", str(page))]
                path = f"{account.session.path}/portfolio.json"
                held, pages = await self._require_flow().read(account, path, wire.portfolio, params)
                for symbol, qty in held:
                    if symbol not in self.registry:
                        self.stats["unknown_symbols"] += 1
                        continue
                    index = self.registry.by_symbol(symbol).index
                    book.add([account.session.client], [index], [qty])
                page += 1

        await self._for_each_account(one)
        return book

    async def balances(self) -> Balances:
        """Every account's cash at E*Trade (`Computed.cashBalance`)."""
        cash: dict[int, float] = {}

        async def one(account: AccountOrders) -> None:
            path = f"{account.session.path}/balance.json"
            params = [("instType", "BROKERAGE"), ("realTimeNAV", "true")]
            cash[account.session.client] = await self._require_flow().read(
                account, path, wire.cash_balance, params
            )

        await self._for_each_account(one)
        clients = sorted(cash)
        return Balances(
            np.array(clients, np.int32), np.array([cash[c] for c in clients], np.float64)
        )

    # -- polling ---------------------------------------------------------------------------

    async def refresh(self) -> None:
        """One polling round (see `OrderFlow.refresh`); the poller runs it every
        `poll_interval_s`."""
        await self._require_flow().refresh()

    async def wait_sent(self) -> None:
        """Wait until no account has orders queued or being sent."""
        await self._require_flow().wait_sent()

    async def _poll_forever(self) -> None:
        assert self._poll_interval_s is not None
        while True:
            await asyncio.sleep(self._poll_interval_s)
            try:
                await self.refresh()
            except Exception:  # the poller must outlive any one bad round
                self.stats["refresh_errors"] += 1
                log.exception("E*Trade: a polling round failed")

    # -- helpers ---------------------------------------------------------------------------

    def _local_refusal(self, order: TrackedOrder) -> tuple[RejectReason, str]:
        if order.client not in self._accounts:
            return RejectReason.VENUE_ERROR, "no E*Trade credentials for this client"
        if not ETRADE.accepts_client_order_id(order.coid):
            return RejectReason.VENUE_ERROR, "clientOrderId must be 1 to 20 letters or digits"
        if order.coid in self._orders:
            return RejectReason.DUPLICATE_CLIENT_ORDER_ID, "clientOrderId already submitted"
        if not 0 <= order.instrument < len(self.registry):
            return RejectReason.UNKNOWN_SYMBOL, "unknown instrument"
        if self.registry[order.instrument].asset_class is not AssetClass.EQUITY:
            return RejectReason.UNKNOWN_SYMBOL, "E*Trade trades equities only"
        if order.side not in _ACTIONS:
            return RejectReason.VENUE_ERROR, "side must be BUY or SELL"
        if not (order.qty >= 1 and math.isfinite(order.qty) and order.qty == int(order.qty)):
            return RejectReason.INVALID_QUANTITY_INCREMENT, "E*Trade takes whole shares only"
        return RejectReason.NONE, ""

    def _foreign_status(self, account: AccountOrders, entry: VenueOrder) -> OrderStatus | None:
        """An orders-list entry as an `OrderStatus` (ours carry their clientOrderId)."""
        if entry.symbol not in self.registry:
            self.stats["unknown_symbols"] += 1
            return None
        ours = account.claimed.get(entry.order_id)
        state = STATE_OF_STATUS.get(entry.status, OrderState.ACKED)
        return OrderStatus(
            client_order_id=ClientOrderId(ours or ""),
            venue=Venue.ETRADE,
            client=account.session.client,
            instrument=self.registry.by_symbol(entry.symbol).index,
            side=Side.SELL if entry.action.startswith("SELL") else Side.BUY,
            qty=entry.ordered_qty,
            state=state,
            reason=RejectReason.VENUE_ERROR if state is OrderState.REJECTED else RejectReason.NONE,
            filled_qty=entry.filled_qty,
            avg_fill_price=entry.avg_price,
            fee=entry.commission,
            venue_message=f"orderId {entry.order_id} {entry.status}",
        )

    async def _for_each_account(self, fn: Callable[[AccountOrders], Awaitable[None]]) -> None:
        slots = asyncio.Semaphore(self._poll_concurrency)

        async def one(account: AccountOrders) -> None:
            async with slots:
                await fn(account)

        await asyncio.gather(*map(one, self._accounts.values()))

    def _require_flow(self) -> OrderFlow:
        if self._flow is None:
            raise RuntimeError("EtradeVenue.start() must run before orders or reads")
        return self._flow


def _never_submitted(client_order_id: str) -> EtradeError:
    return EtradeError(
        "not_found",
        f"no order with clientOrderId {client_order_id} was submitted",
        http_status=404,
        kind=EtradeErrorKind.REJECTED,
        retryable=False,
    )
