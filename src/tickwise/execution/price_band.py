"""The fat-finger check: a per-instrument price band around the last price the desk accepted.

A signal whose price lies further than `band` (a share) from the instrument's reference price
is refused for every client. The reference is the price of the last accepted signal of the
instrument; the first signal seeds it.

What keeps a real, lasting move from being refused forever: `confirmations` consecutive refused
signals that agree with each other (each within the band of the one before it) confirm a new
level, and the reference moves to the latest of them; the next signal is judged against that.
Why this rule rather than moving the reference to every price seen:

- a lone bad print (a fat finger, a decimal slip, a corrupt tick) is refused and leaves the
  reference where it was, so the correct prices after it keep trading. Moving the reference to
  every seen price would make the bad print the reference and refuse the good price after it
  too, and would let a run of alternating bad prints keep the band moving;
- a real gap (news, an open) costs `confirmations` refused signals on that instrument and then
  trades: a desk wants a few confirming prints before acting on a 20 % jump, never to be locked
  out of the instrument until someone intervenes. `confirmations=1` is the "move to each seen
  price but refuse the order" rule.

A refused signal that does not agree with the one before restarts the count at itself; an
accepted signal clears it. The first signal of an instrument is trusted (there is nothing to
compare it with): a feed whose very first price is wrong is caught by its second one, which then
confirms the correct level after `confirmations` signals. `band == 0` accepts every price (the
reference still follows, so switching the band on mid-session compares with a current price).

State is three arrays indexed by instrument; `admit` takes signals on distinct instruments (the
allocator's rounds guarantee it) and is vectorised over them.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


class PriceBand:
    """Per-instrument reference prices and the band check against them."""

    def __init__(self, n_instruments: int, band: float, confirmations: int) -> None:
        if not band >= 0.0:
            raise ValueError("band must be >= 0 (0 accepts every price)")
        if confirmations < 1:
            raise ValueError("confirmations must be >= 1")
        self.band = band
        self.confirmations = confirmations
        self._reference = np.full(n_instruments, np.nan)
        self._pending = np.full(n_instruments, np.nan)  # last refused price of the current run
        self._run = np.zeros(n_instruments, dtype=np.int64)  # refused signals in that run

    def reference(self) -> npt.NDArray[np.float64]:
        """The reference price of every instrument (NaN before its first signal)."""
        return self._reference.copy()

    def admit(
        self, instrument: npt.NDArray[np.intp], price: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.bool_]:
        """Which signals are within the band; moves the references (see module docstring).

        `instrument` must hold distinct instruments and `price` finite positive prices.
        """
        reference = self._reference[instrument]
        inside = np.isnan(reference) | (np.abs(price - reference) <= self.band * reference)
        if self.band == 0.0:
            inside[:] = True
        outside = ~inside
        pending = self._pending[instrument]
        agrees = outside & (np.abs(price - pending) <= self.band * pending)  # False on NaN
        run = np.where(inside, 0, np.where(agrees, self._run[instrument] + 1, 1))
        confirmed = run >= self.confirmations
        self._reference[instrument] = np.where(inside | confirmed, price, reference)
        self._pending[instrument] = np.where(outside & ~confirmed, price, np.nan)
        self._run[instrument] = np.where(confirmed, 0, run)
        return np.asarray(inside)
