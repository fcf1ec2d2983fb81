"""Binance Spot as a `VenueClient`: many client accounts, each with its own API key.

`start` measures the server clock and loads the exchangeInfo filters. `submit` checks a batch
against them (an order that fails one is rejected here with its `RejectReason` and never sent),
then hands every order to a sending task (`sending.OrderFlow`) and returns; `poll` collects the
outcomes. The user data stream (one WebSocket API connection per 1000 accounts,
`userDataStream.subscribe.signature` per account) reports the same outcomes sooner and the
orders placed elsewhere, but is never needed for correctness: unknown outcomes are resolved by
client order id (see `OrderFlow._resolve`). Requests are paced by a `RateLimiter` over the
capabilities.BINANCE rules, resynced from the venue's usage headers (`rest.BinanceRest`).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping

import numpy as np

from tickwise.model.ids import INSTRUMENT_BITS, ClientOrderId, parse_client_order_id
from tickwise.model.instruments import InstrumentRegistry, Venue
from tickwise.model.orders import (
    COID_DTYPE,
    ExecutionBatch,
    OrderBatch,
    OrderState,
    RejectReason,
    Side,
)
from tickwise.model.positions import PositionBook
from tickwise.venues.base import Balances, OrderStatus
from tickwise.venues.binance.errors import BinanceError
from tickwise.venues.binance.filters import (
    SymbolRules,
    check_orders,
    format_steps,
    parse_exchange_info,
    symbol_indices,
)
from tickwise.venues.binance.reports import OrderReport, read_execution, read_order
from tickwise.venues.binance.rest import BinanceRest
from tickwise.venues.binance.sending import LiveOrder, OrderFlow
from tickwise.venues.binance.signing import KeyKind, SigningKey
from tickwise.venues.binance.user_stream import MAX_SUBSCRIPTIONS, UserDataStream
from tickwise.venues.binance.wire import USD_ASSETS, SymbolMap, number
from tickwise.venues.capabilities import BINANCE
from tickwise.venues.credentials import Credential, CredentialError, CredentialKind
from tickwise.venues.http import AiohttpTransport, Transport, TransportError
from tickwise.venues.ratelimit import RateLimiter

Sleep = Callable[[float], Awaitable[object]]

ACCOUNT_READS_IN_FLIGHT = 32  # concurrent account snapshots (weight 20 each)
_INSTRUMENT_MASK = (1 << INSTRUMENT_BITS) - 1
_KEY_KINDS: dict[CredentialKind, KeyKind] = {
    CredentialKind.BINANCE_HMAC: "hmac",
    CredentialKind.BINANCE_ED25519: "ed25519",
}


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def signing_keys(credentials: Mapping[int, Credential]) -> dict[int, SigningKey]:
    """The request signers of Binance credentials (HMAC secret or Ed25519 PEM)."""
    keys: dict[int, SigningKey] = {}
    for client, cred in credentials.items():
        kind = _KEY_KINDS.get(cred.kind)
        if cred.venue is not Venue.BINANCE or kind is None:
            raise CredentialError(
                f"client {client}: a {cred.kind.label} credential cannot sign Binance requests"
            )
        keys[int(client)] = SigningKey(cred.key_id, kind, cred.secret.reveal("secret"))
    return keys


class BinanceVenue:
    """Binance Spot for a set of client accounts (implements `VenueClient`).

    `stream_url` is the WebSocket API endpoint (`wss://ws-api.binance.com:443/ws-api/v3`).
    `sleep`, `clock` (monotonic seconds, for the rate limiter), `local_ms` (wall clock) and
    `rng` are seams for tests; `user_stream=False` runs without the user data stream, and
    `rate_limits=False` stops pacing requests (429/418 answers are still honoured).
    """

    venue = Venue.BINANCE

    def __init__(
        self,
        registry: InstrumentRegistry,
        credentials: Mapping[int, Credential],
        *,
        base_url: str,
        stream_url: str,
        transport_factory: Callable[[], Transport] = AiohttpTransport,
        max_in_flight: int = 256,
        request_timeout_s: float = 10.0,
        recv_window_ms: int = 5000,
        user_stream: bool = True,
        rate_limits: bool = True,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        local_ms: Callable[[], int] = _wall_ms,
        rng: random.Random | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        self.registry = registry
        self.symbols = SymbolMap.of(registry)
        self.stream_url = stream_url
        self.stats: Counter[str] = Counter()
        self._keys = signing_keys(credentials)
        self._key_clients = np.array(sorted(self._keys), np.int32)
        self._transport_factory = transport_factory
        self._transport: Transport | None = None
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._recv_window_ms = recv_window_ms
        self._rest = BinanceRest(
            base_url,
            self._keys,
            limiter=RateLimiter(BINANCE.limits if rate_limits else (), clock=clock),
            local_ms=local_ms,
            stats=self.stats,
            recv_window_ms=recv_window_ms,
            timeout_s=request_timeout_s,
            sleep=sleep,
            rng=self._rng,
        )
        self._user_stream = user_stream
        self._max_in_flight = max_in_flight
        self._rules: SymbolRules | None = None
        self._rule_row = np.full(len(registry), -1, np.int64)
        self._base_of = {
            w: b for w, b in zip(self.symbols.wire, self.symbols.base, strict=True) if w and b
        }
        self._flow = OrderFlow(
            self._rest,
            self.stats,
            sleep=sleep,
            recv_window_ms=recv_window_ms,
            max_in_flight=max_in_flight,
        )
        self._known: dict[str, tuple[int, int]] = {}  # orders placed elsewhere: client, inst
        self._tasks: set[asyncio.Task[None]] = set()
        self._streams: list[UserDataStream] = []

    def __repr__(self) -> str:
        return (
            f"BinanceVenue(base_url={self._rest.base_url!r}, clients={len(self._keys)}, "
            f"live={len(self._flow.live)})"
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the transport, measure the server clock, load the symbol filters, and start
        the user data stream."""
        if self._transport is not None:
            return
        self._transport = self._transport_factory()
        self._rest.transport = self._transport
        try:
            await self._rest.sync_clock()
            info = await self._rest.call("GET", "/api/v3/exchangeInfo", retry_unknown=True)
            self._rules = parse_exchange_info(info)
        except BaseException:
            await self.close()
            raise
        self._rule_row = symbol_indices(self._rules, [w or "" for w in self.symbols.wire])
        if self._user_stream and self._keys:
            clients = sorted(self._keys)
            for first in range(0, len(clients), MAX_SUBSCRIPTIONS):
                chunk = clients[first : first + MAX_SUBSCRIPTIONS]
                stream = UserDataStream(
                    self.stream_url,
                    {c: self._keys[c] for c in chunk},
                    transport=self._current_transport,
                    clock=self._rest.clock,
                    recv_window_ms=self._recv_window_ms,
                    on_event=self._on_event,
                    stats=self.stats,
                    sleep=self._sleep,
                    rng=self._rng,
                )
                self._streams.append(stream)
                self._spawn(stream.run())

    def _current_transport(self) -> Transport:
        if self._transport is None:
            raise TransportError("connection", "the Binance adapter is closed")
        return self._transport

    async def close(self) -> None:
        """Stop every task and close the transport; orders still unresolved stay pending."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._streams.clear()
        if self._transport is not None:
            await self._transport.close()
            self._transport = None
            self._rest.transport = None

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- orders ----------------------------------------------------------------------------

    async def submit(self, orders: OrderBatch) -> None:
        """Reject what fails the filters, hand the rest to sending tasks, return."""
        if len(orders) == 0:
            return
        rules = self._rules
        if rules is None:
            raise RuntimeError("start() the Binance adapter before submitting orders")
        inst = orders.instrument.astype(np.int64)
        listed = inst < len(self._rule_row)
        row = np.where(listed, self._rule_row[np.where(listed, inst, 0)], -1)
        passes, reasons = check_orders(rules, row, orders.side, orders.qty, orders.price, True)
        keyed = np.isin(orders.client, self._key_clients)
        for i in range(len(orders)):
            order = self._live_order(orders, i)
            flow = self._flow
            if not keyed[i]:
                flow.reject_locally(order, RejectReason.VENUE_ERROR, "no API key for client")
            elif not passes[i]:
                flow.reject_locally(order, RejectReason(int(reasons[i])), "exchangeInfo filter")
            elif not BINANCE.accepts_client_order_id(order.coid):
                flow.reject_locally(order, RejectReason.VENUE_ERROR, "invalid client order id")
            elif flow.seen(order.coid):
                # Binance would take the repeat once the first is filled and trade twice.
                flow.reject_locally(
                    order, RejectReason.DUPLICATE_CLIENT_ORDER_ID, "Duplicate order sent."
                )
            else:
                r = int(row[i])
                market = rules.market_lot.num[r] > 0
                den = int(rules.market_lot.den[r] if market else rules.lot.den[r])
                order.qty_text = format_steps(order.qty, den)
                order.symbol = self.symbols.wire[order.instrument] or ""
                order.base = self.symbols.base[order.instrument] or ""
                self._spawn(flow.track(order))

    @staticmethod
    def _live_order(orders: OrderBatch, i: int) -> LiveOrder:
        return LiveOrder(
            coid=bytes(orders.client_order_id[i]).decode("ascii", "replace"),
            signal_id=int(orders.signal_id[i]),
            client=int(orders.client[i]),
            instrument=int(orders.instrument[i]),
            side=Side(int(orders.side[i])) if int(orders.side[i]) in (1, -1) else Side.BUY,
            qty=float(orders.qty[i]),
            price=float(orders.price[i]),
            ts_event=int(orders.ts_event[i]),
            ts_recv=int(orders.ts_recv[i]),
            ts_sent=int(orders.ts_sent[i]),
        )

    # -- user data stream ------------------------------------------------------------------

    def _on_event(self, client: int, event: Mapping[str, object]) -> None:
        if event.get("e") != "executionReport":
            return
        try:
            ev = read_execution(event, self._base_of)
        except ValueError:
            self.stats["stream_malformed"] += 1
            return
        if self._flow.apply(client, ev):
            return
        inst = self.symbols.instrument_of(ev.symbol)
        if inst is not None:  # placed elsewhere: remember where it lives, for cancel/query
            self._known[ev.client_order_id] = (client, inst)
        self.stats["foreign_events"] += 1

    # -- results ---------------------------------------------------------------------------

    def poll(self, now_ns: int) -> ExecutionBatch:
        """Every outcome learned at or before `now_ns`, each once (see module doc)."""
        due = self._flow.take(now_ns)
        if not due:
            return ExecutionBatch.empty()
        n = len(due)
        orders = [o.order for o in due]
        return ExecutionBatch(
            client_order_id=np.array(
                [o.coid.encode("ascii", "replace") for o in orders], COID_DTYPE
            ),
            signal_id=np.array([o.signal_id for o in orders], np.int64),
            client=np.array([o.client for o in orders], np.int32),
            venue=np.full(n, int(Venue.BINANCE), np.uint8),
            instrument=np.array([o.instrument for o in orders], np.uint32),
            side=np.array([int(o.side) for o in orders], np.int8),
            state=np.array([int(o.state) for o in due], np.int8),
            reason=np.array([int(o.reason) for o in due], np.int8),
            fill_qty=np.array([o.fill_qty for o in due], np.float64),
            fill_price=np.array([o.fill_price for o in due], np.float64),
            fee=np.array([o.fee for o in due], np.float64),
            ts_event=np.array([o.ts_event for o in orders], np.int64),
            ts_recv=np.array([o.ts_recv for o in orders], np.int64),
            ts_sent=np.array([o.ts_sent for o in orders], np.int64),
            ts_ack=np.array([o.ts_ack for o in due], np.int64),
        )

    def working(self) -> list[tuple[str, int, int]]:
        """(client order id, client, instrument) of every order sent here without an outcome
        yet: what a kill switch with `cancel_open` asks the venue to cancel."""
        return [(o.coid, o.client, o.instrument) for o in self._flow.live.values()]

    def pending(self) -> int:
        return len(self._flow.live) + len(self._flow.outcomes)

    def messages(self) -> dict[str, str]:
        """The venue's words for the outcomes not yet polled, by client order id (journal)."""
        return {o.order.coid: o.message for o in self._flow.outcomes if o.message}

    # -- reads -----------------------------------------------------------------------------

    def _locate(self, coid: str) -> tuple[int, int] | None:
        """(client, instrument) of an order id: live, seen on the stream, or a tickwise id."""
        live = self._flow.live.get(coid)
        if live is not None:
            return live.client, live.instrument
        if coid in self._known:
            return self._known[coid]
        try:
            signal, client = parse_client_order_id(coid)
        except ValueError:
            return None
        return int(client), int(signal) & _INSTRUMENT_MASK

    async def query(self, client_order_id: ClientOrderId) -> OrderStatus | None:
        """The order's status at the venue, or None if it never saw it."""
        where = self._locate(client_order_id)
        if where is None or where[0] not in self._keys:
            return None
        client, inst = where
        symbol = self.symbols.symbol_of(inst)
        if symbol is None:
            return None
        try:
            body = await self._flow.query(client, symbol, client_order_id)
        except BinanceError as err:
            if err.code == -2013:
                return None
            raise
        try:
            report = read_order(body, self.symbols.base[inst] or "")
        except ValueError as exc:
            self.stats["malformed"] += 1
            raise BinanceError("MALFORMED", f"order answer: {exc}", retryable=True) from exc
        fee = report.fee
        if report.filled_qty > 0 and fee is None:
            fee = await self._flow.trades_fee(
                client, symbol, self.symbols.base[inst] or "", report.order_id
            )
        return self._status(client, inst, report, fee)

    def _status(
        self, client: int, inst: int, report: OrderReport, fee: float | None
    ) -> OrderStatus:
        rejected = report.state is OrderState.REJECTED
        reason = RejectReason.VENUE_ERROR if rejected else RejectReason.NONE
        return OrderStatus(
            client_order_id=ClientOrderId(report.client_order_id),
            venue=Venue.BINANCE,
            client=client,
            instrument=inst,
            side=report.side,
            qty=report.qty,
            state=report.state,
            reason=reason,
            filled_qty=report.filled_qty,
            avg_fill_price=report.avg_price,
            fee=fee or 0.0,
        )

    async def cancel(self, client_order_id: ClientOrderId) -> None:
        """Cancel an open order; a no-op for one already done, `BinanceError` if unknown."""
        where = self._locate(client_order_id)
        symbol = self.symbols.symbol_of(where[1]) if where else None
        if where is None or symbol is None or where[0] not in self._keys:
            raise BinanceError(-2011, f"Unknown order sent: {client_order_id}")
        client = where[0]
        try:
            body = await self._rest.call(
                "DELETE",
                "/api/v3/order",
                {"symbol": symbol, "origClientOrderId": client_order_id},
                client=client,
                retry_unknown=True,
            )
        except BinanceError as err:
            if err.code not in (-2011, -2013):
                raise
            if await self.query(client_order_id) is None:
                raise
            return  # already filled, canceled or expired
        live = self._flow.live.get(client_order_id)
        if live is not None:
            try:
                report = read_order(body, live.base)
            except ValueError:
                self.stats["malformed"] += 1
                return
            self._flow.finish(
                live, OrderState.CANCELED, RejectReason.NONE, report.filled_qty, report.avg_price
            )

    async def open_orders(self, client: int) -> list[OrderStatus]:
        """The client's open orders at the venue (all symbols)."""
        if client not in self._keys:
            raise BinanceError(-2015, f"no API key for client {client}")
        body = await self._rest.call(
            "GET",
            "/api/v3/openOrders",
            client=client,
            weight_key="GET /api/v3/openOrders?all-symbols",
            retry_unknown=True,
        )
        if not isinstance(body, list):
            self.stats["malformed"] += 1
            raise BinanceError("MALFORMED", "openOrders answer is not a list", retryable=True)
        out: list[OrderStatus] = []
        for row in body:
            symbol = row.get("symbol") if isinstance(row, Mapping) else None
            inst = self.symbols.instrument_of(symbol) if isinstance(symbol, str) else None
            if inst is None:
                self.stats["unknown_symbol"] += 1
                continue
            try:
                report = read_order(row, self.symbols.base[inst] or "")
            except ValueError:
                self.stats["malformed"] += 1
                continue
            self._known.setdefault(report.client_order_id, (client, inst))
            out.append(self._status(client, inst, report, None))
        return out

    async def _accounts(self) -> list[tuple[int, list[Mapping[str, object]]]]:
        """Every client's balances (`GET /api/v3/account`, weight 20 each)."""
        gate = asyncio.Semaphore(min(self._max_in_flight, ACCOUNT_READS_IN_FLIGHT))

        async def one(client: int) -> tuple[int, list[Mapping[str, object]]]:
            async with gate:
                body = await self._rest.call(
                    "GET",
                    "/api/v3/account",
                    {"omitZeroBalances": "true"},
                    client=client,
                    retry_unknown=True,
                )
            rows = body.get("balances") if isinstance(body, Mapping) else None
            if not isinstance(rows, list):
                self.stats["malformed"] += 1
                raise BinanceError("MALFORMED", "account answer has no balances", retryable=True)
            return client, [r for r in rows if isinstance(r, Mapping)]

        return list(await asyncio.gather(*(one(c) for c in sorted(self._keys))))

    @staticmethod
    def _holding(row: Mapping[str, object]) -> tuple[str, float]:
        """(asset, free + locked) of one balance row."""
        asset = row.get("asset")
        total = number(row.get("free", "0")) + number(row.get("locked", "0"))
        return (asset if isinstance(asset, str) else ""), total

    async def positions(self) -> PositionBook:
        """Base-asset holdings (free + locked) of every client, as positions."""
        clients: list[int] = []
        instruments: list[int] = []
        quantities: list[float] = []
        for client, rows in await self._accounts():
            for row in rows:
                asset, qty = self._holding(row)
                inst = self.symbols.by_base.get(asset)
                if inst is not None and qty != 0.0:
                    clients.append(client)
                    instruments.append(inst)
                    quantities.append(qty)
        book = PositionBook(self._key_clients)
        book.add(clients, instruments, quantities)
        return book

    async def balances(self) -> Balances:
        """USD cash (USDT and other dollar coins, free + locked) of every client."""
        cash: dict[int, float] = {}
        for client, rows in await self._accounts():
            total = 0.0
            for row in rows:
                asset, qty = self._holding(row)
                if asset in USD_ASSETS:
                    total += qty
            cash[client] = total
        clients = np.array(sorted(cash), np.int32)
        return Balances(
            client=clients, cash=np.array([cash[c] for c in clients.tolist()], np.float64)
        )
