"""The SQLite journal's chunks: a batch of orders as one blob, and the keys that find it.

Binding one SQLite row per order costs more than every index on the table together (a
30,000-order fan-out: 66 ms for bare rows, 11 ms as one blob per 4,096-order chunk;
benchmarks/bench_journal_layouts.py), so the order path journals a batch as one row holding its
columns as bytes, and the `orders` rows are written from the chunks later, off the path.

A chunk is durable and unique by itself. Its duplicate check needs no row per order: a client
order id is its signal part (the first `SIGNAL_KEY_LEN` characters) followed by its client part,
so a batch's ids, sorted, fall into one run of ids per signal, from a first to a last. One key
row per (signal, chunk) records that run; an id can only be journaled already if some key of its
signal spans it, and only those chunks' ids are compared one by one. A fan-out chunk of 4,096
orders has one key; the engine's usual batches, a few per signal.

The blob is a small header (format, row count) then each column's little-endian bytes in
`_COLUMNS` order, ids first so a duplicate check reads only them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tickwise.model.ids import COID_LEN
from tickwise.model.orders import COID_DTYPE, OrderBatch

SIGNAL_KEY_LEN = 14  # "T" + the signal id's 13 base-36 digits
_FORMAT = 1
_HEADER = struct.Struct("<BI")  # format, rows
_COLUMNS: tuple[tuple[str, np.dtype], ...] = (
    ("client_order_id", COID_DTYPE),
    ("signal_id", np.dtype("<i8")),
    ("client", np.dtype("<i4")),
    ("venue", np.dtype("u1")),
    ("instrument", np.dtype("<u4")),
    ("side", np.dtype("i1")),
    ("qty", np.dtype("<f8")),
    ("price", np.dtype("<f8")),
    ("ts_event", np.dtype("<i8")),
    ("ts_recv", np.dtype("<i8")),
    ("ts_signal", np.dtype("<i8")),
    ("ts_alloc", np.dtype("<i8")),
    ("ts_journal", np.dtype("<i8")),
)
_ROW_BYTES = sum(dtype.itemsize for _, dtype in _COLUMNS)


class ChunkError(ValueError):
    """A stored chunk that cannot be read back (truncated, or of an unknown format)."""


def encode_chunk(orders: OrderBatch) -> bytes:
    """`orders` (every stored field, not `ts_sent`) as one blob."""
    parts = [_HEADER.pack(_FORMAT, len(orders))]
    parts += [
        np.ascontiguousarray(getattr(orders, name), dtype).tobytes() for name, dtype in _COLUMNS
    ]
    return b"".join(parts)


def _rows(payload: bytes) -> int:
    if len(payload) < _HEADER.size:
        raise ChunkError(f"journal chunk of {len(payload)} bytes has no header")
    fmt, n = _HEADER.unpack_from(payload)
    if fmt != _FORMAT:
        raise ChunkError(f"journal chunk of format {fmt}; this tickwise reads format {_FORMAT}")
    if len(payload) != _HEADER.size + n * _ROW_BYTES:
        raise ChunkError(
            f"journal chunk of {n} orders is {len(payload)} bytes, expected"
            f" {_HEADER.size + n * _ROW_BYTES}"
        )
    return int(n)


def decode_chunk(payload: bytes) -> OrderBatch:
    """The orders of a blob `encode_chunk` wrote (not yet sent: `ts_sent` is 0)."""
    n = _rows(payload)
    columns: dict[str, npt.NDArray[np.generic]] = {}
    offset = _HEADER.size
    for name, dtype in _COLUMNS:
        # Copies in the native byte order: the batch owns its arrays, as any other does.
        columns[name] = np.frombuffer(payload, dtype, n, offset).astype(dtype.newbyteorder("="))
        offset += n * dtype.itemsize
    return OrderBatch(**columns, ts_sent=np.zeros(n, dtype=np.int64))  # type: ignore[arg-type]


def chunk_ids(payload: bytes) -> npt.NDArray[np.bytes_]:
    """The client order ids of a blob, without the rest of it."""
    n = _rows(payload)
    return np.frombuffer(payload, COID_DTYPE, n, _HEADER.size)


@dataclass(frozen=True, slots=True)
class ChunkKeys:
    """Per signal among some ids: its key (the ids' signal part) and the first and last id."""

    signal: list[str]
    first: list[str]
    last: list[str]

    def __len__(self) -> int:
        return len(self.signal)


def chunk_keys(sorted_ids: npt.NDArray[np.bytes_]) -> ChunkKeys:
    """The keys of `sorted_ids` (client order ids, sorted, as `np.unique` gives them)."""
    n = len(sorted_ids)
    if n == 0:
        return ChunkKeys([], [], [])
    # Where the signal part changes, compared as bytes (text conversions of every id cost
    # more than the rest of the journal's work outside SQLite).
    signal = np.ascontiguousarray(sorted_ids, COID_DTYPE).view(np.uint8).reshape(n, COID_LEN)
    signal = signal[:, :SIGNAL_KEY_LEN]
    starts = np.flatnonzero(np.r_[True, (signal[1:] != signal[:-1]).any(axis=1)])
    ends = np.r_[starts[1:], n] - 1
    first = sorted_ids[starts].astype(f"U{COID_LEN}")
    return ChunkKeys(
        first.astype(f"U{SIGNAL_KEY_LEN}").tolist(),
        first.tolist(),
        sorted_ids[ends].astype(f"U{COID_LEN}").tolist(),
    )


def spanned(sorted_ids: npt.NDArray[np.bytes_], first: str, last: str) -> bool:
    """Whether any of `sorted_ids` lies between `first` and `last` (both included)."""
    lo = np.searchsorted(sorted_ids, np.bytes_(first.encode()), side="left")
    return bool(lo < len(sorted_ids) and sorted_ids[lo] <= np.bytes_(last.encode()))
