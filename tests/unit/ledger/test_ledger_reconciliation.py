"""Reconciliation of the ledger's positions against the venues' books."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tickwise.execution.reconciliation import reconcile_positions
from tickwise.model.positions import PositionBook


def venue_books() -> list[PositionBook]:
    alpaca = PositionBook([1, 2, 3])
    alpaca.add([1, 2], [10, 11], [5.0, 0.25])
    binance = PositionBook([4, 5])
    binance.add([4], [900], [0.0123])
    return [alpaca, binance]


def ledger_book() -> PositionBook:
    book = PositionBook([1, 2, 3, 4, 5])
    book.add([1, 2, 4], [10, 11, 900], [5.0, 0.25, 0.0123])
    return book


def test_equal_books_reconcile_and_every_account_is_checked() -> None:
    report = reconcile_positions(ledger_book(), venue_books())
    assert report.ok
    assert report.clients_checked == 5
    assert report.mismatches == []


def test_a_planted_mismatch_is_reported_with_both_quantities() -> None:
    ledger = ledger_book()
    ledger.add([2], [11], [0.5])  # the ledger thinks client 2 holds 0.75
    ledger.add([3], [12], [1.0])  # and that client 3 holds something the venue never filled
    books = venue_books()
    books[1].add([5], [901], [2.0])  # a position the ledger missed
    report = reconcile_positions(ledger, books)
    assert report.position_mismatches == 3
    assert report.mismatches == [(2, 11, 0.75, 0.25), (3, 12, 1.0, 0.0), (5, 901, 0.0, 2.0)]


def test_float_noise_within_tolerance_is_not_a_mismatch() -> None:
    ledger = ledger_book()
    ledger.add([1], [10], [1e-12])
    assert reconcile_positions(ledger, venue_books()).ok
    ledger.add([1], [10], [1e-6])
    assert not reconcile_positions(ledger, venue_books()).ok


def test_positions_split_over_venue_lanes_are_summed() -> None:
    lane_a, lane_b = PositionBook([1]), PositionBook([2])
    lane_a.add([1], [3], [2.0])
    lane_b.add([1], [3], [1.0])
    ledger = PositionBook([1, 2])
    ledger.add([1], [3], [3.0])
    report = reconcile_positions(ledger, [lane_a, lane_b])
    assert report.ok and report.clients_checked == 2


_positions = st.dictionaries(
    st.tuples(st.integers(0, 20), st.integers(0, 30)),
    st.floats(-1e6, 1e6, allow_nan=False).filter(lambda q: q == 0 or abs(q) > 1e-6),
    max_size=40,
)


def _book(clients: list[int], positions: dict[tuple[int, int], float]) -> PositionBook:
    book = PositionBook(clients)
    if positions:
        keys = list(positions)
        book.add(
            np.array([c for c, _ in keys]),
            np.array([i for _, i in keys]),
            np.array([positions[k] for k in keys]),
        )
    return book


@settings(max_examples=200, deadline=None)
@given(_positions, _positions, st.lists(st.integers(0, 2), min_size=0, max_size=40))
def test_reconciliation_reports_exactly_the_pairs_that_differ(
    ledger: dict[tuple[int, int], float],
    venue: dict[tuple[int, int], float],
    lanes: list[int],
) -> None:
    # The venue's positions spread over up to three lanes (router books), as the engine has them.
    venue_keys = list(venue)
    lane_of = {k: (lanes[n] if n < len(lanes) else 0) for n, k in enumerate(venue_keys)}
    lane_books = [
        _book(
            sorted({c for c, _ in venue_keys}), {k: q for k, q in venue.items() if lane_of[k] == j}
        )
        for j in range(3)
    ]
    ledger_clients = sorted({c for c, _ in ledger})
    report = reconcile_positions(_book(ledger_clients, ledger), lane_books)
    expected = {
        k
        for k in set(ledger) | set(venue)
        if abs(ledger.get(k, 0.0) - venue.get(k, 0.0))
        > 1e-9 * max(1.0, abs(ledger.get(k, 0.0)), abs(venue.get(k, 0.0)))
    }
    assert {(c, i) for c, i, _, _ in report.mismatches} == expected
    assert report.position_mismatches == len(expected)
    assert report.ok == (not expected)
    for c, i, lq, vq in report.mismatches:
        assert lq == ledger.get((c, i), 0.0) and vq == venue.get((c, i), 0.0)
    assert report.clients_checked == len(set(ledger_clients) | {c for c, _ in venue_keys})
