"""Deterministic ids: the same (signal, client) always yields the same venue-valid order id."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickwise.model.ids import (
    EPOCH_2020_NS,
    MAX_CLIENTS,
    MAX_INSTRUMENTS,
    client_order_id,
    client_order_ids,
    parse_client_order_id,
    signal_id,
    signal_ids,
)
from tickwise.model.instruments import VENUE_RULES

ts_ns = st.integers(EPOCH_2020_NS, EPOCH_2020_NS + 30 * 365 * 86_400 * 10**9)
instruments = st.integers(0, MAX_INSTRUMENTS - 1)
clients = st.integers(0, MAX_CLIENTS - 1)


@given(instruments, ts_ns, clients)
def test_client_order_id_fits_every_venue_and_round_trips(inst: int, ts: int, client: int) -> None:
    sig = signal_id(inst, ts)
    coid = client_order_id(sig, client)
    for rules in VENUE_RULES.values():
        assert len(coid) <= rules.max_client_order_id_len
    assert coid.isalnum() and coid.isascii()
    assert parse_client_order_id(coid) == (sig, client)
    assert client_order_id(sig, client) == coid


@given(st.lists(st.tuples(instruments, ts_ns, clients), min_size=2, max_size=50, unique=True))
def test_distinct_pairs_give_distinct_ids(rows: list[tuple[int, int, int]]) -> None:
    inst, ts, cli = (np.array(c, dtype=np.int64) for c in zip(*rows, strict=True))
    # Ticks of one instrument within the same microsecond share a signal id by design.
    keys = {(i, t // 1000, c) for i, t, c in rows}
    ids = client_order_ids(signal_ids(inst, ts), cli)
    assert len(set(ids.tolist())) == len(keys)


def test_vectorised_ids_match_scalar_ids() -> None:
    sig = signal_ids(np.arange(5), EPOCH_2020_NS + np.arange(5) * 10**9)
    ids = client_order_ids(sig, np.arange(5) * 1000)
    assert [x.decode() for x in ids] == [
        client_order_id(int(s), i * 1000) for i, s in enumerate(sig)
    ]


@pytest.mark.parametrize(
    "bad", ["", "X" * 18, "T" + "0" * 16, "T000000000000-0000", "t" + "0" * 17]
)
def test_foreign_ids_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a tickwise client order id"):
        parse_client_order_id(bad)


def test_out_of_range_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="instrument index"):
        signal_ids([MAX_INSTRUMENTS], [EPOCH_2020_NS])
    with pytest.raises(ValueError, match="ts_event"):
        signal_ids([0], [EPOCH_2020_NS - 1000])
    with pytest.raises(ValueError, match="client id"):
        client_order_ids([1], [MAX_CLIENTS])
