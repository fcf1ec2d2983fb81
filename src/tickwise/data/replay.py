"""A feed that replays recorded ticks, merged across symbols in time order.

`ReplayFeed` has the generator's API (`next_batch(now_ns)`, `burst`), so the engine's feed can
play history instead of synthetic ticks. The first call pins replay time to wall time; then a
call at `now_ns` releases every tick whose replay time has come: at real time (`speed=1.0`),
N times faster (`speed=N`), or, with `speed=None`, as fast as the caller polls
(`batch_ticks` ticks or so per call).

Files are opened lazily when replay time reaches them (a lower bound on each file's first
tick is known from its name) and dropped when drained, so a week of ticks never sits in memory
at once. Merging is exact: before a call releases ticks up to replay time T, every file that
could hold a tick <= T is open, and the released ticks are sorted by time (stable, so files
with equal times keep a fixed order).

With `restamp=True` (the default, what a live engine wants) `ts_event` is rewritten to the wall
time the tick was due, so latency figures measure tickwise and not the age of the recording.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tickwise.data.readers import ReplaySource, SymbolTicks, read_source
from tickwise.model.instruments import AssetClass, Instrument, InstrumentRegistry
from tickwise.model.ticks import TickBatch

SECOND_NS = 1_000_000_000


@dataclass(slots=True)
class _OpenSource:
    ticks: SymbolTicks
    instrument: int  # -1: not in the registry (ticks are counted and dropped)
    cursor: int = 0

    @property
    def remaining(self) -> int:
        return len(self.ticks) - self.cursor


class ReplayFeed:
    """Recorded ticks, played in time order against a wall clock."""

    def __init__(
        self,
        sources: Iterable[ReplaySource],
        registry: InstrumentRegistry,
        speed: float | None = 1.0,
        *,
        restamp: bool = True,
        batch_ticks: int = 10_000,
    ) -> None:
        if speed is not None and not speed > 0.0:
            raise ValueError("speed must be > 0 or None (as fast as possible)")
        if batch_ticks < 1:
            raise ValueError("batch_ticks must be >= 1")
        self.registry = registry
        self.speed = speed
        self.restamp = restamp
        self.batch_ticks = batch_ticks
        self._pending: list[ReplaySource] = sorted(sources, key=lambda s: (s.start_ns, str(s.path)))
        self._open: list[_OpenSource] = []
        self._skipped: dict[str, int] = {}
        self._wall_origin: int | None = None
        self._replay_origin = 0
        self._replay_now = 0  # replay time released so far (inclusive)
        self._last_wall = 0
        self._burst_mult = 1.0
        self._burst_from_wall = 0
        self._burst_until_wall = 0
        self._burst_pending_s = 0.0
        self.ticks_released = 0

    # -- public API ---------------------------------------------------------------------

    @property
    def exhausted(self) -> bool:
        """True once every file has been read and every tick released."""
        return not self._pending and all(s.remaining == 0 for s in self._open)

    @property
    def skipped(self) -> dict[str, int]:
        """Ticks dropped because their symbol is not in the registry, per symbol."""
        return dict(self._skipped)

    @property
    def replay_time_ns(self) -> int:
        """The recorded time up to which ticks have been released."""
        return self._replay_now

    def next_batch(self, now_ns: int) -> TickBatch:
        """Every tick due by `now_ns` (by replay time), sorted by `ts_event`."""
        if self._wall_origin is None:
            self._replay_origin = self._first_tick_ns()
            self._wall_origin = now_ns
            self._last_wall = now_ns
            self._replay_now = self._replay_origin - 1
            if self._burst_pending_s:
                self._burst_from_wall = now_ns
                self._burst_until_wall = now_ns + round(self._burst_pending_s * SECOND_NS)
        if self.speed is None:
            horizon = self._horizon_for(self.batch_ticks)
        else:
            horizon = self._replay_origin + self._replayed_ns(now_ns)
        if horizon <= self._replay_now:
            self._last_wall = max(self._last_wall, now_ns)
            return TickBatch.empty()
        batch = self._release_until(horizon)
        if self.restamp and len(batch):
            batch.ts_event[:] = self._to_wall(batch.ts_event, now_ns)
            batch.ts_recv[:] = batch.ts_event
        self._last_wall = max(self._last_wall, now_ns)
        self.ticks_released += len(batch)
        return batch

    def burst(self, multiplier: float, duration_s: float) -> None:
        """Play `multiplier` times faster for `duration_s` of wall time (no-op at speed=None)."""
        if not multiplier > 0.0 or duration_s < 0.0:
            raise ValueError("burst needs multiplier > 0 and duration_s >= 0")
        self._burst_mult = multiplier
        if self._wall_origin is None:
            self._burst_pending_s = duration_s
        else:
            self._burst_until_wall = self._last_wall + round(duration_s * SECOND_NS)
            self._burst_from_wall = self._last_wall

    # -- time mapping -----------------------------------------------------------------------

    def _replayed_ns(self, now_ns: int) -> int:
        """Replay nanoseconds elapsed by wall time `now_ns` (a burst plays faster)."""
        assert self._wall_origin is not None and self.speed is not None
        elapsed = now_ns - self._wall_origin
        extra = 0.0
        if self._burst_until_wall and self._burst_mult != 1.0:
            inside = max(0, min(now_ns, self._burst_until_wall) - self._burst_from_wall)
            extra = inside * (self._burst_mult - 1.0)
        return int((elapsed + extra) * self.speed)

    def _to_wall(self, ts: npt.NDArray[np.int64], now_ns: int) -> npt.NDArray[np.int64]:
        """Wall time each tick was due, never later than `now_ns`, never before the last call."""
        assert self._wall_origin is not None
        if self.speed is not None and not self._burst_until_wall:
            due = self._wall_origin + ((ts - self._replay_origin) / self.speed).astype(np.int64)
            return np.minimum(due, now_ns)
        # As fast as possible (or bursting): spread the released span over (last call, now].
        lo, hi = int(ts[0]), int(ts[-1])
        width = max(0, now_ns - self._last_wall - 1)
        frac = (ts - lo) / max(1, hi - lo)
        return self._last_wall + 1 + (frac * width).astype(np.int64)

    # -- merging ------------------------------------------------------------------------------

    def _open_until(self, t_ns: int) -> None:
        """Open every file whose first tick may be at or before `t_ns`."""
        while self._pending and self._pending[0].start_ns <= t_ns:
            src = self._pending.pop(0)
            ticks = read_source(src)
            index = self.registry.by_symbol(src.symbol).index if src.symbol in self.registry else -1
            self._open.append(_OpenSource(ticks, index))

    def _first_tick_ns(self) -> int:
        """The earliest tick over all files (opening only files that could hold it)."""
        best: int | None = None
        while True:
            live = [s.ticks.ts_event[s.cursor] for s in self._open if s.remaining]
            best = min(live) if live else None
            if not self._pending:
                break
            if best is not None and self._pending[0].start_ns > best:
                break
            self._open_until(self._pending[0].start_ns)
        return int(best) if best is not None else 0

    def _horizon_for(self, count: int) -> int:
        """A replay time past the next ~`count` ticks (at least one), all files considered."""
        while True:
            ends = [
                int(s.ticks.ts_event[min(len(s.ticks), s.cursor + count) - 1])
                for s in self._open
                if s.remaining
            ]
            horizon = min(ends) if ends else None
            if self._pending and (horizon is None or self._pending[0].start_ns <= horizon):
                self._open_until(self._pending[0].start_ns)
                continue
            return horizon if horizon is not None else self._replay_now

    def _release_until(self, horizon: int) -> TickBatch:
        self._open_until(horizon)
        parts: list[TickBatch] = []
        for src in self._open:
            end = int(np.searchsorted(src.ticks.ts_event, horizon, side="right"))
            if end <= src.cursor:
                continue
            sl = slice(src.cursor, end)
            src.cursor = end
            if src.instrument < 0:
                symbol = src.ticks.symbol
                self._skipped[symbol] = self._skipped.get(symbol, 0) + (sl.stop - sl.start)
                continue
            parts.append(
                TickBatch.from_arrays(
                    np.full(sl.stop - sl.start, src.instrument, np.uint32),
                    src.ticks.ts_event[sl],
                    src.ticks.price[sl],
                    src.ticks.size[sl],
                    src.ticks.kind[sl],
                )
            )
        self._open = [s for s in self._open if s.remaining]
        self._replay_now = horizon
        if not parts:
            return TickBatch.empty()
        merged = TickBatch.concat(parts)
        return merged.take(np.argsort(merged.ts_event, kind="stable"))


def replay_registry(
    symbols: Sequence[str] | Iterable[ReplaySource],
    equity_tick: float = 0.01,
    crypto_tick: float = 0.01,
    crypto_lot: float = 1e-5,
) -> InstrumentRegistry:
    """A registry for replayed symbols: stocks (no '/') first, then pairs, each sorted by name.

    Stocks are fractionable with a one-cent tick; pairs ('BTC/USDT') get `crypto_tick`,
    `crypto_lot` and Binance's $5 minimum notional.
    """
    names = {s.symbol if isinstance(s, ReplaySource) else str(s) for s in symbols}
    stocks = sorted(n for n in names if "/" not in n)
    pairs = sorted(n for n in names if "/" in n)
    items = [
        Instrument(i, sym, AssetClass.EQUITY, equity_tick, 1e-9, 1.0, True)
        for i, sym in enumerate(stocks)
    ]
    items += [
        Instrument(len(stocks) + i, sym, AssetClass.CRYPTO, crypto_tick, crypto_lot, 5.0, True)
        for i, sym in enumerate(pairs)
    ]
    return InstrumentRegistry(items)
