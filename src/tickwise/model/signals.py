"""Signals: a strategy's new target weight for one instrument.

One strategy runs per instrument, so a signal is per instrument; the allocator nets every
portfolio through which a client holds that instrument into a single order per client (two
portfolios must never send one client opposite orders for the same stock). `bid`/`ask` are the
top of book the strategy saw when it decided, which the allocator uses for sizing and the venue
simulator as the prevailing quote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(slots=True)
class SignalBatch:
    signal_id: npt.NDArray[np.int64]
    instrument: npt.NDArray[np.uint32]
    target_weight: npt.NDArray[np.float64]
    price: npt.NDArray[np.float64]
    bid: npt.NDArray[np.float64]
    ask: npt.NDArray[np.float64]
    ts_event: npt.NDArray[np.int64]
    ts_recv: npt.NDArray[np.int64]
    ts_signal: npt.NDArray[np.int64]

    @classmethod
    def empty(cls) -> SignalBatch:
        i64 = np.empty(0, np.int64)
        f64 = np.empty(0, np.float64)
        return cls(i64, np.empty(0, np.uint32), f64, f64, f64, f64, i64, i64, i64)

    def __len__(self) -> int:
        return len(self.signal_id)

    def take(self, index: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> SignalBatch:
        return SignalBatch(
            signal_id=self.signal_id[index],
            instrument=self.instrument[index],
            target_weight=self.target_weight[index],
            price=self.price[index],
            bid=self.bid[index],
            ask=self.ask[index],
            ts_event=self.ts_event[index],
            ts_recv=self.ts_recv[index],
            ts_signal=self.ts_signal[index],
        )

    @classmethod
    def concat(cls, batches: Sequence[SignalBatch]) -> SignalBatch:
        if not batches:
            return cls.empty()
        fields = cls.__slots__
        return cls(**{f: np.concatenate([getattr(b, f) for b in batches]) for f in fields})
