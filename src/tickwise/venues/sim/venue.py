"""An in-process Alpaca, Binance or E*Trade: "just another venue" behind `VenueClient`.

It keeps its own accounts (cash per client and a `PositionBook`), so that reconciling the ledger
against it checks something real. An order sent at `ts_sent` is answered after the venue's delay
plus jitter: refused on receipt if the venue's static rules say so (symbol, increment, minimum
notional, duplicate id), otherwise filled at the prevailing price across the half spread, or
refused for buying power or position at that moment. `poll` releases what is due.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import numpy.typing as npt

from tickwise.model.ids import ClientOrderId
from tickwise.model.instruments import AssetClass, InstrumentRegistry, Venue
from tickwise.model.orders import (
    COID_DTYPE,
    ExecutionBatch,
    OrderBatch,
    OrderState,
    RejectReason,
    Side,
)
from tickwise.model.positions import PositionBook
from tickwise.venues.base import Balances, OrderStatus, VenueError
from tickwise.venues.sim.checks import ClientOrderIdRule, VenueRulebook, account_keys
from tickwise.venues.sim.config import (
    SIM_DEFAULTS,
    VENUE_ORDER_NOT_FOUND,
    SimVenueConfig,
    venue_reject_text,
)
from tickwise.venues.sim.fills import fill_in_arrival_order, fill_prices

_NO_DUE = np.iinfo(np.int64).max


class SimVenue:
    """A simulated venue for a set of client accounts (implements `VenueClient`)."""

    def __init__(
        self,
        venue: Venue,
        registry: InstrumentRegistry,
        clients: npt.ArrayLike,
        initial_cash: npt.ArrayLike,
        config: SimVenueConfig | None = None,
        seed: int = 0,
    ) -> None:
        ids = np.asarray(clients, dtype=np.int32).ravel()
        cash = np.asarray(initial_cash, dtype=np.float64).ravel()
        if ids.shape != cash.shape:
            raise ValueError("clients and initial_cash must have the same length")
        if np.unique(ids).size != ids.size:
            raise ValueError("client ids must be unique")
        if not (np.isfinite(cash).all() and (cash >= 0).all()):
            raise ValueError("initial cash must be finite and >= 0")
        order = np.argsort(ids, kind="stable")
        self.venue = venue
        self.config = config or SimVenueConfig()
        self._client = ids[order]
        self._cash = cash[order].copy()
        self._book = PositionBook(self._client)
        self._rules = VenueRulebook(venue, registry, self.config.qty_tolerance)
        self._ids = ClientOrderIdRule(SIM_DEFAULTS[venue].duplicate_id_scope)
        self._tick = registry.tick_size
        crypto = registry.asset_class == AssetClass.CRYPTO
        self._half_spread = np.where(
            crypto,
            self.config.half_spread(AssetClass.CRYPTO),
            self.config.half_spread(AssetClass.EQUITY),
        )
        self._delay_ns = int(self.config.delay_ms(venue) * 1e6)
        self._jitter_ns = self.config.jitter_ms * 1e6
        self._fee_rate = self.config.fee_rate(venue)
        self._rng = np.random.default_rng(seed)
        self._seq = 0
        self._pending = _PendingOrders()
        self._history: list[tuple[ExecutionBatch, npt.NDArray[np.float64]]] = []
        self._index_ids = np.empty(0, dtype=COID_DTYPE)  # see `_index_history`
        self._index_batch = np.empty(0, dtype=np.int32)
        self._index_row = np.empty(0, dtype=np.int32)
        self._indexed = 0
        self.reject_counts: Counter[RejectReason] = Counter()
        self._warm_up()

    def _warm_up(self) -> None:
        """Load the fill kernel now (numba's cache, or a compile): its first call in a process
        takes 0.3-0.5 s alone and over a second on a busy machine, and the orders of the
        venue's first answer would wait for it (the first second of every `dev` bench run:
        3 % of its orders answered 1.2 s late)."""
        f8 = np.empty(0, np.float64)
        ix = np.empty(0, np.intp)
        fill_in_arrival_order(
            np.empty(0, np.bool_), ix, ix, np.empty(0, np.int8), f8, f8, f8, f8, f8, f8
        )

    # -- VenueClient -----------------------------------------------------------------------

    async def submit(self, orders: OrderBatch) -> None:
        """Take a batch for sending (see `accept`); never raises for a single order."""
        self.accept(orders)

    def accept(self, orders: OrderBatch) -> None:
        """Receive a batch: decide static refusals and duplicate ids, schedule the answers."""
        n = len(orders)
        if n == 0:
            return
        rows = np.searchsorted(self._client, orders.client)
        known = rows < self._client.size
        known[known] = self._client[rows[known]] == orders.client[known]
        reason = self._rules.static_rejects(orders, known)
        keys = account_keys(orders.client, orders.client_order_id)
        duplicate = self._ids.claim(keys, reason == RejectReason.NONE)
        reason[duplicate] = RejectReason.DUPLICATE_CLIENT_ORDER_ID
        jitter = self._rng.random(n) * self._jitter_ns
        due = orders.ts_sent + self._delay_ns + jitter.astype(np.int64)
        seq = np.arange(self._seq, self._seq + n, dtype=np.int64)
        self._seq += n
        self._pending.append(orders, due, seq, reason, keys)

    def poll(self, now_ns: int) -> ExecutionBatch:
        """Every outcome due at or before `now_ns`, in arrival order, stamped `ts_ack=now_ns`."""
        if now_ns < self._pending.next_due:
            return ExecutionBatch.empty()
        due = self._pending.pop_due(now_ns)
        orders = due.orders
        n = len(orders)
        passed = due.reason == RejectReason.NONE
        eligible = passed & ~due.canceled
        inst = np.where(passed, orders.instrument, 0).astype(np.intp)
        account = np.searchsorted(self._client, orders.client).astype(np.intp)
        account[~passed] = 0
        slot = np.zeros(n, np.intp)
        if eligible.any():
            slot[eligible] = self._book.slots(orders.client[eligible], orders.instrument[eligible])
        price = fill_prices(orders.price, orders.side, self._half_spread[inst], self._tick[inst])
        notional = orders.qty * price
        fee = notional * self._fee_rate
        fill_reject = fill_in_arrival_order(
            eligible,
            account,
            slot,
            orders.side,
            orders.qty,
            notional,
            fee,
            self._cash,
            self._book.quantities,
            self._rules.increment[inst],
        )
        reason = np.where(passed, fill_reject, due.reason).astype(np.int8)
        filled = eligible & (fill_reject == RejectReason.NONE)
        state = np.full(n, OrderState.REJECTED, np.int8)
        state[filled] = OrderState.FILLED
        state[passed & due.canceled] = OrderState.CANCELED
        self._ids.release(due.keys[passed])
        execs = ExecutionBatch(
            client_order_id=orders.client_order_id,
            signal_id=orders.signal_id,
            client=orders.client,
            venue=orders.venue,
            instrument=orders.instrument,
            side=orders.side,
            state=state,
            reason=reason,
            fill_qty=np.where(filled, orders.qty, 0.0),
            fill_price=np.where(filled, price, 0.0),
            fee=np.where(filled, fee, 0.0),
            ts_event=orders.ts_event,
            ts_recv=orders.ts_recv,
            ts_sent=orders.ts_sent,
            ts_ack=np.full(n, now_ns, np.int64),
        )
        codes, counts = np.unique(reason[reason != RejectReason.NONE], return_counts=True)
        for code, count in zip(codes.tolist(), counts.tolist(), strict=True):
            self.reject_counts[RejectReason(code)] += count
        self._history.append((execs, orders.qty))
        return execs

    async def cancel(self, client_order_id: ClientOrderId) -> None:
        """Cancel an order still in flight; a no-op for one already answered."""
        target = client_order_id.encode("ascii")
        if self.cancel_in_flight(target):
            return
        if self._find_in_history(target) is None:
            code, text = VENUE_ORDER_NOT_FOUND[self.venue]
            raise VenueError(self.venue, code, text)

    async def query(self, client_order_id: ClientOrderId) -> OrderStatus | None:
        """The order's status by client order id, or None if this venue never saw it."""
        target = client_order_id.encode("ascii")
        live = self._pending.working_rows(self._pending.orders.client_order_id == target)
        if live.size:
            return self._working_status(int(live[-1]))
        return self._find_in_history(target)

    async def open_orders(self, client: int) -> list[OrderStatus]:
        """Orders of `client` sent but not yet answered (market orders fill on arrival)."""
        rows = self._pending.working_rows(self._pending.orders.client == client)
        return [self._working_status(int(r)) for r in rows]

    async def positions(self) -> PositionBook:
        return self._book.copy()

    async def balances(self) -> Balances:
        return Balances(client=self._client.copy(), cash=self._cash.copy())

    def working(self) -> list[tuple[str, int, int]]:
        """(client order id, client, instrument) of every order sent here without an outcome
        yet: what a kill switch with `cancel_open` asks the venue to cancel."""
        pending = self._pending
        rows = pending.working_rows(~pending.canceled)
        orders = pending.orders
        return [
            (
                bytes(orders.client_order_id[r]).decode("ascii"),
                int(orders.client[r]),
                int(orders.instrument[r]),
            )
            for r in rows
        ]

    def pending(self) -> int:
        return len(self._pending.orders)

    # -- single-account views (the protocol servers answer one account at a time) ----------

    def static_rejects(self, orders: OrderBatch) -> npt.NDArray[np.int8]:
        """What `accept` would refuse on receipt, decided now, without taking the orders."""
        rows = np.searchsorted(self._client, orders.client)
        known = rows < self._client.size
        known[known] = self._client[rows[known]] == orders.client[known]
        return self._rules.static_rejects(orders, known)

    def cancel_in_flight(self, client_order_id: bytes) -> bool:
        """Mark orders still in flight with this id canceled (answered CANCELED when due);
        False when none is in flight."""
        return self._pending.cancel(client_order_id)

    def has_account(self, client: int) -> bool:
        row = int(np.searchsorted(self._client, client))
        return row < self._client.size and int(self._client[row]) == client

    def cash_of(self, client: int) -> float:
        """One account's cash in USD (KeyError if it has no account here)."""
        if not self.has_account(client):
            raise KeyError(f"client {client} has no account here")
        return float(self._cash[int(np.searchsorted(self._client, client))])

    def positions_of(self, client: int) -> dict[int, float]:
        """One account's non-flat positions as {instrument: qty}."""
        return self._book.of_client(client)

    @property
    def next_due_ns(self) -> int:
        """When the earliest order in flight is due (a huge number when none is)."""
        return self._pending.next_due

    # -- helpers ---------------------------------------------------------------------------

    def venue_message(self, reason: RejectReason) -> str:
        """The venue's own text for a reject reason, as the journal should show it."""
        code, text = venue_reject_text(self.venue, reason)
        return f"{code} {text}"

    def _working_status(self, row: int) -> OrderStatus:
        p = self._pending
        o = p.orders
        state = OrderState.CANCELED if p.canceled[row] else OrderState.ACKED
        return OrderStatus(
            client_order_id=ClientOrderId(o.client_order_id[row].decode("ascii")),
            venue=self.venue,
            client=int(o.client[row]),
            instrument=int(o.instrument[row]),
            side=Side(int(o.side[row])),
            qty=float(o.qty[row]),
            state=state,
            reason=RejectReason.NONE,
            filled_qty=0.0,
            avg_fill_price=0.0,
            fee=0.0,
        )

    def _find_in_history(self, target: bytes) -> OrderStatus | None:
        """The newest answered order with this id, preferring one that was not a duplicate."""
        self._index_history()
        lo = int(np.searchsorted(self._index_ids, target, side="left"))
        hi = int(np.searchsorted(self._index_ids, target, side="right"))
        fallback: OrderStatus | None = None
        # Entries of one id are in answer order (a stable sort of the history): newest last.
        for k in range(hi - 1, lo - 1, -1):
            execs, qty = self._history[int(self._index_batch[k])]
            status = self._answered_status(execs, qty, int(self._index_row[k]))
            if status.reason is not RejectReason.DUPLICATE_CLIENT_ORDER_ID:
                return status
            fallback = fallback or status
        return fallback

    def _index_history(self) -> None:
        """Bring the id index of the answered orders up to date: look-ups (reconciliation after
        a failure, thousands at once) are a binary search, not a scan of the whole history. The
        index grows only when asked, so the live path never pays for it."""
        if self._indexed == len(self._history):
            return
        fresh = self._history[self._indexed :]
        ids = [execs.client_order_id for execs, _ in fresh]
        batch = [np.full(len(e), self._indexed + i, np.int32) for i, (e, _) in enumerate(fresh)]
        rows = [np.arange(len(e), dtype=np.int32) for e, _ in fresh]
        all_ids = np.concatenate([self._index_ids, *ids])
        all_batch = np.concatenate([self._index_batch, *batch])
        all_rows = np.concatenate([self._index_row, *rows])
        order = np.argsort(all_ids, kind="stable")
        self._index_ids = all_ids[order]
        self._index_batch = all_batch[order]
        self._index_row = all_rows[order]
        self._indexed = len(self._history)

    def _answered_status(
        self, execs: ExecutionBatch, qty: npt.NDArray[np.float64], row: int
    ) -> OrderStatus:
        reason = RejectReason(int(execs.reason[row]))
        return OrderStatus(
            client_order_id=ClientOrderId(execs.client_order_id[row].decode("ascii")),
            venue=self.venue,
            client=int(execs.client[row]),
            instrument=int(execs.instrument[row]),
            side=Side(int(execs.side[row])),
            qty=float(qty[row]),
            state=OrderState(int(execs.state[row])),
            reason=reason,
            filled_qty=float(execs.fill_qty[row]),
            avg_fill_price=float(execs.fill_price[row]),
            fee=float(execs.fee[row]),
            venue_message="" if reason is RejectReason.NONE else self.venue_message(reason),
        )


class _DueOrders:
    """The orders released by one poll, in arrival order, with what `accept` decided."""

    __slots__ = ("canceled", "keys", "orders", "reason")

    def __init__(
        self,
        orders: OrderBatch,
        reason: npt.NDArray[np.int8],
        keys: npt.NDArray[np.bytes_],
        canceled: npt.NDArray[np.bool_],
    ) -> None:
        self.orders = orders
        self.reason = reason
        self.keys = keys
        self.canceled = canceled


class _PendingOrders:
    """Orders received but not yet answered, as columns (appended per batch, popped by time)."""

    def __init__(self) -> None:
        self.orders = OrderBatch.empty()
        self.due = np.empty(0, np.int64)
        self.seq = np.empty(0, np.int64)
        self.reason = np.empty(0, np.int8)
        self.keys: npt.NDArray[np.bytes_] = np.empty(0, "S1")
        self.canceled = np.empty(0, np.bool_)
        self.next_due = int(_NO_DUE)

    def append(
        self,
        orders: OrderBatch,
        due: npt.NDArray[np.int64],
        seq: npt.NDArray[np.int64],
        reason: npt.NDArray[np.int8],
        keys: npt.NDArray[np.bytes_],
    ) -> None:
        if len(self.orders) == 0:
            self.orders = orders.take(np.arange(len(orders)))
            self.due, self.seq, self.reason, self.keys = due, seq, reason, keys
            self.canceled = np.zeros(len(orders), np.bool_)
        else:
            self.orders = OrderBatch.concat([self.orders, orders])
            self.due = np.concatenate([self.due, due])
            self.seq = np.concatenate([self.seq, seq])
            self.reason = np.concatenate([self.reason, reason])
            self.keys = np.concatenate([self.keys, keys])
            self.canceled = np.concatenate([self.canceled, np.zeros(len(orders), np.bool_)])
        self.next_due = int(self.due.min())

    def pop_due(self, now_ns: int) -> _DueOrders:
        is_due = self.due <= now_ns
        rows = np.flatnonzero(is_due)
        rows = rows[np.lexsort((self.seq[rows], self.due[rows]))]
        out = _DueOrders(
            self.orders.take(rows), self.reason[rows], self.keys[rows], self.canceled[rows]
        )
        keep = ~is_due
        self.orders = self.orders.take(keep)
        self.due, self.seq = self.due[keep], self.seq[keep]
        self.reason = self.reason[keep]
        self.keys = self.keys[keep]
        self.canceled = self.canceled[keep]
        self.next_due = int(self.due.min()) if self.due.size else int(_NO_DUE)
        return out

    def working_rows(self, mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.intp]:
        """Rows in `mask` that the venue accepted (not refused on receipt), in arrival order."""
        rows = np.flatnonzero(mask & (self.reason == RejectReason.NONE))
        return rows[np.argsort(self.seq[rows], kind="stable")]

    def cancel(self, coid: bytes) -> bool:
        """Mark the working orders with this id canceled (idempotent); False if none."""
        rows = self.working_rows(self.orders.client_order_id == coid)
        self.canceled[rows] = True
        return bool(rows.size)
