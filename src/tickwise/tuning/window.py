"""The tuner's rolling window of recent ticks, fed by the live feed (history first).

It keeps the batches it is given, in arrival order, and drops whole batches once they are older
than the horizon. A re-tune takes a snapshot of the batch list (cheap, and safe while new
batches keep arriving) and builds the `TickSeries` of the instruments it tunes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from tickwise.backtest.series import TickSeries
from tickwise.model.instruments import InstrumentRegistry
from tickwise.model.ticks import TickBatch

NS = 1_000_000_000


class RollingWindow:
    """The last `horizon_s` seconds of ticks (by `ts_event`) of every instrument."""

    def __init__(self, registry: InstrumentRegistry, horizon_s: float) -> None:
        self.registry = registry
        self.horizon_ns = round(horizon_s * NS)
        self._batches: deque[TickBatch] = deque()
        self.newest_ns = 0
        self.ticks = np.zeros(len(registry), np.int64)  # ticks seen per instrument, ever

    def append(self, batch: TickBatch) -> None:
        if len(batch) == 0:
            return
        self._batches.append(batch)
        self.newest_ns = max(self.newest_ns, int(batch.ts_event.max()))
        self.ticks += np.bincount(batch.instrument.astype(np.int64), minlength=len(self.ticks))
        cutoff = self.newest_ns - self.horizon_ns
        while self._batches and int(self._batches[0].ts_event.max()) < cutoff:
            self._batches.popleft()

    @property
    def oldest_ns(self) -> int:
        return int(self._batches[0].ts_event.min()) if self._batches else 0

    def series(
        self, instruments: Sequence[int] | npt.NDArray[np.int64], start_ns: int, end_ns: int
    ) -> TickSeries:
        """The ticks of `instruments` with start <= ts_event < end, instrument by instrument."""
        wanted = np.asarray(instruments, np.int64)
        batches = list(self._batches)
        if not batches:
            return TickSeries.from_batch(TickBatch.empty(), self.registry, wanted)
        mask = np.zeros(len(self.registry), np.bool_)
        mask[wanted] = True
        parts = []
        for b in batches:
            keep = mask[b.instrument] & (b.ts_event >= start_ns) & (b.ts_event < end_ns)
            if keep.any():
                parts.append(b.take(np.flatnonzero(keep)))
        batch = TickBatch.concat(parts) if parts else TickBatch.empty()
        order = _time_order(batch)
        return TickSeries.from_batch(batch.take(order), self.registry, wanted)


def _time_order(batch: TickBatch) -> npt.NDArray[np.intp]:
    return np.argsort(batch.ts_event, kind="stable")
