"""Who holds what: the sparse client x instrument coefficients the allocator sizes orders with.

coef[c, s] = sum_p alloc[c, p] * weight[p, s], stored in a CSR layout indexed by instrument:
`row[ptr[s]:ptr[s+1]]` are the book rows of the clients holding s (ascending) and `coef[...]`
their coefficients. A client holding s through two portfolios has one entry, so it gets one
netted order per signal, never two opposite ones. `Holdings.locate` finds the entry of (client
row, instrument) pairs (restoring positions), `entries_through` the entries a set of portfolios
contributes to (halting a portfolio).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tickwise.model.clients import ClientBook, Portfolio

_CHUNK = 128  # instruments per dense block while building (bounds the temporary memory)


@dataclass(frozen=True, slots=True)
class Holdings:
    ptr: npt.NDArray[np.int64]
    row: npt.NDArray[np.int32]
    coef: npt.NDArray[np.float64]
    clients: int  # rows of the book the holdings were built from

    @property
    def entries(self) -> int:
        return int(self.row.size)

    def instrument_of_entries(self) -> npt.NDArray[np.intp]:
        """The instrument of every entry (entries are grouped by instrument)."""
        return np.repeat(np.arange(self.ptr.size - 1, dtype=np.intp), np.diff(self.ptr))

    def locate(
        self, rows: npt.ArrayLike, instruments: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.intp]]:
        """(found, entry) for each (book row, instrument) pair: `entry[found]` are the entries
        of the pairs that are held; the others (not held, row or instrument out of range) are
        not found. Entries sorted by (instrument, row) make this one binary search."""
        r = np.asarray(rows, dtype=np.int64)
        inst = np.asarray(instruments, dtype=np.int64)
        valid = (r >= 0) & (r < self.clients) & (inst >= 0) & (inst < self.ptr.size - 1)
        entry_key = self.instrument_of_entries() * self.clients + self.row
        key = np.where(valid, inst * self.clients + r, -1)
        at = np.minimum(np.searchsorted(entry_key, key), max(entry_key.size - 1, 0))
        found = valid & (entry_key.size > 0)
        found[found] = entry_key[at[found]] == key[found]
        return found, at.astype(np.intp)


def entries_through(
    holdings: Holdings,
    book: ClientBook,
    portfolios: Sequence[Portfolio],
    portfolio_ids: Collection[int],
) -> npt.NDArray[np.bool_]:
    """Which entries a client holds (at least partly) through one of `portfolio_ids`.

    An entry nets every portfolio through which the client holds the instrument, so an entry
    is marked as soon as one of those portfolios gives the client a share of it. Ids of
    portfolios not in `portfolios` hold nothing.
    """
    marked = np.zeros(holdings.entries, dtype=np.bool_)
    wanted = set(portfolio_ids)
    for p in portfolios:
        if p.portfolio_id not in wanted:
            continue
        members = np.asarray(p.instruments, dtype=np.int64)[np.asarray(p.weights) > 0.0]
        takes = (book.sub_portfolio == p.portfolio_id) & (book.sub_allocation > 0.0)
        rows = book.rows_of(np.unique(book.sub_client[takes]))
        if members.size == 0 or rows.size == 0:
            continue
        found, entry = holdings.locate(np.tile(rows, members.size), np.repeat(members, rows.size))
        marked[entry[found]] = True
    return marked


def build_holdings(
    book: ClientBook, portfolios: Sequence[Portfolio], n_instruments: int
) -> Holdings:
    """The CSR holdings of `book` over `n_instruments`; raises on unknown portfolios/instruments."""
    pids = np.array(sorted(p.portfolio_id for p in portfolios), dtype=np.int64)
    if np.unique(pids).size != pids.size:
        raise ValueError("portfolio ids must be unique")
    alloc = np.zeros((len(book), pids.size), dtype=np.float64)
    if book.sub_client.size:
        col = np.searchsorted(pids, book.sub_portfolio)
        col_ok = col < pids.size
        col_ok[col_ok] = pids[col[col_ok]] == book.sub_portfolio[col_ok]
        if not col_ok.all():
            missing = sorted(set(book.sub_portfolio[~col_ok].tolist()))
            raise ValueError(f"subscriptions to unknown portfolio ids {missing[:5]}")
        np.add.at(alloc, (book.rows_of(book.sub_client), col), book.sub_allocation)
    weights = np.zeros((pids.size, n_instruments), dtype=np.float64)
    for p in portfolios:
        members = np.asarray(p.instruments, dtype=np.int64)
        if members.size and (members.min() < 0 or members.max() >= n_instruments):
            raise ValueError(f"portfolio {p.name!r} names an instrument outside the registry")
        weights[np.searchsorted(pids, p.portfolio_id), members] = p.weights
    counts = np.zeros(n_instruments, dtype=np.int64)
    rows: list[npt.NDArray[np.int32]] = []
    coefs: list[npt.NDArray[np.float64]] = []
    for lo in range(0, n_instruments, _CHUNK):
        hi = min(lo + _CHUNK, n_instruments)
        block = np.ascontiguousarray((alloc @ weights[:, lo:hi]).T)  # (instrument, client row)
        inst, row = np.nonzero(block > 0.0)
        counts[lo:hi] = np.bincount(inst, minlength=hi - lo)
        rows.append(row.astype(np.int32))
        coefs.append(block[inst, row])
    ptr = np.zeros(n_instruments + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return Holdings(
        clients=len(book),
        ptr=ptr,
        row=np.concatenate(rows) if rows else np.empty(0, np.int32),
        coef=np.concatenate(coefs) if coefs else np.empty(0, np.float64),
    )
