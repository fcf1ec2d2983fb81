"""Who holds what: the sparse client x instrument coefficients the allocator sizes orders with.

coef[c, s] = sum_p alloc[c, p] * weight[p, s], stored in a CSR layout indexed by instrument:
`row[ptr[s]:ptr[s+1]]` are the book rows of the clients holding s (ascending) and `coef[...]`
their coefficients. A client holding s through two portfolios has one entry, so it gets one
netted order per signal, never two opposite ones.
"""

from __future__ import annotations

from collections.abc import Sequence
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

    @property
    def entries(self) -> int:
        return int(self.row.size)


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
        ptr=ptr,
        row=np.concatenate(rows) if rows else np.empty(0, np.int32),
        coef=np.concatenate(coefs) if coefs else np.empty(0, np.float64),
    )
