"""Each client's mark-to-market equity and the max-daily-loss check, kept incrementally.

Equity is the allocator's own view: expected cash + sum over instruments of expected position x
mark, where the mark of an instrument is the price of the last signal the allocator accepted for
it (never a refused one: a fat-finger print must not make every holder look ruined). Summing
over every (client, instrument) on each signal would cost clients x instruments; instead
`value[c]` (the marked positions of client c) is kept up to date by the events that change it,
each touching only what it moves:

- a new mark for instrument s adds position x (new mark - old mark) for the holders of s, the
  same entries the signal's fan-out reads anyway (`remark`);
- an order booked, or an unfilled remainder returned, adds the quantity moved x the mark
  (`moved`); cash is the caller's and is read as it stands.

The day starts at the allocator's start, then at each change of UTC date of the clock given to
`new_day` (the allocator's `now_ns`); `rebase` then recomputes `value` exactly (no drift across
days) and takes the equity at that moment as the day's start. A position held before its
instrument had any mark (restored from the store at start) counts at 0 until its first mark,
which is added to the day's start equity as well as to the equity: it was there when the day
began, only its price was unknown, so it is not a gain or loss of the day.

A client is over its limit while its loss since the start of the day exceeds `limit` (a share)
of its start-of-day equity. The check is live, not latched: a client whose prices come back
trades again, and a desk that wants a breach to stand for the day halts the client (the
allocator's halts are the latch). Buys reserve a fee buffer in the expected cash, so equity
dips by that buffer until the fill settles at its real fee; the limit is meant to be set well
above it. `limit == 0` disables the check (equity is still kept, for inspection).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

DAY_NS = 86_400 * 1_000_000_000

F64 = npt.NDArray[np.float64]
Index = npt.NDArray[np.integer[Any]]


class DailyLoss:
    """Marked positions per client, the day's starting equity, and the loss limit."""

    def __init__(self, cash: F64, n_instruments: int, limit: float) -> None:
        if not 0.0 <= limit <= 1.0:
            raise ValueError("limit must be in [0, 1] (0 disables the check)")
        self.limit = limit
        self._clients = cash.size
        self._mark = np.zeros(n_instruments, dtype=np.float64)  # 0: never marked
        self._value = np.zeros(cash.size, dtype=np.float64)
        self._start = np.asarray(cash, dtype=np.float64).copy()
        self._day: int | None = None

    @property
    def enabled(self) -> bool:
        return self.limit > 0.0

    def marks(self) -> F64:
        """The mark of every instrument (0 before its first accepted signal)."""
        return self._mark.copy()

    def equity(self, cash: F64) -> F64:
        """Mark-to-market equity per client, given the expected cash (aligned with it)."""
        return np.asarray(cash + self._value, dtype=np.float64)

    def start_equity(self) -> F64:
        """Each client's equity at the start of the day."""
        return self._start.copy()

    def new_day(self, now_ns: int) -> bool:
        """Whether `now_ns` falls on a later UTC date than the last call (the first call only
        records the date: the allocator's start began the first day)."""
        day = now_ns // DAY_NS
        if self._day is not None and day > self._day:
            self._day = day
            return True
        if self._day is None:
            self._day = day
        return False

    def rebase(self, cash: F64, row: Index, position: F64, instrument: Index) -> None:
        """Recompute the marked positions from every entry (`row`, `position`, `instrument`
        aligned) and start a new day at the equity they give with `cash`."""
        marked = position * self._mark[instrument]
        self._value = np.bincount(row, weights=marked, minlength=self._clients).astype(np.float64)
        self._start = np.asarray(cash + self._value, dtype=np.float64)

    def remark(self, instrument: Index, price: F64, sig: Index, row: Index, position: F64) -> None:
        """New marks for distinct `instrument`s at `price`; `row`/`position` are every holder of
        those instruments, `sig` the index into `instrument` of each."""
        old = self._mark[instrument]
        self._mark[instrument] = price
        if row.size == 0:
            return
        change = position * (price - old)[sig]
        self._value += np.bincount(row, weights=change, minlength=self._clients)
        first = (old == 0.0)[sig] & (position != 0.0)
        if first.any():
            self._start += np.bincount(row[first], weights=change[first], minlength=self._clients)

    def moved(self, row: Index, qty: F64, instrument: Index | int) -> None:
        """Positions of (`row`, `instrument`) changed by signed `qty`."""
        np.add.at(self._value, row, qty * self._mark[instrument])

    def over_limit(self, row: Index, cash: F64) -> npt.NDArray[np.bool_]:
        """Which of the clients at `row` have lost more than the limit today."""
        if not self.enabled:
            return np.zeros(row.size, dtype=np.bool_)
        start = self._start[row]
        loss = start - (cash[row] + self._value[row])
        return np.asarray(loss > self.limit * start)
