"""PositionBook against a plain dict model, and its edge cases."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickwise.model.ids import MAX_INSTRUMENTS
from tickwise.model.positions import PositionBook

updates = st.lists(
    st.lists(
        st.tuples(
            st.integers(0, 40),
            st.integers(0, MAX_INSTRUMENTS - 1) | st.integers(0, 3),
            st.integers(-64, 64).map(lambda k: k / 4),
        ),
        max_size=25,
    ),
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(updates)
def test_book_matches_a_dict_model_after_any_batches(batches: list) -> None:
    book = PositionBook()
    model: dict[tuple[int, int], float] = {}
    for batch in batches:
        if not batch:
            continue
        cols = [np.asarray(col) for col in zip(*batch, strict=True)]
        book.add(cols[0].astype(np.int32), cols[1].astype(np.uint32), cols[2])
        for client, inst, qty in batch:
            model[(client, inst)] = model.get((client, inst), 0.0) + qty
    live = {k: v for k, v in model.items() if v != 0.0}
    client, inst, qty = book.items()
    pairs = zip(client.tolist(), inst.tolist(), strict=True)
    assert dict(zip(pairs, qty.tolist(), strict=True)) == live
    keys = client.astype(np.int64) * MAX_INSTRUMENTS + inst
    assert np.all(np.diff(keys) > 0)
    assert len(book) == len(live)
    probe = [*model, (41, 0)]
    got = book.get([k[0] for k in probe], [k[1] for k in probe])
    assert got.tolist() == [live.get(k, 0.0) for k in probe]
    for who in {k[0] for k in model}:
        assert book.of_client(who) == {i: q for (c, i), q in live.items() if c == who}


def test_duplicates_in_one_call_are_summed_and_float_residue_is_flat() -> None:
    book = PositionBook([5])
    book.add([1, 1, 2], [7, 7, 7], [0.1, 0.2, 1.0])
    assert book.get([1], [7])[0] == pytest.approx(0.3)
    book.add([1], [7], [-0.3])
    assert book.get([1], [7])[0] == 0.0
    assert book.of_client(1) == {}
    assert len(book) == 1
    assert book.clients.tolist() == [1, 2, 5]


def test_book_survives_a_process_boundary_and_copies_are_independent() -> None:
    book = PositionBook([9])
    book.add([3], [4], [2.5])
    clone = pickle.loads(pickle.dumps(book))
    other = book.copy()
    other.add([3], [4], [1.0])
    assert clone.of_client(3) == {4: 2.5}
    assert book.of_client(3) == {4: 2.5}
    assert clone.clients.tolist() == [3, 9]


def test_slots_give_writable_rows_for_sequential_kernels() -> None:
    book = PositionBook()
    book.add([1], [1], [5.0])
    rows = book.slots([2, 1, 2], [0, 1, 0])
    assert rows[0] == rows[2] != rows[1]
    book.quantities[rows[1]] -= 5.0
    book.quantities[rows[0]] += 1.5
    assert book.items()[0].tolist() == [2]
    assert book.get([2], [0])[0] == 1.5


def test_ids_out_of_range_and_bad_shapes_are_refused() -> None:
    book = PositionBook()
    with pytest.raises(ValueError, match="instrument index"):
        book.add([1], [MAX_INSTRUMENTS], [1.0])
    with pytest.raises(ValueError, match="non-negative"):
        book.add([-1], [0], [1.0])
    with pytest.raises(ValueError, match="same length"):
        book.add([1, 2], [0, 0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        book.add([1], [0], [np.nan])
    assert book.get(np.array([], np.int32), np.array([], np.uint32)).size == 0


def test_a_restricted_book_holds_only_the_named_accounts() -> None:
    book = PositionBook([1, 2, 3])
    book.add(np.array([1, 2, 3, 3]), np.array([0, 5, 5, 7]), np.array([1.5, -2.0, 4.0, 1.0]))
    part = book.restricted([2, 3, 9])  # 9 is not an account of this book
    assert part.clients.tolist() == [2, 3]
    client, instrument, qty = part.items()
    assert list(zip(client.tolist(), instrument.tolist(), qty.tolist(), strict=True)) == [
        (2, 5, -2.0),
        (3, 5, 4.0),
        (3, 7, 1.0),
    ]
    part.add(np.array([2]), np.array([5]), np.array([2.0]))
    assert book.get(np.array([2]), np.array([5])).tolist() == [-2.0]  # the original is untouched
