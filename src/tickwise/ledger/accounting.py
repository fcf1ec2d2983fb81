"""The average-cost accounting kernel: one fill's effect on a position, its cost and cash.

Money is integer micro-dollars (µ$, 1e-6 USD). A position's cost basis is the signed sum of the
notionals that opened it (short positions carry a negative cost). Closing part of a position
releases the same share of its cost, rounded half-even to the µ$; the difference to the closing
notional is realised PnL. Fees are paid from cash and charged to realised PnL when paid. So for
every client, at every moment and exactly:

    cash + sum(cost basis) == initial cash + realised PnL

Fills of one position depend on each other, so the kernel runs them one at a time in the given
order, compiled.
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

# A position whose size is within this share of a closing fill is closed by it (float noise).
FLAT_TOLERANCE = 1e-12


@numba.njit(cache=True)
def apply_fills(
    account: npt.NDArray[np.intp],
    slot: npt.NDArray[np.intp],
    signed_qty: npt.NDArray[np.float64],
    notional_u: npt.NDArray[np.int64],
    fee_u: npt.NDArray[np.int64],
    position: npt.NDArray[np.float64],
    cost_u: npt.NDArray[np.float64],
    cash_u: npt.NDArray[np.int64],
    realised_u: npt.NDArray[np.int64],
    fees_u: npt.NDArray[np.int64],
) -> None:
    """Apply fills in order, in place. `cost_u` holds whole µ$ (exact in float64 below 2**53)."""
    for i in range(signed_qty.shape[0]):
        a = account[i]
        s = slot[i]
        dq = signed_qty[i]
        direction = 1.0 if dq > 0 else -1.0
        n = notional_u[i]
        q = position[s]
        c = cost_u[s]
        cash_u[a] -= np.int64(direction) * n + fee_u[i]
        fees_u[a] += fee_u[i]
        realised_u[a] -= fee_u[i]
        if q == 0.0 or (q > 0.0) == (dq > 0.0):
            position[s] = q + dq
            cost_u[s] = c + direction * n
            continue
        size = abs(q)
        fill = abs(dq)
        if fill < size * (1.0 - FLAT_TOLERANCE):
            # Partly closes the position: release the same share of its cost.
            released = np.rint(c * (fill / size))
            realised_u[a] += np.int64(-direction * n - released)
            position[s] = q + dq
            cost_u[s] = c - released
        elif fill <= size * (1.0 + FLAT_TOLERANCE):
            # Closes it exactly.
            realised_u[a] += np.int64(-direction * n - c)
            position[s] = 0.0
            cost_u[s] = 0.0
        else:
            # Closes it and opens the other way with the rest of the fill.
            closing_n = np.rint(n * (size / fill))
            realised_u[a] += np.int64(-direction * closing_n - c)
            position[s] = direction * (fill - size)
            cost_u[s] = direction * (n - closing_n)
