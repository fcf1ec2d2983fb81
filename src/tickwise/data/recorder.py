"""Recording live ticks into the tick store, in large buffered writes off the hot path.

`TickRecorder.append(batch)` only keeps a reference to the batch (no per-tick work); every
`flush_every_s` seconds or `max_rows` rows it writes one part file per (date, symbol) touched.
The engine runs it in its own actor, fed fire-and-forget by the feed.

The store only grows forward in time per symbol: ticks at or before the last tick the store
already held for that symbol when this recorder first wrote it are skipped and counted
(`rows_already_stored`). A run whose warm-up history overlaps the previous run's recording
therefore adds only what is new, and never interleaves two tick streams for one symbol.

A failed write (disk full, permissions) is counted and retried at the next flush; past
`4 * max_rows` pending rows the oldest are dropped and counted, so memory stays bounded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from tickwise.data.tickstore import TickStore, TickStoreError
from tickwise.model.instruments import InstrumentRegistry
from tickwise.model.ticks import TickBatch

log = logging.getLogger(__name__)


class TickRecorder:
    """Buffers tick batches and writes them to a `TickStore` in bulk."""

    def __init__(
        self,
        store: TickStore,
        registry: InstrumentRegistry,
        flush_every_s: float = 60.0,
        max_rows: int = 500_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not flush_every_s > 0.0:
            raise ValueError("flush_every_s must be > 0")
        if max_rows < 1:
            raise ValueError("max_rows must be >= 1")
        self.store = store
        self.registry = registry
        self.flush_every_s = flush_every_s
        self.max_rows = max_rows
        self._clock = clock
        self._buffer: list[TickBatch] = []
        self._pending = 0
        self._last_flush = clock()
        n = len(registry)
        self._floor = np.full(n, -1, dtype=np.int64)
        self._floor_known = np.zeros(n, dtype=np.bool_)
        self.counters = {
            "rows_appended": 0,
            "rows_written": 0,
            "rows_already_stored": 0,
            "rows_dropped": 0,
            "flushes": 0,
            "write_errors": 0,
        }

    @property
    def pending(self) -> int:
        """Rows buffered and not yet written."""
        return self._pending

    def append(self, batch: TickBatch) -> int:
        """Buffer `batch`; flushes when due. Returns the rows written by that flush (or 0)."""
        if len(batch) == 0:
            return 0
        self._buffer.append(batch)
        self._pending += len(batch)
        self.counters["rows_appended"] += len(batch)
        if self._pending >= self.max_rows or self._clock() - self._last_flush >= self.flush_every_s:
            return self.flush()
        return 0

    def flush(self) -> int:
        """Write everything buffered; returns the rows written."""
        self._last_flush = self._clock()
        if not self._buffer:
            return 0
        batch = TickBatch.concat(self._buffer)
        try:
            fresh = batch.take(np.flatnonzero(batch.ts_event > self._floors(batch)))
            written = self.store.write(fresh, self.registry)
        except (TickStoreError, OSError) as exc:
            self.counters["write_errors"] += 1
            log.warning("tick recording failed, will retry: %s", exc)
            self._buffer = [batch]
            if self._pending > 4 * self.max_rows:
                drop = self._pending - self.max_rows
                self._buffer = [batch.take(np.arange(drop, len(batch)))]
                self._pending -= drop
                self.counters["rows_dropped"] += drop
            return 0
        self.counters["rows_already_stored"] += len(batch) - len(fresh)
        self.counters["rows_written"] += written
        self.counters["flushes"] += 1
        self._buffer = []
        self._pending = 0
        return written

    def _floors(self, batch: TickBatch) -> npt.NDArray[np.int64]:
        """Each tick's floor: the last time stored for its instrument before this recorder."""
        seen = np.unique(batch.instrument)
        new = seen[~self._floor_known[seen]]
        if len(new):
            symbols = self.registry.symbols()
            wanted = [symbols[int(i)] for i in new]
            last = self.store.last_times(wanted, int(batch.ts_event.min()))
            self._floor[new] = [last.get(s, -1) for s in wanted]
            self._floor_known[new] = True
        return self._floor[batch.instrument]
