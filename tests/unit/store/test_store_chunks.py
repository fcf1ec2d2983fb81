"""SQLite's journal of chunks: the blob codec, the duplicate check through the chunks' keys, and
the `orders` rows written out from the chunks later, by any process, after any restart."""

from __future__ import annotations

import itertools
import multiprocessing
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_helpers import make_execs, make_orders, sqlite_executor

from tickwise.model.ids import COID_LEN
from tickwise.model.orders import COID_DTYPE, OrderBatch, OrderState
from tickwise.store.chunks import (
    ChunkError,
    chunk_ids,
    chunk_keys,
    decode_chunk,
    encode_chunk,
    spanned,
)
from tickwise.store.sqlite import SQLiteStore

# --- the codec ---------------------------------------------------------------------------------

_finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(0, 30),
    signal=st.integers(0, 2**62),
    qty=_finite,
    price=_finite,
    ts=st.integers(-(2**63), 2**63 - 1),
    data=st.data(),
)
def test_a_chunk_decodes_to_the_orders_encoded(
    n: int, signal: int, qty: float, price: float, ts: int, data: st.DataObject
) -> None:
    clients = data.draw(st.lists(st.integers(0, 36**4 - 1), min_size=n, max_size=n))
    orders = make_orders(signal % 36**13, clients, side=data.draw(st.sampled_from([1, -1])))
    orders.qty[:] = qty
    orders.price[:] = price
    orders.ts_alloc[:] = ts
    orders.instrument[:] = data.draw(st.integers(0, 2**32 - 1))
    back = decode_chunk(encode_chunk(orders))
    for name in OrderBatch.__dataclass_fields__:
        if name == "ts_sent":
            assert not back.ts_sent.any()  # a journaled order is not sent yet
            continue
        mine, theirs = getattr(orders, name), getattr(back, name)
        assert theirs.dtype == mine.dtype and theirs.tolist() == mine.tolist(), name
    assert chunk_ids(encode_chunk(orders)).tolist() == orders.client_order_id.tolist()


def test_a_damaged_chunk_is_refused_not_misread() -> None:
    payload = encode_chunk(make_orders(5, [1, 2, 3]))
    with pytest.raises(ChunkError, match="expected"):
        decode_chunk(payload[:-1])
    with pytest.raises(ChunkError, match="no header"):
        chunk_ids(payload[:3])
    with pytest.raises(ChunkError, match="format 9"):
        decode_chunk(b"\x09" + payload[1:])


def test_keys_give_each_signal_its_first_and_last_id() -> None:
    ids = np.unique(
        np.concatenate(
            [make_orders(7, [30, 2, 11]).client_order_id, make_orders(9, [4]).client_order_id]
        )
    )
    keys = chunk_keys(ids)
    text = ids.astype(f"U{COID_LEN}").tolist()  # sorted: signal 7's 2, 11, 30, then 9's 4
    assert keys.first == [text[0], text[3]] and keys.last == [text[2], text[3]]
    assert keys.signal == [t[:14] for t in (text[0], text[3])]
    assert spanned(ids, text[1], text[1]) and spanned(ids, "T", "U")
    assert not spanned(ids, text[2] + "0", text[3][:-1])  # between two ids, but neither


# --- the duplicate check and the rows written out ---------------------------------------------


def _stored_orders(store: SQLiteStore) -> list[str]:
    """Every row of `orders`, read outside the store (both files)."""
    execute = sqlite_executor(store.path)
    return [r[0] for r in execute("SELECT client_order_id FROM orders ORDER BY 1")]


_examples = itertools.count()
_ids = st.one_of(
    # derived ids of a few signals and clients (the engine's), or any short text
    st.tuples(st.integers(0, 3), st.integers(0, 40)).map(
        lambda p: make_orders(p[0], [p[1]]).client_order_id[0]
    ),
    st.text("TX0123", min_size=1, max_size=COID_LEN).map(str.encode),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("journal"), st.lists(_ids, min_size=1, max_size=25)),
            st.tuples(st.just("expand"), st.just([])),
            st.tuples(st.just("reopen"), st.just([])),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_every_id_is_journaled_once_and_written_out_once_whatever_comes_between(
    tmp_path: Path, steps: list[tuple[str, list[bytes]]]
) -> None:
    path = tmp_path / f"chunks-{next(_examples)}.sqlite"
    store = SQLiteStore(path).on_order_path()
    seen: set[bytes] = set()
    for kind, ids in steps:
        if kind == "journal":
            batch = OrderBatch.concat([make_orders(1, [0]) for _ in ids])
            batch.client_order_id[:] = np.array(ids, dtype=COID_DTYPE)
            expected = []
            for coid in ids:
                expected.append(coid not in seen)
                seen.add(coid)
            assert store.journal_orders(batch, "r").tolist() == expected
        elif kind == "expand":
            store.expand_journal()
        else:  # a restart: what was journaled and not written out is still there
            store.close()
            store = SQLiteStore(path).on_order_path()
    journaled = store.order_stats("r")  # a query writes out what is left first
    assert journaled["journaled"] == len(seen)
    assert journaled["duplicate_client_order_ids"] == 0
    assert _stored_orders(store) == sorted(c.decode() for c in seen)
    assert store.expand_journal() == 0  # nothing twice
    store.close()


def test_an_order_is_seen_by_every_query_before_it_is_written_out(
    sqlite_store: SQLiteStore,
) -> None:
    orders = make_orders(3, [1, 2, 3])
    sqlite_store.journal_orders(orders, "r1")
    sqlite_store.close()  # a crash before anything wrote the rows out
    store = SQLiteStore(sqlite_store.path)
    assert len(store.unsettled_orders("r1")) == 3  # recovery settles them
    store.record_executions(make_execs(orders.take(np.array([0])), OrderState.FILLED, 2.0, 10.0))
    assert store.order_stats("r1")["by_state"] == {"filled": 1, "journaled": 2}
    assert store.expand_journal() == 0
    store.close()


def test_an_id_journaled_as_a_row_before_chunks_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    store = SQLiteStore(path)
    store.journal_orders(make_orders(4, [1, 2]), "r1")
    store.order_stats("r1")  # written out
    store.close()
    # As a store of the release before chunks holds them: rows, no chunk, keys of chunk 0.
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM order_chunks")
        conn.execute("UPDATE journal_keys SET chunk_id = 0")
    store = SQLiteStore(path)
    again = store.journal_orders(make_orders(4, [0, 1, 2, 3]), "r2")
    assert again.tolist() == [True, False, False, True]
    assert store.order_stats("r1")["journaled"] == 2 and store.order_stats("r2")["journaled"] == 2
    store.close()


def _expand_worker(path: str, results: multiprocessing.Queue) -> None:
    store = SQLiteStore(path)
    results.put(store.expand_journal())
    store.close()


def test_processes_writing_out_the_same_chunks_write_each_order_once(
    sqlite_store: SQLiteStore,
) -> None:
    for signal in range(30):
        sqlite_store.journal_orders(make_orders(signal, list(range(200))), "r1")
    ctx = multiprocessing.get_context("fork")
    results: multiprocessing.Queue = ctx.Queue()
    workers = [
        ctx.Process(target=_expand_worker, args=(sqlite_store.path, results)) for _ in range(3)
    ]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=120)
        assert p.exitcode == 0
    assert sum(results.get(timeout=5) for _ in workers) == 30 * 200
    assert len(_stored_orders(sqlite_store)) == 30 * 200
