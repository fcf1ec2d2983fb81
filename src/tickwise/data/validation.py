"""Validation at the door: every tick passes here before any strategy sees it.

`TickValidator.validate(batch)` returns only the good ticks, in their original order, and
counts every rejected one under exactly one reason (the first rule it breaks, in this order):

    unknown_instrument  index >= n_instruments (or not an integer index)
    unknown_kind        kind not TRADE, BID or ASK
    bad_price           price NaN or infinite
    non_positive_price  price <= 0
    bad_size            size NaN, infinite or negative; or 0 on a trade
    out_of_order        ts_event earlier than the last accepted tick of the same instrument
    duplicate           same ts_event, kind, price and size as that last accepted tick

A size of 0 is accepted on a quote (the side is empty at that price: a venue pulling its
liquidity) but not on a trade, which always exchanges something. Equal timestamps are in order.
The per-instrument state (last accepted tick) carries over between batches, so a replay of an
old tick in a later batch is caught too. The stateful pass is one numba loop over the batch.
"""

from __future__ import annotations

from enum import IntEnum

import numba
import numpy as np
import numpy.typing as npt

from tickwise.model.ticks import TickBatch, TickKind

RejectCounts = dict[str, int]


class TickRejectReason(IntEnum):
    ACCEPTED = 0
    UNKNOWN_INSTRUMENT = 1
    UNKNOWN_KIND = 2
    BAD_PRICE = 3
    NON_POSITIVE_PRICE = 4
    BAD_SIZE = 5
    OUT_OF_ORDER = 6
    DUPLICATE = 7

    @property
    def label(self) -> str:
        return self.name.lower()


REJECT_REASONS: tuple[TickRejectReason, ...] = tuple(TickRejectReason)[1:]
_MAX_KIND = max(TickKind)


@numba.njit(cache=True)
def _check(
    instrument: npt.NDArray[np.int64],
    ts: npt.NDArray[np.int64],
    price: npt.NDArray[np.float64],
    size: npt.NDArray[np.float64],
    kind: npt.NDArray[np.int64],
    n_instruments: int,
    max_kind: int,
    has_last: npt.NDArray[np.bool_],
    last_ts: npt.NDArray[np.int64],
    last_price: npt.NDArray[np.float64],
    last_size: npt.NDArray[np.float64],
    last_kind: npt.NDArray[np.int64],
) -> npt.NDArray[np.int8]:
    """The reason code of each tick (0 = accepted); updates the last-accepted state in place."""
    out = np.zeros(instrument.size, dtype=np.int8)
    for k in range(instrument.size):
        i = instrument[k]
        p = price[k]
        s = size[k]
        if i < 0 or i >= n_instruments:
            out[k] = 1
        elif kind[k] < 0 or kind[k] > max_kind:
            out[k] = 2
        elif not np.isfinite(p):
            out[k] = 3
        elif p <= 0.0:
            out[k] = 4
        elif not np.isfinite(s) or s < 0.0 or (s == 0.0 and kind[k] == 0):
            out[k] = 5
        elif has_last[i] and ts[k] < last_ts[i]:
            out[k] = 6
        elif (
            has_last[i]
            and ts[k] == last_ts[i]
            and kind[k] == last_kind[i]
            and p == last_price[i]
            and s == last_size[i]
        ):
            out[k] = 7
        else:
            has_last[i] = True
            last_ts[i] = ts[k]
            last_price[i] = p
            last_size[i] = s
            last_kind[i] = kind[k]
    return out


def _as(values: object, dtype: type, n: int, fill: float | int) -> npt.NDArray:
    """A column as a 1-d array of `dtype` and length n; anything unreadable becomes `fill`."""
    try:
        arr = np.asarray(values)
        if arr.ndim != 1 or arr.shape[0] != n:
            raise ValueError
        if np.issubdtype(arr.dtype, np.floating) and np.issubdtype(dtype, np.integer):
            bad = ~np.isfinite(arr) | (arr != np.round(arr)) | (np.abs(arr) > 2.0**62)
            arr = np.where(bad, fill, arr)
        return np.ascontiguousarray(arr.astype(dtype))
    except (ValueError, TypeError, OverflowError):
        return np.full(n, fill, dtype=dtype)


class TickValidator:
    """Rejects and counts bad ticks; keeps each instrument's last accepted tick across batches."""

    def __init__(self, n_instruments: int) -> None:
        if n_instruments < 0:
            raise ValueError("n_instruments must be >= 0")
        self.n_instruments = n_instruments
        self._has_last = np.zeros(n_instruments, dtype=np.bool_)
        self._last_ts = np.zeros(n_instruments, dtype=np.int64)
        self._last_price = np.zeros(n_instruments, dtype=np.float64)
        self._last_size = np.zeros(n_instruments, dtype=np.float64)
        self._last_kind = np.zeros(n_instruments, dtype=np.int64)
        self._counts = np.zeros(len(TickRejectReason), dtype=np.int64)

    def reasons(self, batch: TickBatch) -> npt.NDArray[np.int8]:
        """Each tick's `TickRejectReason` code (0 = accepted), updating state and counts."""
        n = len(batch.instrument)
        # An index that does not fit int64 is unknown anyway: -1 marks it.
        codes = _check(
            _as(batch.instrument, np.int64, n, -1),
            _as(batch.ts_event, np.int64, n, 0),
            _as(batch.price, np.float64, n, np.nan),
            _as(batch.size, np.float64, n, np.nan),
            _as(batch.kind, np.int64, n, -1),
            self.n_instruments,
            int(_MAX_KIND),
            self._has_last,
            self._last_ts,
            self._last_price,
            self._last_size,
            self._last_kind,
        )
        self._counts += np.bincount(codes, minlength=len(TickRejectReason))
        return codes

    def validate(self, batch: TickBatch) -> TickBatch:
        """The good ticks of `batch`, in order; the others are counted by reason."""
        codes = self.reasons(batch)
        if not codes.any():
            return batch
        return batch.take(np.flatnonzero(codes == 0))

    @property
    def counts(self) -> RejectCounts:
        """Rejected ticks so far, per reason label (every reason present, zeros included)."""
        return {r.label: int(self._counts[r]) for r in REJECT_REASONS}

    @property
    def accepted(self) -> int:
        return int(self._counts[TickRejectReason.ACCEPTED])

    @property
    def rejected(self) -> int:
        return int(self._counts[1:].sum())
