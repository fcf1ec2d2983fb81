"""The allocator: turns per-instrument signals into market orders for every client holding the
instrument, sized, rounded and risk-checked, vectorised over clients.

At construction it precomputes, per instrument s, the clients holding s through any portfolio and
their coefficient coef[c, s] = sum_p alloc[c, p] * weight[p, s], in a CSR layout indexed by
instrument (`_ptr[s]:_ptr[s+1]` are s's entries, client rows ascending). Each entry also holds the
client's expected position, so one signal is one contiguous slice: ~30,000 clients in a few ms.

A signal is first checked as a whole, and refused for every holder at once (counted per signal):
unusable market data (`signals_invalid`: price, bid or ask not finite and positive, a crossed
book, an unknown instrument), a signal id seen before (`signals_replayed`: a replay would only
re-derive client order ids the journal already holds), market data older than
`max_quote_age_ms` at `now_ns` (`signals_stale`), a price outside the instrument's band around
the last accepted price (`signals_price_band`, `execution.price_band`). An accepted signal
(`signals_accepted`) marks its instrument at its price (`execution.daily_loss`) and fans out.

For an accepted signal (target weight w in [0, 1], price P) and a holder c (a `candidate`):
    target_qty = equity_c * coef[c, s] * w / P;  delta = target_qty - expected_position
rounded toward zero to the venue's quantity increment, then dropped under the rebalancing band
or the venue's minimum notional, sells capped at the position held (no shorts). What is left is
a trade the client needs; it is refused if the client, or a portfolio it holds s through, or the
whole desk is halted (`halted`, `set_halts`), refused if it is a buy and the client has lost more
than `max_daily_loss_pct` of its equity today (`risk_max_daily_loss`; sells, which only reduce a
long position, still go), then risk-checked (`execution.risk`): buys clipped to the max position
weight, orders over the max order notional rejected, buys clipped (or rejected, by config) to
the expected cash including a fee buffer. Every candidate ends as an order or under exactly one
counter (`at_target` when there is nothing to do); `COUNTER_REASONS` gives the `RejectReason`
of each refusal counter.

Expected positions and cash move optimistically when an order is created (buys reserve cash with
the fee buffer; sells credit their proceeds less the buffer); `apply_executions` settles each
fill at its real price and fee, and returns what a reject, cancel or expiry left unfilled. Sizing
uses the equity in the client book (fixed for the session), so a repeated signal after the
positions caught up yields no orders. An order that never reaches a terminal state keeps its
booking (and its place in the open-order table) until reconciliation reports its outcome through
`apply_executions`.

Clocks: `now_ns` is the caller's wall clock (the allocator actor passes `time.time_ns()`), and
the stale-data guard compares it with `ts_event`, the market-data time the feed stamped. The
generated market stamps ticks with the wall clock it is polled at, and the replay feed rewrites
recorded times to the wall time each tick was due (`restamp=True`, its default), so both are
fresh here. A replay that keeps the historical `ts_event` (`restamp=False`) needs the guard off
(`max_quote_age_ms = 0`), or every replayed signal is stale.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from tickwise.execution.daily_loss import DailyLoss
from tickwise.execution.holdings import build_holdings, entries_through
from tickwise.execution.price_band import PriceBand
from tickwise.execution.risk import (
    RISK_REASONS,
    below_band,
    below_min_notional,
    cap_sells_at_position,
    clip_to_buying_power,
    clip_to_max_position,
    exceeds_max_order_notional,
    market_data_usable,
    round_down_to_increment,
    stale,
)
from tickwise.model.clients import ClientBook, Portfolio
from tickwise.model.ids import client_order_ids
from tickwise.model.instruments import InstrumentRegistry, Venue
from tickwise.model.orders import COID_DTYPE, ExecutionBatch, OrderBatch, OrderState, RejectReason
from tickwise.model.signals import SignalBatch

_TERMINAL = np.array([s.terminal for s in OrderState], dtype=np.bool_)
# signals_* count signals (a refusal there refuses every holder at once); candidates and the
# counters after it count (client, instrument) pairs of accepted signals; executions_* count rows.
COUNTER_NAMES = (
    "signals",
    "signals_replayed",
    "signals_invalid",
    "signals_stale",
    "signals_price_band",
    "signals_accepted",
    "candidates",
    "orders",
    "at_target",
    "below_increment",
    "below_band",
    "below_min_notional",
    "halted",
    "risk_max_daily_loss",
    "risk_max_position_clipped",
    "risk_max_position",
    "risk_max_order_notional",
    "risk_buying_power_clipped",
    "risk_buying_power",
    "executions_unmatched",
    "late_fills_booked",
    "executions_replayed",
)
# The reason behind each counter that counts a refusal (the *_clipped ones still send an order).
COUNTER_REASONS: dict[str, RejectReason] = {
    "signals_stale": RISK_REASONS["stale_data"],
    "signals_price_band": RISK_REASONS["price_band"],
    "below_min_notional": RISK_REASONS["min_notional"],
    "halted": RISK_REASONS["halted"],
    "risk_max_daily_loss": RISK_REASONS["max_daily_loss"],
    "risk_max_position": RISK_REASONS["max_position"],
    "risk_max_order_notional": RISK_REASONS["max_order_notional"],
    "risk_buying_power": RISK_REASONS["buying_power"],
}


@dataclass(frozen=True, slots=True)
class AllocatorConfig:
    """`rebalance_band`: no order below this share of the client's equity.
    `fee_buffer_bps`: cash a buy reserves beyond its notional, for fees and slippage.
    `clip_to_buying_power`: scale buys down to the cash (True) or reject them (False).
    `remember_signals`: how many recent signal ids are kept to ignore replays.
    `price_band_pct`: refuse a signal whose price is further than this (percent) from the
    instrument's reference; `price_band_confirmations` refused signals agreeing on a new level
    move the reference there (`execution.price_band`). 0 disables the band.
    `max_quote_age_ms`: refuse a signal whose `ts_event` is older than this at `now_ns`; 0
    disables the guard.
    `max_daily_loss_pct`: no buys for a client whose loss today exceeds this percentage of its
    equity at the start of the day (`execution.daily_loss`); 0 disables the check."""

    rebalance_band: float = 0.0025
    fee_buffer_bps: float = 50.0
    clip_to_buying_power: bool = True
    remember_signals: int = 100_000
    price_band_pct: float = 10.0
    price_band_confirmations: int = 3
    max_quote_age_ms: float = 5_000.0
    max_daily_loss_pct: float = 5.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.rebalance_band < 1.0:
            raise ValueError("rebalance_band must be in [0, 1)")
        if not self.fee_buffer_bps >= 0:
            raise ValueError("fee_buffer_bps must be >= 0")
        if self.remember_signals < 1:
            raise ValueError("remember_signals must be >= 1")
        if not 0.0 <= self.price_band_pct < math.inf:
            raise ValueError("price_band_pct must be >= 0 (0 disables the band)")
        if self.price_band_confirmations < 1:
            raise ValueError("price_band_confirmations must be >= 1")
        if not 0.0 <= self.max_quote_age_ms < math.inf:
            raise ValueError("max_quote_age_ms must be >= 0 (0 disables the guard)")
        if not 0.0 <= self.max_daily_loss_pct <= 100.0:
            raise ValueError("max_daily_loss_pct must be in [0, 100] (0 disables the check)")

    @property
    def fee_buffer(self) -> float:
        return self.fee_buffer_bps / 10_000.0

    @property
    def price_band(self) -> float:
        return self.price_band_pct / 100.0

    @property
    def max_quote_age_ns(self) -> int:
        return round(self.max_quote_age_ms * 1_000_000)

    @property
    def max_daily_loss(self) -> float:
        return self.max_daily_loss_pct / 100.0


@dataclass(slots=True)
class _OpenOrders:
    """The orders one signal created that have not reached a terminal state."""

    instrument: int
    row: npt.NDArray[np.intp]  # client rows, ascending
    entry: npt.NDArray[np.intp]
    side: npt.NDArray[np.int8]
    qty: npt.NDArray[np.float64]
    cash_per_unit: npt.NDArray[np.float64]  # booked cash change per unit (buys < 0)
    filled: npt.NDArray[np.float64]
    done: npt.NDArray[np.bool_]
    open_count: int


class Allocator:
    """Per-client sizing and risk checks for one client range (one book), no Ray."""

    def __init__(
        self,
        book: ClientBook,
        portfolios: Sequence[Portfolio],
        registry: InstrumentRegistry,
        config: AllocatorConfig | None = None,
    ) -> None:
        self.config = config or AllocatorConfig()
        self.book = book
        self.registry = registry
        n_inst = len(registry)
        self._n_inst = n_inst
        self.portfolios = tuple(portfolios)
        self._holdings = holdings = build_holdings(book, portfolios, n_inst)
        self._ptr, self._row, self._coef = holdings.ptr, holdings.row, holdings.coef
        self._position = np.zeros(self._row.size, dtype=np.float64)
        self._cash = book.equity.astype(np.float64).copy()
        self._band = PriceBand(n_inst, self.config.price_band, self.config.price_band_confirmations)
        self._loss = DailyLoss(self._cash, n_inst, self.config.max_daily_loss)
        self._halt_all = False
        self._halted: npt.NDArray[np.bool_] | None = None  # per entry; None: nothing halted
        venues = list(Venue)
        self._increment = np.vstack([registry.quantity_increment(v) for v in venues])
        self._min_notional = np.vstack([registry.venue_min_notional(v) for v in venues])
        self._open: dict[int, _OpenOrders] = {}
        # After a restart: the fills restored from the store (sorted ids) and the late fills
        # booked since, so that no fill is booked twice (see `_book_late_fills`).
        self._restored = np.empty(0, dtype=COID_DTYPE)
        self._late: set[bytes] = set()
        self._was_restored = False
        self._seen: dict[int, None] = {}
        self.counters: dict[str, int] = dict.fromkeys(COUNTER_NAMES, 0)

    # --- inspection ----------------------------------------------------------------------------

    @property
    def entries(self) -> int:
        """(client, instrument) pairs held through any portfolio."""
        return int(self._row.size)

    def holders(self, instrument: int) -> npt.NDArray[np.int32]:
        """Client ids holding `instrument` through any portfolio."""
        lo, hi = self._ptr[instrument], self._ptr[instrument + 1]
        return self.book.client_id[self._row[lo:hi]]

    def coefficients(self, instrument: int) -> npt.NDArray[np.float64]:
        """coef[c, instrument] for each holder, aligned with `holders(instrument)`."""
        return self._coef[self._ptr[instrument] : self._ptr[instrument + 1]].copy()

    def expected_positions(self, instrument: int) -> npt.NDArray[np.float64]:
        """Expected position of each holder, aligned with `holders(instrument)`."""
        return self._position[self._ptr[instrument] : self._ptr[instrument + 1]].copy()

    def expected_cash(self) -> npt.NDArray[np.float64]:
        """Expected cash per client, aligned with `book.client_id`."""
        return self._cash.copy()

    def open_orders(self) -> int:
        return sum(o.open_count for o in self._open.values())

    def reference_prices(self) -> npt.NDArray[np.float64]:
        """The price band's reference per instrument (NaN before the first signal)."""
        return self._band.reference()

    def marks(self) -> npt.NDArray[np.float64]:
        """The price positions are marked at, per instrument: that of the last accepted signal
        (0 before the first one)."""
        return self._loss.marks()

    def equity(self) -> npt.NDArray[np.float64]:
        """Mark-to-market equity per client (expected cash + positions at the latest accepted
        signal prices), aligned with `book.client_id`."""
        return self._loss.equity(self._cash)

    def day_start_equity(self) -> npt.NDArray[np.float64]:
        """Each client's equity at the start of the trading day, aligned with `book.client_id`."""
        return self._loss.start_equity()

    # --- kill switch ---------------------------------------------------------------------------

    def set_halts(
        self, global_halt: bool, portfolios: Collection[int], clients: Collection[int]
    ) -> None:
        """Replace the halts; from the next `on_signals` no order is created for a halted
        client, for any client when `global_halt`, nor for a (client, instrument) pair the client
        holds through a halted portfolio. Ids this book does not know are ignored (every
        allocator gets the desk's whole list). Refused orders are counted as `halted`.

        A per-portfolio halt freezes the pairs the portfolio trades, netting included: a client
        holding an instrument through a halted portfolio and another one gets no order for it at
        all, while its instruments held only through other portfolios keep trading. The
        alternative, taking the halted portfolio's share out of the targets, would sell that
        share down on the next signal: a halt that trades is not what a desk means by a halt.
        Halting every client subscribed to the portfolio would stop unrelated portfolios too.
        Signals keep moving price references and marks while halted, so checks are current when
        trading resumes.
        """
        rows, known = self._known_rows(np.fromiter(clients, np.int64, count=len(clients)))
        client_halted = np.zeros(len(self.book), dtype=np.bool_)
        client_halted[rows[known]] = True
        halted = client_halted[self._row]
        if portfolios:
            halted |= entries_through(self._holdings, self.book, self.portfolios, portfolios)
        self._halt_all = bool(global_halt)
        self._halted = halted if halted.any() else None

    # --- recovery ------------------------------------------------------------------------------

    def restore(
        self,
        client: npt.ArrayLike,
        instrument: npt.ArrayLike,
        qty: npt.ArrayLike,
        cash: npt.ArrayLike | None = None,
    ) -> int:
        """Set expected positions (and optionally cash, aligned with `book.client_id`) from a
        rebuilt state, e.g. the store's positions from fills. Positions of clients outside this
        book or of instruments they hold through no portfolio are skipped; returns how many.
        The trading day restarts at the restored equity (the allocator cannot know what it was
        at the start of the day)."""
        rows, known = self._known_rows(np.asarray(client, dtype=np.int64))
        amounts = np.asarray(qty, dtype=np.float64)
        found, at = self._holdings.locate(
            np.where(known, rows, -1), np.asarray(instrument, dtype=np.int64)
        )
        self._position[at[found]] = amounts[found]
        if cash is not None:
            self._cash = np.asarray(cash, dtype=np.float64).copy()
        self._rebase_day()
        return int(found.size - found.sum())

    def restore_fills(self, fills: ExecutionBatch) -> int:
        """`restore` from recorded fills (rows with fill_qty > 0; others are ignored): expected
        positions are the net filled quantities and cash is the book's equity less what the
        fills cost, fees included. Returns how many positions could not be placed (see
        `restore`)."""
        filled = np.flatnonzero(fills.fill_qty > 0)
        client = fills.client[filled].astype(np.int64)
        signed = fills.side[filled] * fills.fill_qty[filled]
        keys = client * self._n_inst + fills.instrument[filled].astype(np.int64)
        unique, inverse = np.unique(keys, return_inverse=True)
        qty = np.bincount(inverse, weights=signed, minlength=unique.size)
        rows, known = self._known_rows(client)
        spent = signed * fills.fill_price[filled] + fills.fee[filled]
        cash = self.book.equity.astype(np.float64) - np.bincount(
            rows[known], weights=spent[known], minlength=len(self.book)
        )
        self._restored = np.sort(fills.client_order_id[filled])
        self._was_restored = True
        return self.restore(unique // self._n_inst, unique % self._n_inst, qty, cash)

    def _book_late_fills(self, execs: ExecutionBatch) -> int:
        """After `restore_fills`, fills of orders this allocator did not create (its previous
        life created them, or a settlement adopted or resent them): booked into expected
        positions and cash at their real price and fee, once per client order id; a fill the
        restored history already holds, or one of a signal this allocator sized itself (a
        replay), is not booked again. Returns how many were booked."""
        if not self._was_restored:
            return 0  # never restarted: every order of its clients is its own
        coid = execs.client_order_id
        fill = (execs.fill_qty > 0) & (execs.state == OrderState.FILLED)
        fill &= np.array([int(s) not in self._seen for s in execs.signal_id], dtype=np.bool_)
        if self._restored.size:
            at = np.minimum(np.searchsorted(self._restored, coid), self._restored.size - 1)
            fill &= self._restored[at] != coid
        fill &= np.array([bytes(c) not in self._late for c in coid], dtype=np.bool_)
        rows, known = self._known_rows(execs.client.astype(np.int64))
        found, entry = self._holdings.locate(np.where(known, rows, -1), execs.instrument)
        book = np.flatnonzero(fill & found)
        if book.size == 0:
            return 0
        signed = execs.side[book] * execs.fill_qty[book]
        np.add.at(self._position, entry[book], signed)
        np.add.at(self._cash, rows[book], -(signed * execs.fill_price[book] + execs.fee[book]))
        self._loss.moved(rows[book], signed, execs.instrument[book].astype(np.intp))
        self._late.update(bytes(c) for c in coid[book])
        return int(book.size)

    def _known_rows(
        self, client_ids: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
        """(row, known) of each client id: `row[known]` are the book rows of the ids it holds."""
        rows = np.searchsorted(self.book.client_id, client_ids)
        known = rows < len(self.book)
        known[known] = self.book.client_id[rows[known]] == client_ids[known]
        return rows.astype(np.intp), known

    def _rebase_day(self) -> None:
        """Start a trading day at the current mark-to-market equity."""
        inst = self._holdings.instrument_of_entries()
        self._loss.rebase(self._cash, self._row, self._position, inst)

    # --- signals to orders ---------------------------------------------------------------------

    def on_signals(self, signals: SignalBatch, now_ns: int) -> OrderBatch:
        """Orders for every holder of each signal's instrument (see module docstring)."""
        if len(signals) == 0:
            return OrderBatch.empty()
        if self._loss.new_day(now_ns):
            self._rebase_day()
        signals = self._fresh(signals, now_ns)
        if len(signals) == 0:
            return OrderBatch.empty()
        # Two signals on one instrument in a batch: the second must see the first's orders, so
        # signals go in rounds (first occurrence of each instrument, then second, ...).
        order = np.argsort(signals.instrument, kind="stable")
        inst_sorted = signals.instrument[order]
        starts = np.flatnonzero(np.r_[True, inst_sorted[1:] != inst_sorted[:-1]])
        occurrence = np.empty(len(signals), dtype=np.intp)
        occurrence[order] = np.arange(len(signals)) - np.repeat(
            starts, np.diff(np.r_[starts, len(signals)])
        )
        batches = [
            self._allocate(signals.take(np.flatnonzero(occurrence == r)), now_ns)
            for r in range(int(occurrence.max()) + 1)
        ]
        return batches[0] if len(batches) == 1 else OrderBatch.concat(batches)

    def _fresh(self, signals: SignalBatch, now_ns: int) -> SignalBatch:
        """Drop signals that cannot be sized (market data, weight or instrument), replayed
        signal ids, and stale signals; each counted once, in that order."""
        c = self.counters
        c["signals"] += len(signals)
        ok = (
            market_data_usable(signals.price, signals.bid, signals.ask)
            & np.isfinite(signals.target_weight)
            & (signals.instrument < self._n_inst)
        )
        c["signals_invalid"] += int((~ok).sum())
        for i in np.flatnonzero(ok):
            sid = int(signals.signal_id[i])
            if sid in self._seen:
                ok[i] = False
                c["signals_replayed"] += 1
                continue
            self._seen[sid] = None
        while len(self._seen) > self.config.remember_signals:
            del self._seen[next(iter(self._seen))]
        old = ok & stale(signals.ts_event, now_ns, self.config.max_quote_age_ns)
        c["signals_stale"] += int(old.sum())
        ok &= ~old
        return signals if ok.all() else signals.take(ok)

    def _allocate(self, signals: SignalBatch, now_ns: int) -> OrderBatch:
        """One round: signals on distinct instruments, every holder at once."""
        cfg, book, c = self.config, self.book, self.counters
        inst = signals.instrument.astype(np.intp)
        in_band = self._band.admit(inst, signals.price)
        if not in_band.all():
            c["signals_price_band"] += int((~in_band).sum())
            signals, inst = signals.take(in_band), inst[in_band]
        c["signals_accepted"] += len(signals)
        first = self._ptr[inst]
        length = self._ptr[inst + 1] - first
        total = int(length.sum())
        sig = np.repeat(np.arange(len(signals)), length)
        entry = np.repeat(first - (np.cumsum(length) - length), length) + np.arange(total)
        row = self._row[entry].astype(np.intp)
        position = self._position[entry]
        self._loss.remark(inst, signals.price, sig, row, position)
        if total == 0:
            return OrderBatch.empty()
        c["candidates"] += total

        price = signals.price[sig]
        venue = book.venue[row].astype(np.intp)
        instrument = inst[sig]
        increment = self._increment[venue, instrument]
        equity = book.equity[row]
        weight = np.clip(signals.target_weight, 0.0, 1.0)[sig]
        delta = equity * self._coef[entry] * weight / price - position
        side = np.where(delta > 0, 1, -1).astype(np.int8)
        qty = round_down_to_increment(np.abs(delta), increment)
        qty = cap_sells_at_position(qty, side, position, increment)

        # Drop what is too small to trade.
        notional = qty * price
        zero = qty <= 0
        band = ~zero & below_band(notional, equity, cfg.rebalance_band)
        small = ~zero & ~band & below_min_notional(notional, self._min_notional[venue, instrument])
        at_target = zero & (delta == 0)
        c["at_target"] += int(at_target.sum())
        c["below_increment"] += int((zero & ~at_target).sum())
        c["below_band"] += int(band.sum())
        c["below_min_notional"] += int(small.sum())
        keep = ~(zero | band | small)

        # Kill switch, then the daily loss limit (buys only: a sell only reduces a long position).
        halted = keep & self._halted_entries(entry)
        c["halted"] += int(halted.sum())
        keep &= ~halted
        if self._loss.enabled:
            buys = np.flatnonzero(keep & (side > 0))
            over = buys[self._loss.over_limit(row[buys], self._cash)]
            c["risk_max_daily_loss"] += int(over.size)
            keep[over] = False

        def tradable(q: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
            n = q * price
            return np.asarray(
                (q > 0)
                & ~below_band(n, equity, cfg.rebalance_band)
                & ~below_min_notional(n, self._min_notional[venue, instrument])
            )

        # Risk: max position weight (clip buys), max order notional (reject).
        clipped = clip_to_max_position(
            qty, side, position, price, equity, book.max_position_weight[row], increment
        )
        changed = keep & (clipped < qty)
        qty = clipped
        lost = changed & ~tradable(qty)
        c["risk_max_position"] += int(lost.sum())
        c["risk_max_position_clipped"] += int((changed & ~lost).sum())
        keep &= ~lost
        too_big = keep & exceeds_max_order_notional(qty * price, book.max_order_notional[row])
        c["risk_max_order_notional"] += int(too_big.sum())
        keep &= ~too_big

        # Risk: buying power, over all of a client's buys in this round together.
        qty = np.where(keep, qty, 0.0)
        clipped = clip_to_buying_power(
            qty,
            side,
            row,
            price,
            self._cash,
            cfg.fee_buffer,
            increment,
            clip=cfg.clip_to_buying_power,
        )
        changed = keep & (clipped < qty)
        qty = clipped
        lost = changed & ~tradable(qty)
        c["risk_buying_power"] += int(lost.sum())
        c["risk_buying_power_clipped"] += int((changed & ~lost).sum())
        keep &= ~lost

        take = np.flatnonzero(keep)
        if take.size == 0:
            return OrderBatch.empty()
        return self._book_orders(
            signals, sig[take], entry[take], row[take], side[take], qty[take], price[take], now_ns
        )

    def _halted_entries(self, entry: npt.NDArray[np.intp]) -> npt.NDArray[np.bool_]:
        if self._halt_all:
            return np.ones(entry.size, dtype=np.bool_)
        if self._halted is None:
            return np.zeros(entry.size, dtype=np.bool_)
        return self._halted[entry]

    def _book_orders(
        self,
        signals: SignalBatch,
        sig: npt.NDArray[np.intp],
        entry: npt.NDArray[np.intp],
        row: npt.NDArray[np.intp],
        side: npt.NDArray[np.int8],
        qty: npt.NDArray[np.float64],
        price: npt.NDArray[np.float64],
        now_ns: int,
    ) -> OrderBatch:
        """Create the orders and move expected positions and cash optimistically."""
        fee = self.config.fee_buffer
        cash_per_unit = np.where(side > 0, -price * (1.0 + fee), price * (1.0 - fee))
        instrument = signals.instrument[sig].astype(np.intp)
        self._position[entry] += side * qty
        self._cash -= np.bincount(row, weights=-cash_per_unit * qty, minlength=self._cash.size)
        self._loss.moved(row, side * qty, instrument)
        signal_id = signals.signal_id[sig]
        bounds = np.flatnonzero(np.r_[True, sig[1:] != sig[:-1], True])
        for lo, hi in pairwise(bounds):
            self._open[int(signal_id[lo])] = _OpenOrders(
                instrument=int(instrument[lo]),
                row=row[lo:hi],
                entry=entry[lo:hi],
                side=side[lo:hi],
                qty=qty[lo:hi],
                cash_per_unit=cash_per_unit[lo:hi],
                filled=np.zeros(hi - lo),
                done=np.zeros(hi - lo, dtype=np.bool_),
                open_count=int(hi - lo),
            )
        n = sig.size
        self.counters["orders"] += n
        client = self.book.client_id[row]
        return OrderBatch(
            client_order_id=client_order_ids(signal_id, client),
            signal_id=signal_id.astype(np.int64),
            client=client.astype(np.int32),
            venue=self.book.venue[row].astype(np.uint8),
            instrument=instrument.astype(np.uint32),
            side=side,
            qty=qty,
            price=price,
            ts_event=signals.ts_event[sig],
            ts_recv=signals.ts_recv[sig],
            ts_signal=signals.ts_signal[sig],
            ts_alloc=np.full(n, now_ns, dtype=np.int64),
            ts_journal=np.zeros(n, dtype=np.int64),
            ts_sent=np.zeros(n, dtype=np.int64),
        )

    # --- executions ----------------------------------------------------------------------------

    def apply_executions(self, execs: ExecutionBatch) -> None:
        """Settle venue outcomes against the optimistic bookings of `on_signals`.

        A fill moves cash by its real notional and fee instead of the booked estimate; a terminal
        event (filled, rejected, canceled, expired) returns what never filled to the expected
        position and cash. Outcomes of orders this allocator did not create are counted as
        unmatched; a terminal event for an order already closed (a replay) is ignored.
        """
        if len(execs) == 0:
            return
        order = np.argsort(execs.signal_id, kind="stable")
        sid_sorted = execs.signal_id[order]
        bounds = np.flatnonzero(np.r_[True, sid_sorted[1:] != sid_sorted[:-1], True])
        for lo, hi in pairwise(bounds):
            sid = int(sid_sorted[lo])
            orders = self._open.get(sid)
            if orders is None:
                booked = self._book_late_fills(execs.take(order[lo:hi]))
                self.counters["late_fills_booked"] += booked
                self.counters["executions_unmatched"] += int(hi - lo) - booked
                continue
            self._settle(orders, execs.take(order[lo:hi]))
            if orders.open_count == 0:
                del self._open[sid]

    def _settle(self, orders: _OpenOrders, execs: ExecutionBatch) -> None:
        rows = np.searchsorted(self.book.client_id, execs.client)
        k = np.searchsorted(orders.row, np.minimum(rows, len(self.book) - 1))
        k = np.minimum(k, orders.row.size - 1)
        matched = (rows < len(self.book)) & (orders.row[k] == rows)
        matched &= self.book.client_id[np.minimum(rows, len(self.book) - 1)] == execs.client
        self.counters["executions_unmatched"] += int((~matched).sum())
        terminal = _TERMINAL[execs.state.astype(np.intp)]
        live = matched & ~orders.done[k]
        # A second terminal row for one order in this batch is a replay: keep the first only.
        term_rows = np.flatnonzero(live & terminal)
        _, first = np.unique(k[term_rows], return_index=True)
        replay = np.zeros(len(execs), dtype=np.bool_)
        replay[term_rows] = True
        replay[term_rows[first]] = False
        self.counters["executions_replayed"] += int((matched & ~live).sum() + replay.sum())
        live &= ~replay

        fill = np.flatnonzero(live & (execs.fill_qty > 0))
        if fill.size:
            kf = k[fill]
            fq, fp, fee = execs.fill_qty[fill], execs.fill_price[fill], execs.fee[fill]
            actual = -orders.side[kf] * fq * fp - fee
            booked = orders.cash_per_unit[kf] * fq
            np.add.at(orders.filled, kf, fq)
            np.add.at(self._cash, orders.row[kf], actual - booked)

        done = k[np.flatnonzero(live & terminal)]
        if done.size:
            unfilled = orders.qty[done] - orders.filled[done]
            self._position[orders.entry[done]] -= orders.side[done] * unfilled
            self._loss.moved(orders.row[done], -orders.side[done] * unfilled, orders.instrument)
            np.add.at(self._cash, orders.row[done], -orders.cash_per_unit[done] * unfilled)
            orders.done[done] = True
            orders.open_count -= int(done.size)
