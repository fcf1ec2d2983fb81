"""Order and execution batches as stored rows, and stored rows back as batches and records.

Both back ends store the same columns in the same order: the column tuples here are the one
definition the SQL text (column lists), the row builders and the readers share.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from tickwise.model.ids import COID_LEN
from tickwise.model.orders import COID_DTYPE, ExecutionBatch, OrderBatch, OrderState, Side
from tickwise.store.base import RANK_STRIDE, OrderRecord, PositionRows, rank_keys

ORDER_COLUMNS = (
    "client_order_id",
    "run_id",
    "signal_id",
    "client_id",
    "venue",
    "instrument",
    "side",
    "qty",
    "price",
    "ts_event",
    "ts_recv",
    "ts_signal",
    "ts_alloc",
    "ts_journal",
)
EXECUTION_COLUMNS = (
    "client_order_id",
    "client_id",
    "instrument",
    "side",
    "state",
    "rank_key",
    "reason",
    "fill_qty",
    "fill_price",
    "fee",
    "ts_sent",
    "ts_ack",
)
# What `unacked_orders` reads back: an OrderBatch's stored fields, id first.
BATCH_COLUMNS = tuple(c for c in ORDER_COLUMNS if c != "run_id")
# What `OrderRecord` shows: the order, then its state and fills aggregated over its executions.
RECORD_COLUMNS = (
    "o.client_order_id, o.run_id, o.signal_id, o.client_id, o.venue, o.instrument, o.side, o.qty,"
    " o.price, o.ts_journal, COALESCE(MAX(e.rank_key), -1), COALESCE(SUM(e.fill_qty), 0),"
    " COALESCE(SUM(e.fill_qty * e.fill_price), 0), COALESCE(SUM(e.fee), 0)"
)


def coid_strings(coids: npt.NDArray[np.bytes_]) -> list[str]:
    """Client order ids as text, the way both back ends key them."""
    return np.asarray(coids).astype(f"U{COID_LEN}").tolist()


def coid_array(ids: Sequence[str]) -> npt.NDArray[np.bytes_]:
    """Client order ids read back as text, as a `COID_DTYPE` array."""
    return np.array(ids, dtype=COID_DTYPE)


def finite(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Floats for NOT NULL columns: a NaN would become NULL in SQLite, so a missing price (a
    reject carries none) is stored as 0, and so in every back end."""
    return np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)


def journal_arrays(orders: OrderBatch) -> list[npt.NDArray[Any]]:
    """The columns of `orders` after the id and run, in `ORDER_COLUMNS` order."""
    return [
        orders.signal_id,
        orders.client,
        orders.venue,
        orders.instrument,
        orders.side,
        finite(orders.qty),
        finite(orders.price),
        orders.ts_event,
        orders.ts_recv,
        orders.ts_signal,
        orders.ts_alloc,
        orders.ts_journal,
    ]


def column_lists(arrays: Sequence[npt.NDArray[Any]]) -> list[list[Any]]:
    """Each array as a list of Python values, for a driver's `executemany`. A column that holds
    one value throughout — most of a fan-out's: its signal, instrument, side, price and
    timestamps — is one object repeated, not one object per row: building the rows of a
    37,000-order fan-out then takes 40 % less time."""
    out: list[list[Any]] = []
    for a in arrays:
        if len(a) and (a == a[0]).all():
            out.append([a[0].item()] * len(a))
        else:
            out.append(a.tolist())
    return out


def journal_rows(orders: OrderBatch, run_id: str) -> list[tuple[Any, ...]]:
    """`orders` as row tuples in `ORDER_COLUMNS` order."""
    n = len(orders)
    columns = column_lists(journal_arrays(orders))
    return list(zip(coid_strings(orders.client_order_id), [run_id] * n, *columns, strict=True))


def execution_arrays(execs: ExecutionBatch) -> list[npt.NDArray[Any]]:
    """The columns of `execs` after the id, in `EXECUTION_COLUMNS` order."""
    return [
        execs.client,
        execs.instrument,
        execs.side,
        execs.state,
        rank_keys(execs.state),
        execs.reason,
        finite(execs.fill_qty),
        finite(execs.fill_price),
        finite(execs.fee),
        execs.ts_sent,
        execs.ts_ack,
    ]


def execution_rows(execs: ExecutionBatch) -> list[tuple[Any, ...]]:
    """`execs` as row tuples in `EXECUTION_COLUMNS` order."""
    columns = column_lists(execution_arrays(execs))
    return list(zip(coid_strings(execs.client_order_id), *columns, strict=True))


def derived_state(rank_key: int) -> OrderState:
    """An order's state from the highest rank key among its executions (-1: none yet)."""
    return OrderState.JOURNALED if rank_key < 0 else OrderState(rank_key % RANK_STRIDE)


def order_record(r: Sequence[Any]) -> OrderRecord:
    """An `OrderRecord` from a row of `RECORD_COLUMNS`."""
    filled = float(r[11])
    return OrderRecord(
        client_order_id=r[0],
        run_id=r[1],
        signal_id=int(r[2]),
        client=int(r[3]),
        venue=int(r[4]),
        instrument=int(r[5]),
        side=Side(r[6]),
        qty=float(r[7]),
        price=float(r[8]),
        ts_journal=int(r[9]),
        state=derived_state(int(r[10])),
        filled_qty=filled,
        avg_fill_price=float(r[12]) / filled if filled > 0 else 0.0,
        fees=float(r[13]),
    )


def order_batch(rows: Sequence[Sequence[Any]]) -> OrderBatch:
    """An `OrderBatch` from rows of `BATCH_COLUMNS` (not sent yet: `ts_sent` is 0)."""
    if not rows:
        return OrderBatch.empty()
    c = list(zip(*rows, strict=True))
    return OrderBatch(
        client_order_id=coid_array(c[0]),
        signal_id=np.array(c[1], dtype=np.int64),
        client=np.array(c[2], dtype=np.int32),
        venue=np.array(c[3], dtype=np.uint8),
        instrument=np.array(c[4], dtype=np.uint32),
        side=np.array(c[5], dtype=np.int8),
        qty=np.array(c[6], dtype=np.float64),
        price=np.array(c[7], dtype=np.float64),
        ts_event=np.array(c[8], dtype=np.int64),
        ts_recv=np.array(c[9], dtype=np.int64),
        ts_signal=np.array(c[10], dtype=np.int64),
        ts_alloc=np.array(c[11], dtype=np.int64),
        ts_journal=np.array(c[12], dtype=np.int64),
        ts_sent=np.zeros(len(rows), dtype=np.int64),
    )


def position_rows(rows: Sequence[Sequence[Any]]) -> PositionRows:
    """`PositionRows` from (client, instrument, qty) rows."""
    cols = list(zip(*rows, strict=True)) or [(), (), ()]
    return PositionRows(
        client=np.array(cols[0], dtype=np.int32),
        instrument=np.array(cols[1], dtype=np.uint32),
        qty=np.array(cols[2], dtype=np.float64),
    )


FILL_COLUMNS = (
    "e.client_order_id, o.signal_id, e.client_id, o.venue, e.instrument, e.side, e.state,"
    " e.reason, e.fill_qty, e.fill_price, e.fee, o.ts_event, o.ts_recv, e.ts_sent, e.ts_ack"
)


def fill_batch(rows: Sequence[Sequence[Any]]) -> ExecutionBatch:
    """An `ExecutionBatch` from rows of `FILL_COLUMNS`."""
    if not rows:
        return ExecutionBatch.empty()
    c = list(zip(*rows, strict=True))
    return ExecutionBatch(
        client_order_id=coid_array(c[0]),
        signal_id=np.array(c[1], dtype=np.int64),
        client=np.array(c[2], dtype=np.int32),
        venue=np.array(c[3], dtype=np.uint8),
        instrument=np.array(c[4], dtype=np.uint32),
        side=np.array(c[5], dtype=np.int8),
        state=np.array(c[6], dtype=np.int8),
        reason=np.array(c[7], dtype=np.int8),
        fill_qty=np.array(c[8], dtype=np.float64),
        fill_price=np.array(c[9], dtype=np.float64),
        fee=np.array(c[10], dtype=np.float64),
        ts_event=np.array(c[11], dtype=np.int64),
        ts_recv=np.array(c[12], dtype=np.int64),
        ts_sent=np.array(c[13], dtype=np.int64),
        ts_ack=np.array(c[14], dtype=np.int64),
    )
