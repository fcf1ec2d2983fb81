"""Reconciliation: does the ledger hold what the venues say the clients hold?

A pure function over position books, so the same check runs after a drain, after a restart
(ledger rebuilt from the journal) and in tests. A client absent from a book holds nothing there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tickwise.model.positions import PositionBook, position_keys

Mismatch = tuple[int, int, float, float]


@dataclass(frozen=True, slots=True)
class ReconciliationReport:
    """`mismatches` rows are (client, instrument, ledger_qty, venue_qty), sorted by key."""

    clients_checked: int
    position_mismatches: int
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.position_mismatches == 0


def reconcile_positions(
    ledger_book: PositionBook,
    venue_books: Sequence[PositionBook],
    tolerance: float = 1e-9,
) -> ReconciliationReport:
    """Compare the ledger's positions with the sum of the venues' positions, pair by pair.

    Two quantities agree when they differ by at most `tolerance * max(1, |ledger|, |venue|)`
    (relative for large positions, absolute for small ones). Every account holder either side
    knows counts as checked, including those with no position at all.
    """
    venue = PositionBook()
    for book in venue_books:
        client, instrument, qty = book.items()
        venue.add(client, instrument, qty)
        venue.register(book.clients)
    l_client, l_inst, _ = ledger_book.items()
    v_client, v_inst, _ = venue.items()
    client = np.concatenate([l_client, v_client])
    inst = np.concatenate([l_inst, v_inst])
    _, first = np.unique(position_keys(client, inst), return_index=True)
    client, inst = client[first], inst[first]
    ledger_qty = ledger_book.get(client, inst)
    venue_qty = venue.get(client, inst)
    scale = np.maximum(1.0, np.maximum(np.abs(ledger_qty), np.abs(venue_qty)))
    bad = np.flatnonzero(np.abs(ledger_qty - venue_qty) > tolerance * scale)
    clients = np.union1d(ledger_book.clients, venue.clients)
    return ReconciliationReport(
        clients_checked=int(clients.size),
        position_mismatches=int(bad.size),
        mismatches=[
            (int(c), int(i), float(lq), float(vq))
            for c, i, lq, vq in zip(
                client[bad], inst[bad], ledger_qty[bad], venue_qty[bad], strict=True
            )
        ],
    )
