"""Columnar tick batches: what crosses actor boundaries on the market-data path.

A `TickBatch` is a struct of numpy arrays of equal length. Times are int64 nanoseconds since the
Unix epoch: `ts_event` is the venue's time, `ts_recv` the moment tickwise received the tick.
For quotes, `kind` says which side moved; `price`/`size` are that side's new price and size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt


class TickKind(IntEnum):
    TRADE = 0
    BID = 1
    ASK = 2


TICK_DTYPE = np.dtype(
    [
        ("instrument", np.uint32),
        ("ts_event", np.int64),
        ("ts_recv", np.int64),
        ("price", np.float64),
        ("size", np.float64),
        ("kind", np.uint8),
    ]
)


@dataclass(slots=True)
class TickBatch:
    instrument: npt.NDArray[np.uint32]
    ts_event: npt.NDArray[np.int64]
    ts_recv: npt.NDArray[np.int64]
    price: npt.NDArray[np.float64]
    size: npt.NDArray[np.float64]
    kind: npt.NDArray[np.uint8]

    def __post_init__(self) -> None:
        n = len(self.instrument)
        for name in ("ts_event", "ts_recv", "price", "size", "kind"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"TickBatch column {name!r} has a different length than 'instrument'"
                )

    @classmethod
    def empty(cls) -> TickBatch:
        return cls(
            instrument=np.empty(0, np.uint32),
            ts_event=np.empty(0, np.int64),
            ts_recv=np.empty(0, np.int64),
            price=np.empty(0, np.float64),
            size=np.empty(0, np.float64),
            kind=np.empty(0, np.uint8),
        )

    @classmethod
    def from_arrays(
        cls,
        instrument: npt.ArrayLike,
        ts_event: npt.ArrayLike,
        price: npt.ArrayLike,
        size: npt.ArrayLike,
        kind: npt.ArrayLike,
        ts_recv: npt.ArrayLike | None = None,
    ) -> TickBatch:
        ev = np.ascontiguousarray(ts_event, dtype=np.int64)
        return cls(
            instrument=np.ascontiguousarray(instrument, dtype=np.uint32),
            ts_event=ev,
            ts_recv=ev.copy() if ts_recv is None else np.ascontiguousarray(ts_recv, np.int64),
            price=np.ascontiguousarray(price, dtype=np.float64),
            size=np.ascontiguousarray(size, dtype=np.float64),
            kind=np.ascontiguousarray(kind, dtype=np.uint8),
        )

    def __len__(self) -> int:
        return len(self.instrument)

    def take(self, index: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> TickBatch:
        return TickBatch(
            instrument=self.instrument[index],
            ts_event=self.ts_event[index],
            ts_recv=self.ts_recv[index],
            price=self.price[index],
            size=self.size[index],
            kind=self.kind[index],
        )

    @classmethod
    def concat(cls, batches: Sequence[TickBatch]) -> TickBatch:
        if not batches:
            return cls.empty()
        return cls(
            instrument=np.concatenate([b.instrument for b in batches]),
            ts_event=np.concatenate([b.ts_event for b in batches]),
            ts_recv=np.concatenate([b.ts_recv for b in batches]),
            price=np.concatenate([b.price for b in batches]),
            size=np.concatenate([b.size for b in batches]),
            kind=np.concatenate([b.kind for b in batches]),
        )

    def split(self, shard_of_instrument: npt.NDArray[np.int64], shards: int) -> list[TickBatch]:
        """One batch per shard (possibly empty), each keeping this batch's order."""
        shard = shard_of_instrument[self.instrument]
        order = np.argsort(shard, kind="stable")
        bounds = np.searchsorted(shard[order], np.arange(shards + 1))
        return [self.take(order[bounds[s] : bounds[s + 1]]) for s in range(shards)]

    def to_records(self) -> npt.NDArray[np.void]:
        out = np.empty(len(self), dtype=TICK_DTYPE)
        for name in TICK_DTYPE.names or ():
            out[name] = getattr(self, name)
        return out

    @classmethod
    def from_records(cls, records: npt.NDArray[np.void]) -> TickBatch:
        return cls(
            instrument=np.ascontiguousarray(records["instrument"], np.uint32),
            ts_event=np.ascontiguousarray(records["ts_event"], np.int64),
            ts_recv=np.ascontiguousarray(records["ts_recv"], np.int64),
            price=np.ascontiguousarray(records["price"], np.float64),
            size=np.ascontiguousarray(records["size"], np.float64),
            kind=np.ascontiguousarray(records["kind"], np.uint8),
        )
