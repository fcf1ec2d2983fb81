"""One simulated venue on the wall clock: the matching core behind the protocol servers.

`SimExchange` wraps the in-process `SimVenue` (accounts, fills across the half spread, buying
power and position checks, fees) with what a venue's wire protocol needs and `SimVenue` does not
keep: the venue's own order ids, any client order id a client chooses (checked against the
venue's id rule and duplicate scope), limit orders that rest until the market reaches them, cash
locked by resting buys, order events for the venue's streams, and a last price per instrument
(`mark`), fed by the server's own market or by the engine's feed.

Every refusal decided on receipt raises `OrderRefusedError` with the normalised reason, so that each
protocol can answer it in its own words and status code, synchronously, as the real venue does;
refusals decided at fill time (buying power, position) arrive as REJECTED events.

Threading: single asyncio loop. `run()` is the clock: it releases what the matching delay made
due and publishes each change to the subscribers' queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from tickwise.model.instruments import InstrumentRegistry, Venue
from tickwise.model.orders import (
    COID_DTYPE,
    ExecutionBatch,
    OrderBatch,
    OrderState,
    RejectReason,
    Side,
)
from tickwise.venues.capabilities import (
    CAPABILITIES,
    OrderType,
    TimeInForce,
    VenueCapabilities,
)
from tickwise.venues.sim.config import (
    SIM_DEFAULTS,
    DuplicateIdScope,
    SimVenueConfig,
    venue_reject_text,
)
from tickwise.venues.sim.venue import SimVenue

EVENT_QUEUE_LIMIT = 100_000  # a subscriber that falls this far behind loses events (counted)
_IDLE_S = 0.25  # the clock's longest sleep when nothing is in flight


class OrderRefusedError(Exception):
    """The venue refuses an order on receipt; `reason` normalised, `code`/`text` the venue's."""

    def __init__(self, venue: Venue, reason: RejectReason, detail: str = "") -> None:
        code, text = venue_reject_text(venue, reason)
        super().__init__(f"{venue.label} refuses the order: {detail or text}")
        self.venue = venue
        self.reason = reason
        self.code = code
        self.text = detail or text


class OrderNotFoundError(KeyError):
    """No order with this id for this account."""


@dataclass(slots=True)
class SimOrder:
    """One order as the venue knows it. Protocols render it in their own format."""

    order_id: int
    client: int
    instrument: int
    side: Side
    qty: float
    order_type: OrderType
    time_in_force: TimeInForce
    limit_price: float  # NaN for market orders
    client_order_id: str
    created_ns: int
    state: OrderState = OrderState.ACKED
    reason: RejectReason = RejectReason.NONE
    filled_qty: float = 0.0
    avg_fill_price: float = 0.0
    fee: float = 0.0
    updated_ns: int = 0
    venue_message: str = ""
    key: bytes = b""  # the id it travels under inside the matching core
    in_matching: bool = False  # handed to the matching core, outcome pending
    locked: float = 0.0  # cash held for a resting buy

    @property
    def open(self) -> bool:
        return not self.state.terminal

    @property
    def notional(self) -> float:
        return self.filled_qty * self.avg_fill_price


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """A change of one order, as a venue's order stream reports it.

    `kind`: "new" (accepted, working), "fill", "canceled", "rejected", "expired".
    `order` is a snapshot taken when the event happened.
    """

    kind: str
    order: SimOrder
    ts_ns: int


_TERMINAL_EVENT = {
    OrderState.FILLED: "fill",
    OrderState.REJECTED: "rejected",
    OrderState.CANCELED: "canceled",
    OrderState.EXPIRED: "expired",
}


class SimExchange:
    """Accounts, orders and prices of one venue, for protocol servers (see module doc)."""

    def __init__(
        self,
        venue: Venue,
        registry: InstrumentRegistry,
        clients: npt.ArrayLike,
        initial_cash: npt.ArrayLike,
        config: SimVenueConfig | None = None,
        seed: int = 0,
    ) -> None:
        self.venue = venue
        self.registry = registry
        self.capabilities: VenueCapabilities = CAPABILITIES[venue]
        self.config = config or SimVenueConfig()
        self._sim = SimVenue(venue, registry, clients, initial_cash, self.config, seed)
        self._scope = SIM_DEFAULTS[venue].duplicate_id_scope
        self._price = np.full(len(registry), np.nan)
        self._price_ns = np.zeros(len(registry), np.int64)
        self._ids = itertools.count(1)
        self._orders: dict[int, SimOrder] = {}
        self._by_key: dict[bytes, SimOrder] = {}
        self._by_coid: dict[tuple[int, str], list[SimOrder]] = {}
        self._by_client: dict[int, list[SimOrder]] = {}
        self._resting: dict[int, SimOrder] = {}
        self._locked: dict[int, float] = {}
        self._subscribers: dict[int | None, set[asyncio.Queue[OrderEvent]]] = {}
        self._wake = asyncio.Event()
        self._settled: dict[int, asyncio.Event] = {}
        self._outbox: list[tuple[SimOrder, float, int]] = []
        self.events_dropped = 0
        self.orders_received = 0

    # -- market ----------------------------------------------------------------------------

    def mark(
        self, instrument: npt.ArrayLike, price: npt.ArrayLike, ts_ns: int | None = None
    ) -> None:
        """Record last prices (the last of each instrument wins) and fill resting limits that
        the new prices reach."""
        inst = np.asarray(instrument, dtype=np.intp).ravel()
        px = np.asarray(price, dtype=np.float64).ravel()
        ok = (inst >= 0) & (inst < self._price.size) & np.isfinite(px) & (px > 0)
        self._price[inst[ok]] = px[ok]
        self._price_ns[inst[ok]] = time.time_ns() if ts_ns is None else ts_ns
        if self._resting:
            touched = set(np.unique(inst[ok]).tolist())
            for order in list(self._resting.values()):
                if order.instrument in touched and self._marketable(order):
                    self._send_to_matching(order, time.time_ns())

    def price(self, instrument: int) -> float:
        """The last price of an instrument (NaN before the first)."""
        return float(self._price[instrument])

    # -- orders ----------------------------------------------------------------------------

    def submit(
        self,
        client: int,
        instrument: int,
        side: Side,
        qty: float,
        client_order_id: str,
        order_type: OrderType = OrderType.MARKET,
        time_in_force: TimeInForce = TimeInForce.DAY,
        limit_price: float = math.nan,
        now_ns: int | None = None,
    ) -> SimOrder:
        """Take an order, or raise `OrderRefusedError` for what the venue refuses on receipt."""
        now = time.time_ns() if now_ns is None else now_ns
        self.orders_received += 1
        refuse = self._refusal(client, instrument, side, qty, client_order_id, order_type)
        if refuse is not None:
            raise refuse
        if order_type is OrderType.LIMIT and not (math.isfinite(limit_price) and limit_price > 0):
            raise OrderRefusedError(self.venue, RejectReason.VENUE_ERROR, "limit price required")
        reference = limit_price if order_type is OrderType.LIMIT else self.price(instrument)
        if not math.isfinite(reference):
            raise OrderRefusedError(
                self.venue, RejectReason.VENUE_ERROR, "no market price for this symbol yet"
            )
        probe = self._batch([client], [instrument], [int(side)], [qty], [reference], now)
        reason = RejectReason(int(self._sim.static_rejects(probe)[0]))
        if reason is not RejectReason.NONE:
            raise OrderRefusedError(self.venue, reason)
        order_id = next(self._ids)
        order = SimOrder(
            order_id=order_id,
            client=client,
            instrument=instrument,
            side=side,
            qty=float(qty),
            order_type=order_type,
            time_in_force=time_in_force,
            limit_price=float(limit_price) if order_type is OrderType.LIMIT else math.nan,
            client_order_id=client_order_id,
            created_ns=now,
            updated_ns=now,
            key=f"S{order_id:017d}".encode("ascii"),
        )
        if order_type is OrderType.LIMIT and side is Side.BUY and not self._marketable(order):
            need = order.qty * order.limit_price
            if need > self._sim.cash_of(client) - self._locked.get(client, 0.0) + 1e-9:
                raise OrderRefusedError(self.venue, RejectReason.INSUFFICIENT_BUYING_POWER)
        self._remember(order)
        self._publish("new", order, now)
        if self._marketable(order):
            self._send_to_matching(order, now)
        elif time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
            self._finish(order, OrderState.EXPIRED, now)
        else:
            self._rest(order)
        return order

    def cancel(
        self, client: int, *, client_order_id: str | None = None, order_id: int | None = None
    ) -> SimOrder:
        """Cancel an open order of `client`; a terminal one comes back unchanged.

        Raises `OrderNotFoundError` if the account has no such order. An order already handed to
        the matching core is canceled there if it has not been matched yet."""
        order = self.find(client, client_order_id=client_order_id, order_id=order_id)
        if order is None:
            raise OrderNotFoundError(client_order_id or order_id)
        if order.state.terminal:
            return order
        now = time.time_ns()
        if order.in_matching:
            # The matching core answers a canceled order as CANCELED when it comes due.
            self._sim_cancel(order)
            return order
        self._unrest(order)
        self._finish(order, OrderState.CANCELED, now)
        return order

    def find(
        self, client: int, *, client_order_id: str | None = None, order_id: int | None = None
    ) -> SimOrder | None:
        """The account's order by venue id or client order id (the newest with that id)."""
        if order_id is not None:
            order = self._orders.get(int(order_id))
            return order if order is not None and order.client == client else None
        if client_order_id is not None:
            same = self._by_coid.get((client, client_order_id))
            return same[-1] if same else None
        return None

    def orders_of(self, client: int, *, open_only: bool = False) -> list[SimOrder]:
        """The account's orders, oldest first."""
        orders = self._by_client.get(client, [])
        return [o for o in orders if o.open] if open_only else list(orders)

    async def settled(self, order: SimOrder, timeout_s: float) -> SimOrder:
        """Wait until `order` is terminal or resting (no longer in the matching core)."""
        if not order.in_matching:
            return order
        event = self._settled.setdefault(order.order_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout_s)
        return order

    # -- accounts --------------------------------------------------------------------------

    def has_account(self, client: int) -> bool:
        return self._sim.has_account(client)

    def cash(self, client: int) -> float:
        return self._sim.cash_of(client)

    def locked(self, client: int) -> float:
        """Cash held by the account's resting buy orders."""
        return self._locked.get(client, 0.0)

    def positions(self, client: int) -> dict[int, float]:
        return self._sim.positions_of(client)

    def held_by_open_sells(self, client: int, instrument: int) -> float:
        """Quantity the account's open sell orders hold (not available to sell again)."""
        return sum(
            o.qty - o.filled_qty
            for o in self._by_client.get(client, [])
            if o.open and o.side is Side.SELL and o.instrument == instrument
        )

    # -- streams ---------------------------------------------------------------------------

    def subscribe(self, client: int | None = None) -> asyncio.Queue[OrderEvent]:
        """A queue of the order events of one account (or of every account with None)."""
        queue: asyncio.Queue[OrderEvent] = asyncio.Queue(EVENT_QUEUE_LIMIT)
        self._subscribers.setdefault(client, set()).add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[OrderEvent]) -> None:
        for queues in self._subscribers.values():
            queues.discard(queue)

    # -- the clock -------------------------------------------------------------------------

    async def run(self) -> None:
        """Release what is due, forever (cancel the task to stop)."""
        while True:
            self.step(time.time_ns())
            due = self._sim.next_due_ns
            if self._sim.pending() == 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), _IDLE_S)
                continue
            await asyncio.sleep(max(0.0, min(_IDLE_S, (due - time.time_ns()) / 1e9)))

    def step(self, now_ns: int) -> int:
        """Apply every outcome the matching core has due at `now_ns`; returns how many."""
        self._flush_outbox()
        execs: ExecutionBatch = self._sim.poll(now_ns)
        for row in range(len(execs)):
            order = self._by_key.get(bytes(execs.client_order_id[row]))
            if order is None:
                continue
            order.in_matching = False
            state = OrderState(int(execs.state[row]))
            if state is OrderState.FILLED:
                price = float(execs.fill_price[row])
                if order.order_type is OrderType.LIMIT:
                    # The fill never goes through the limit (the half spread can't push it).
                    limit = order.limit_price
                    price = min(price, limit) if order.side is Side.BUY else max(price, limit)
                order.filled_qty = order.qty
                order.avg_fill_price = price
                order.fee = float(execs.fee[row])
            order.reason = RejectReason(int(execs.reason[row]))
            if order.reason is not RejectReason.NONE:
                order.venue_message = self._sim.venue_message(order.reason)
            self._finish(order, state, now_ns)
        return len(execs)

    # -- internals -------------------------------------------------------------------------

    def _refusal(
        self,
        client: int,
        instrument: int,
        side: Side,
        qty: float,
        coid: str,
        order_type: OrderType,
    ) -> OrderRefusedError | None:
        venue = self.venue
        if not self._sim.has_account(client):
            return OrderRefusedError(venue, RejectReason.VENUE_ERROR, "account not found")
        if not 0 <= instrument < len(self.registry):
            return OrderRefusedError(venue, RejectReason.UNKNOWN_SYMBOL)
        if order_type not in (OrderType.MARKET, OrderType.LIMIT):
            return OrderRefusedError(venue, RejectReason.VENUE_ERROR, "order type not supported")
        if side not in (Side.BUY, Side.SELL) or not (math.isfinite(qty) and qty > 0):
            return OrderRefusedError(venue, RejectReason.VENUE_ERROR, "invalid side or quantity")
        if not self.capabilities.accepts_client_order_id(coid):
            return OrderRefusedError(venue, RejectReason.VENUE_ERROR, "invalid client order id")
        same = self._by_coid.get((client, coid), [])
        if self._scope is DuplicateIdScope.ACCOUNT_HISTORY and same:
            return OrderRefusedError(venue, RejectReason.DUPLICATE_CLIENT_ORDER_ID)
        if self._scope is DuplicateIdScope.OPEN_ORDERS and any(o.open for o in same):
            return OrderRefusedError(venue, RejectReason.DUPLICATE_CLIENT_ORDER_ID)
        return None

    def _batch(
        self,
        client: list[int],
        instrument: list[int],
        side: list[int],
        qty: list[float],
        price: list[float],
        now: int,
        keys: list[bytes] | None = None,
    ) -> OrderBatch:
        n = len(client)
        stamp = np.full(n, now, np.int64)
        return OrderBatch(
            client_order_id=np.array(keys or [b"S" + b"0" * 17] * n, dtype=COID_DTYPE),
            signal_id=np.zeros(n, np.int64),
            client=np.array(client, np.int32),
            venue=np.full(n, int(self.venue), np.uint8),
            instrument=np.array(instrument, np.uint32),
            side=np.array(side, np.int8),
            qty=np.array(qty, np.float64),
            price=np.array(price, np.float64),
            ts_event=stamp,
            ts_recv=stamp,
            ts_signal=stamp,
            ts_alloc=stamp,
            ts_journal=stamp,
            ts_sent=stamp.copy(),
        )

    def _marketable(self, order: SimOrder) -> bool:
        if order.order_type is OrderType.MARKET:
            return True
        last = self.price(order.instrument)
        if not math.isfinite(last):
            return False
        return last <= order.limit_price if order.side is Side.BUY else last >= order.limit_price

    def _send_to_matching(self, order: SimOrder, now: int) -> None:
        """Hand an order to the matching core: at once without a running loop, else gathered
        with the others of this loop turn into one batch (the core works on columns)."""
        self._unrest(order)
        price = self.price(order.instrument)
        if not math.isfinite(price):
            price = order.limit_price
        order.in_matching = True
        self._outbox.append((order, price, now))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._flush_outbox()
            return
        if len(self._outbox) == 1:
            loop.call_soon(self._flush_outbox)

    def _flush_outbox(self) -> None:
        if not self._outbox:
            return
        items, self._outbox = self._outbox, []
        batch = self._batch(
            [o.client for o, _, _ in items],
            [o.instrument for o, _, _ in items],
            [int(o.side) for o, _, _ in items],
            [o.qty for o, _, _ in items],
            [p for _, p, _ in items],
            items[0][2],
            [o.key for o, _, _ in items],
        )
        batch.ts_sent = np.array([t for _, _, t in items], np.int64)
        self._sim.accept(batch)
        self._wake.set()

    def _sim_cancel(self, order: SimOrder) -> None:
        self._flush_outbox()  # it may still wait for this loop turn's batch
        self._sim.cancel_in_flight(order.key)

    def _rest(self, order: SimOrder) -> None:
        self._resting[order.order_id] = order
        if order.side is Side.BUY:
            order.locked = order.qty * order.limit_price
            self._locked[order.client] = self._locked.get(order.client, 0.0) + order.locked

    def _unrest(self, order: SimOrder) -> None:
        if self._resting.pop(order.order_id, None) is not None and order.locked:
            left = self._locked.get(order.client, 0.0) - order.locked
            self._locked[order.client] = max(0.0, left)
            order.locked = 0.0

    def _remember(self, order: SimOrder) -> None:
        self._orders[order.order_id] = order
        self._by_key[order.key] = order
        self._by_coid.setdefault((order.client, order.client_order_id), []).append(order)
        self._by_client.setdefault(order.client, []).append(order)

    def _finish(self, order: SimOrder, state: OrderState, now: int) -> None:
        order.state = state
        order.updated_ns = now
        self._publish(_TERMINAL_EVENT.get(state, "new"), order, now)
        event = self._settled.pop(order.order_id, None)
        if event is not None:
            event.set()

    def _publish(self, kind: str, order: SimOrder, now: int) -> None:
        if not self._subscribers:
            return
        event = OrderEvent(kind, replace(order), now)
        for queue in self._queues_of(order.client):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self.events_dropped += 1

    def _queues_of(self, client: int) -> Iterator[asyncio.Queue[OrderEvent]]:
        yield from self._subscribers.get(client, ())
        yield from self._subscribers.get(None, ())
