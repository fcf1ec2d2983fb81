"""`TickSeries`: many instruments' histories laid out for the grid kernels.

The kernels walk one instrument's ticks per (instrument, parameter set), so the ticks are stored
instrument after instrument (CSR layout): instrument k owns rows `offsets[k]:offsets[k + 1]`,
in time order. Columns have the dtypes the step kernels take (float64 prices and sizes, int64
kinds and times), so no kernel converts anything per tick, on CPU or GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tickwise.model.instruments import AssetClass, InstrumentRegistry
from tickwise.model.ticks import TickBatch

# Seconds of trading per year used to annualise ratios: US equities trade 252 sessions of
# 6.5 hours, crypto trades around the clock.
EQUITY_SECONDS_PER_YEAR = 252 * 6.5 * 3600.0
CRYPTO_SECONDS_PER_YEAR = 365.0 * 86_400.0


class BacktestInputError(ValueError):
    """Input the backtester cannot run on: empty data, bad grid, unknown strategy..."""


@dataclass(frozen=True, slots=True)
class TickSeries:
    """Ticks of several instruments, instrument by instrument, each in time order."""

    symbols: tuple[str, ...]
    offsets: npt.NDArray[np.int64]  # (n_instruments + 1,)
    ts: npt.NDArray[np.int64]
    price: npt.NDArray[np.float64]
    size: npt.NDArray[np.float64]
    kind: npt.NDArray[np.int64]
    asset_class: npt.NDArray[np.uint8]  # (n_instruments,) AssetClass, for fees and annualising

    def __post_init__(self) -> None:
        n = len(self.symbols)
        if self.offsets.shape != (n + 1,) or self.offsets[0] != 0:
            raise BacktestInputError("offsets must have one entry per instrument plus one")
        if np.any(np.diff(self.offsets) < 0) or self.offsets[-1] != self.ts.size:
            raise BacktestInputError("offsets must rise to the number of ticks")
        for name in ("price", "size", "kind"):
            if getattr(self, name).size != self.ts.size:
                raise BacktestInputError(f"column {name!r} has another length than 'ts'")
        if self.asset_class.shape != (n,):
            raise BacktestInputError("one asset class per instrument")

    def __len__(self) -> int:
        return len(self.symbols)

    @property
    def n_ticks(self) -> int:
        return int(self.ts.size)

    def counts(self) -> npt.NDArray[np.int64]:
        return np.diff(self.offsets)

    @property
    def seconds_per_year(self) -> npt.NDArray[np.float64]:
        """Each instrument's annualisation basis (trading seconds in a year)."""
        crypto = self.asset_class == AssetClass.CRYPTO
        return np.where(crypto, CRYPTO_SECONDS_PER_YEAR, EQUITY_SECONDS_PER_YEAR)

    def instrument(self, k: int) -> TickBatch:
        """Instrument k's ticks as a TickBatch (instrument index = k)."""
        lo, hi = int(self.offsets[k]), int(self.offsets[k + 1])
        return TickBatch.from_arrays(
            np.full(hi - lo, k, np.uint32),
            self.ts[lo:hi],
            self.price[lo:hi],
            self.size[lo:hi],
            self.kind[lo:hi].astype(np.uint8),
        )

    def select(self, keep: Sequence[int] | npt.NDArray[np.int64]) -> TickSeries:
        """The instruments at positions `keep`, in that order."""
        parts = []
        for k in np.asarray(keep, np.int64):
            lo, hi = int(self.offsets[k]), int(self.offsets[k + 1])
            parts.append(
                TickSeries(
                    (self.symbols[k],),
                    np.array([0, hi - lo], np.int64),
                    self.ts[lo:hi],
                    self.price[lo:hi],
                    self.size[lo:hi],
                    self.kind[lo:hi],
                    self.asset_class[k : k + 1],
                )
            )
        return TickSeries.concat(parts)

    def until(self, ts_ns: int) -> TickSeries:
        """The same instruments with every tick after `ts_ns` removed (for look-ahead checks)."""
        keep = self.ts <= ts_ns
        owner = np.repeat(np.arange(len(self)), self.counts())
        counts = np.bincount(owner[keep], minlength=len(self))
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return TickSeries(
            self.symbols,
            offsets,
            self.ts[keep],
            self.price[keep],
            self.size[keep],
            self.kind[keep],
            self.asset_class,
        )

    @classmethod
    def from_batch(
        cls,
        batch: TickBatch,
        registry: InstrumentRegistry,
        instruments: Sequence[int] | npt.NDArray[np.int64] | None = None,
    ) -> TickSeries:
        """Group a time-ordered batch by instrument (ties keep their order).

        `instruments` picks and orders the instruments (default: every instrument that has a
        tick, in registry order); an asked instrument without ticks gets an empty history.
        """
        inst = batch.instrument.astype(np.int64)
        chosen = np.unique(inst) if instruments is None else np.asarray(instruments, dtype=np.int64)
        if chosen.size and (chosen.min() < 0 or chosen.max() >= len(registry)):
            raise BacktestInputError("instrument index outside the registry")
        if np.unique(chosen).size != chosen.size:
            raise BacktestInputError("an instrument is asked for twice")
        position = np.full(len(registry), -1, np.int64)
        position[chosen] = np.arange(chosen.size)
        where = position[inst] if inst.size else inst
        keep = where >= 0
        order = np.argsort(where[keep], kind="stable")
        rows = np.flatnonzero(keep)[order]
        counts = np.bincount(where[keep], minlength=chosen.size)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(
            symbols=tuple(registry[int(i)].symbol for i in chosen),
            offsets=offsets,
            ts=np.ascontiguousarray(batch.ts_event[rows], np.int64),
            price=np.ascontiguousarray(batch.price[rows], np.float64),
            size=np.ascontiguousarray(batch.size[rows], np.float64),
            kind=np.ascontiguousarray(batch.kind[rows], np.int64),
            asset_class=registry.asset_class[chosen].astype(np.uint8),
        )

    @classmethod
    def concat(cls, parts: Sequence[TickSeries]) -> TickSeries:
        """Instruments of several series side by side (e.g. one per loaded file)."""
        if not parts:
            raise BacktestInputError("nothing to concatenate")
        sizes = [p.n_ticks for p in parts]
        starts = np.cumsum([0, *sizes[:-1]])
        offsets = np.concatenate(
            [[0]] + [p.offsets[1:] + s for p, s in zip(parts, starts, strict=True)]
        ).astype(np.int64)
        return cls(
            symbols=tuple(s for p in parts for s in p.symbols),
            offsets=offsets,
            ts=np.concatenate([p.ts for p in parts]),
            price=np.concatenate([p.price for p in parts]),
            size=np.concatenate([p.size for p in parts]),
            kind=np.concatenate([p.kind for p in parts]),
            asset_class=np.concatenate([p.asset_class for p in parts]),
        )
