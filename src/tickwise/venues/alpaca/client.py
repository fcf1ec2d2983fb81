"""Alpaca behind `VenueClient`: market orders over HTTP, outcomes from the order event stream.

Two ways in (venues.md §1, §2):

    AlpacaVenue.broker(...)    Broker API: one firm key (`BrokerCredentials`) and an account id
                               per client; one event stream (SSE) for every account; requests
                               counted per account (1 000 a minute)
    AlpacaVenue.trading(...)   Trading API: one key pair per client (`TradingCredentials`); a
                               trade_updates WebSocket per key; 200 requests a minute per key

`submit` queues each order for a pool of sending tasks and returns. An order's outcome comes
from the stream (fill, rejected, canceled, expired), from the POST answer itself (refusals), or,
when no terminal event arrived within `outcome_timeout_s`, from looking the order up by client
order id. Never lost, never doubled: a POST whose outcome is unknown (timeout, dropped
connection, 5xx, unreadable answer) and a 422 "client_order_id must be unique" are resolved by
that lookup; only an order the venue does not know is sent again, with the same id, at most
`max_send_attempts` times in all. After a stream reconnect every open order is looked up (events
may have been missed). 429s are waited out (`rest.AlpacaRequests`).

`stats` counts requests, retries, rate_limited, unknown_outcomes, unknown_resolved, resent,
duplicates, rejected, auth_errors, malformed (answers), malformed_events, events,
events_unmatched (not an order in flight here), events_other_accounts (Broker API: accounts of
another adapter), outcomes_by_query, query_failures and the streams' connects and errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import numpy as np

from tickwise.model.ids import ClientOrderId, parse_client_order_id
from tickwise.model.instruments import InstrumentRegistry, Venue
from tickwise.model.orders import ExecutionBatch, OrderBatch, OrderState, RejectReason, Side
from tickwise.model.positions import PositionBook
from tickwise.venues.alpaca.auth import (
    BrokerAccountPaths,
    BrokerCredentials,
    TradingCredentials,
    TradingPaths,
)
from tickwise.venues.alpaca.errors import AlpacaError, AlpacaErrorKind, error_from_response
from tickwise.venues.alpaca.orders import (
    AlpacaOrder,
    MalformedOrderError,
    SymbolIndex,
    market_order_body,
    order_status,
    parse_order,
)
from tickwise.venues.alpaca.rest import (
    AccountRoute,
    AlpacaRequests,
    malformed_answer,
    transport_failure,
)
from tickwise.venues.alpaca.sending import OrderFlow
from tickwise.venues.alpaca.streams import (
    BrokerEventStream,
    EventSourceConnector,
    TradeUpdatesStream,
    connect_event_source,
)
from tickwise.venues.alpaca.tracking import OrderTracker, TrackedOrder
from tickwise.venues.base import Balances, OrderStatus
from tickwise.venues.capabilities import ALPACA, ALPACA_BROKER
from tickwise.venues.http import AiohttpTransport, Transport, TransportError

log = logging.getLogger(__name__)

_STATS = (
    "requests",
    "retries",
    "rate_limited",
    "unknown_outcomes",
    "unknown_resolved",
    "resent",
    "duplicates",
    "rejected",
    "auth_errors",
    "malformed",
    "malformed_events",
    "events",
    "events_unmatched",
    "events_other_accounts",
    "outcomes_by_query",
    "query_failures",
    "stream_connects",
    "stream_reconnects",
    "stream_errors",
)


def _not_found(what: str) -> AlpacaError:
    return AlpacaError(
        40410000, what, http_status=404, kind=AlpacaErrorKind.NOT_FOUND, retryable=False
    )


class AlpacaVenue:
    """Alpaca for a set of client accounts (implements `VenueClient`; see the module doc)."""

    venue = Venue.ALPACA

    def __init__(
        self,
        registry: InstrumentRegistry,
        credentials: BrokerCredentials | Mapping[int, TradingCredentials],
        *,
        base_url: str,
        stream_url: str = "",
        accounts: Mapping[int, str] | None = None,
        transport_factory: Callable[[], Transport] = AiohttpTransport,
        max_in_flight: int = 256,
        request_timeout_s: float = 10.0,
        outcome_timeout_s: float = 5.0,
        max_send_attempts: int = 3,
        rate_limits: bool = True,
        event_source: EventSourceConnector = connect_event_source,
        seed: int = 0,
    ) -> None:
        """`stream_url` defaults to the base URL's `/v1/events/trades` (Broker API) or its
        `/stream` WebSocket (Trading API); `accounts` (client -> account id) is required with
        `BrokerCredentials`. `rate_limits=False` drops the client-side budget (429s are still
        honoured)."""
        if max_in_flight < 1 or max_send_attempts < 1:
            raise ValueError("max_in_flight and max_send_attempts must be >= 1")
        self.registry = registry
        self._symbols = SymbolIndex(registry)
        self._base_url = base_url.rstrip("/")
        self._transport_factory = transport_factory
        self._max_in_flight = max_in_flight
        self._timeout_s = request_timeout_s
        self._max_attempts = max_send_attempts
        self._rate_limits = rate_limits
        self._event_source = event_source
        self._rng = random.Random(seed)
        self._routes: dict[int, AccountRoute] = {}
        self._client_of_account: dict[str, int] = {}
        self._broker: BrokerCredentials | None = None
        self._trading: dict[int, TradingCredentials] = {}
        if isinstance(credentials, BrokerCredentials):
            if not accounts:
                raise ValueError("the Broker API needs the account id of each client")
            self._broker = credentials
            self._capabilities = ALPACA_BROKER
            shared = credentials.headers()
            for client, account_id in accounts.items():
                paths = BrokerAccountPaths(account_id)
                cost = ALPACA_BROKER.cost("POST " + paths.orders())
                route = AccountRoute(int(client), shared, paths, {"account": account_id}, cost)
                self._routes[int(client)] = route
                self._client_of_account[account_id] = int(client)
            default_stream = self._base_url + "/v1/events/trades"
        else:
            self._capabilities = ALPACA
            self._trading = {int(c): creds for c, creds in credentials.items()}
            cost = ALPACA.cost("POST /v2/orders")
            for client, creds in self._trading.items():
                scope = {"key": creds.key_id}
                route = AccountRoute(client, creds.headers(), TradingPaths(), scope, cost)
                self._routes[client] = route
            default_stream = "ws" + self._base_url.removeprefix("http") + "/stream"
        self._stream_url = stream_url or default_stream
        self.stats: dict[str, int] = dict.fromkeys(_STATS, 0)
        self._orders = OrderTracker(outcome_timeout_s)
        self._http: AlpacaRequests | None = None
        self._transport: Transport | None = None
        self._flow: OrderFlow | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @classmethod
    def broker(
        cls,
        registry: InstrumentRegistry,
        credentials: BrokerCredentials,
        accounts: Mapping[int, str],
        *,
        base_url: str,
        **options: Any,
    ) -> AlpacaVenue:
        """Broker API mode: the firm's key, client -> account id."""
        return cls(registry, credentials, accounts=accounts, base_url=base_url, **options)

    @classmethod
    def trading(
        cls,
        registry: InstrumentRegistry,
        credentials: Mapping[int, TradingCredentials],
        *,
        base_url: str,
        **options: Any,
    ) -> AlpacaVenue:
        """Trading API mode: one key pair per client."""
        return cls(registry, credentials, base_url=base_url, **options)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the transport and the event streams, start the sending tasks; waits (up to the
        request timeout) for the streams to connect."""
        self._transport = self._transport_factory()
        self._http = AlpacaRequests(
            self._transport,
            self._base_url,
            self._capabilities,
            self.stats,
            max_in_flight=self._max_in_flight,
            timeout_s=self._timeout_s,
            rate_limits=self._rate_limits,
        )
        self._flow = OrderFlow(
            self._http,
            self._orders,
            self.stats,
            max_attempts=self._max_attempts,
            timeout_s=self._timeout_s,
        )
        for _ in range(self._max_in_flight):
            self._spawn(self._flow.run_sender())
        self._spawn(self._flow.run_sweeper(self._spawn))
        streams = self._open_streams(self._transport, self._flow)
        for stream in streams:
            self._spawn(stream.run())
        try:
            await asyncio.wait_for(
                asyncio.gather(*(stream.connected.wait() for stream in streams)), self._timeout_s
            )
        except TimeoutError:
            log.warning("Alpaca: an order stream is not connected yet; lookups cover it")

    def _open_streams(
        self, transport: Transport, flow: OrderFlow
    ) -> list[TradeUpdatesStream | BrokerEventStream]:
        common = (flow.on_event, self._orders.check_all_now, self.stats, self._timeout_s)
        if self._broker is not None:
            url, connector, broker = self._stream_url, self._event_source, self._broker
            accounts = self._client_of_account
            return [BrokerEventStream(connector, url, broker, accounts, *common, self._rng)]
        return [
            TradeUpdatesStream(transport, self._stream_url, creds, client, *common, self._rng)
            for client, creds in self._trading.items()
        ]

    async def close(self) -> None:
        tasks = list(self._tasks)
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._transport is not None:
            await self._transport.close()
            self._transport = None

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)

    @property
    def _requests(self) -> AlpacaRequests:
        if self._http is None:
            raise RuntimeError("AlpacaVenue.start() has not been called")
        return self._http

    # -- orders ----------------------------------------------------------------------------

    async def submit(self, orders: OrderBatch) -> None:
        """Hand every order to the sending tasks. Refusals known without asking come back
        from `poll`: no account for the client, an unknown instrument, a client order id
        already submitted here."""
        if self._flow is None:
            raise RuntimeError("AlpacaVenue.start() has not been called")
        for i in range(len(orders)):
            client, instrument = int(orders.client[i]), int(orders.instrument[i])
            route = self._routes.get(client)
            order = TrackedOrder(
                route=route or _NO_ROUTE,
                coid=bytes(orders.client_order_id[i]).decode("ascii"),
                signal_id=int(orders.signal_id[i]),
                client=client,
                instrument=instrument,
                side=int(orders.side[i]),
                ts_event=int(orders.ts_event[i]),
                ts_recv=int(orders.ts_recv[i]),
                ts_sent=int(orders.ts_sent[i]),
            )
            if route is None:
                self._orders.finish(order, OrderState.REJECTED, RejectReason.VENUE_ERROR)
            elif not 0 <= instrument < len(self.registry):
                self._orders.finish(order, OrderState.REJECTED, RejectReason.UNKNOWN_SYMBOL)
            elif order.coid in self._orders.client_of_coid:
                reason = RejectReason.DUPLICATE_CLIENT_ORDER_ID
                self._orders.finish(order, OrderState.REJECTED, reason)
            else:
                inst, side = self.registry[instrument], Side(order.side)
                order.body = market_order_body(inst, side, float(orders.qty[i]), order.coid)
                self._orders.add(order)
                self._flow.queue.put_nowait(order)

    def poll(self, now_ns: int) -> ExecutionBatch:
        """Every outcome learned since the last poll, each order once (`ts_ack` = when it
        was learned)."""
        return self._orders.take()

    def working(self) -> list[tuple[str, int, int]]:
        """(client order id, client, instrument) of every order sent here without an outcome
        yet: what a kill switch with `cancel_open` asks the venue to cancel."""
        return [(o.coid, o.client, o.instrument) for o in self._orders.live.values()]

    def pending(self) -> int:
        return self._orders.pending()

    # -- reads -----------------------------------------------------------------------------

    def _route_of(self, client_order_id: str) -> AccountRoute:
        client = self._orders.client_of_coid.get(client_order_id)
        if client is None:
            try:
                client = int(parse_client_order_id(client_order_id)[1])
            except ValueError:
                client = -1
        route = self._routes.get(client)
        if route is None:
            raise _not_found(f"no Alpaca account known for order {client_order_id}")
        return route

    def _status(self, route: AccountRoute, found: AlpacaOrder) -> OrderStatus:
        instrument = self._symbols.get(found.symbol)
        return order_status(found, route.client, -1 if instrument is None else instrument)

    async def query(self, client_order_id: ClientOrderId) -> OrderStatus | None:
        route = self._route_of(client_order_id)
        try:
            found = await self._requests.find_order(route, client_order_id)
        except TransportError as exc:
            raise transport_failure(exc) from exc
        except MalformedOrderError as exc:
            raise malformed_answer(str(exc)) from exc
        return None if found is None else self._status(route, found)

    async def cancel(self, client_order_id: ClientOrderId) -> None:
        """Ask for a cancel (204; the outcome arrives on the stream). A no-op for an order
        already done; `AlpacaError` (404) for one the venue never saw."""
        route = self._route_of(client_order_id)
        tracked = self._orders.get(route.client, client_order_id)
        venue_id = tracked.venue_order_id if tracked is not None else ""
        try:
            if not venue_id:
                found = await self._requests.find_order(route, client_order_id)
                if found is None:
                    raise _not_found(f"order {client_order_id} not found")
                if found.state.terminal:
                    return
                venue_id = found.order_id
            resp = await self._requests.call(route, "DELETE", route.paths.order(venue_id))
        except TransportError as exc:
            raise transport_failure(exc) from exc
        except MalformedOrderError as exc:
            raise malformed_answer(str(exc)) from exc
        if resp.status in (200, 204):
            return
        refusal = error_from_response(resp.status, resp.body)
        if resp.status == 422 and refusal.kind is AlpacaErrorKind.REJECTED:
            return  # not cancelable any more: filled, canceled or expired
        raise refusal

    async def open_orders(self, client: int) -> list[OrderStatus]:
        route = self._routes.get(client)
        if route is None:
            return []
        statuses = []
        for doc in await self._requests.get_all_open_orders(route):
            try:
                statuses.append(self._status(route, parse_order(doc)))
            except MalformedOrderError:
                self.stats["malformed"] += 1
        return statuses

    async def positions(self) -> PositionBook:
        routes = list(self._routes.values())
        answers = await asyncio.gather(
            *(self._requests.positions(route, self._symbols) for route in routes)
        )
        book = PositionBook([route.client for route in routes])
        rows = [
            (route.client, instrument, qty)
            for route, held in zip(routes, answers, strict=True)
            for instrument, qty in held
        ]
        if rows:
            client, instrument, qty = zip(*rows, strict=True)
            book.add(client, instrument, qty)  # one merge for every account
        return book

    async def balances(self) -> Balances:
        clients = sorted(self._routes)
        cash = await asyncio.gather(*(self._requests.cash(self._routes[c]) for c in clients))
        return Balances(np.array(clients, np.int32), np.array(cash, np.float64))


_NO_ROUTE = AccountRoute(-1, {}, TradingPaths(), {}, {})
