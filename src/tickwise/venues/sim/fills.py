"""Fill prices and the arrival-order fill kernel of the venue simulator.

Whether an order can be paid for depends on every fill before it on the same account, so fills
are decided one order at a time in arrival order; the loop runs compiled (numba) over columns.
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

from tickwise.model.orders import RejectReason

_INSUFFICIENT_BUYING_POWER = int(RejectReason.INSUFFICIENT_BUYING_POWER)
_INSUFFICIENT_POSITION = int(RejectReason.INSUFFICIENT_POSITION)


def fill_prices(
    price: npt.NDArray[np.float64],
    side: npt.NDArray[np.int8],
    half_spread: npt.NDArray[np.float64],
    tick: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """Buys pay the ask, sells get the bid, each rounded away from the client to the tick."""
    raw = price * (1.0 + side * half_spread)
    steps = raw / tick
    # The small slack keeps a price already on the tick from moving a whole tick on float noise.
    rounded = np.where(side > 0, np.ceil(steps - 1e-9), np.floor(steps + 1e-9))
    return np.asarray(np.maximum(rounded, 1.0) * tick, dtype=np.float64)


@numba.njit(cache=True)
def fill_in_arrival_order(
    eligible: npt.NDArray[np.bool_],
    account: npt.NDArray[np.intp],
    slot: npt.NDArray[np.intp],
    side: npt.NDArray[np.int8],
    qty: npt.NDArray[np.float64],
    notional: npt.NDArray[np.float64],
    fee: npt.NDArray[np.float64],
    cash: npt.NDArray[np.float64],
    position: npt.NDArray[np.float64],
    increment: npt.NDArray[np.float64],
) -> npt.NDArray[np.int8]:
    """Fill eligible orders in the order given, updating `cash` and `position` in place.

    A buy needs cash >= notional + fee; a sell needs a long position of at least its quantity
    (no shorting), within half a quantity increment of float noise. A position left within
    half an increment of zero is flat; anything larger (one lot included) is kept, as the
    venue would. Returns the reject reason per order (0 where filled or not eligible).
    """
    n = qty.shape[0]
    reason = np.zeros(n, np.int8)
    for i in range(n):
        if not eligible[i]:
            continue
        a = account[i]
        s = slot[i]
        if side[i] > 0:
            cost = notional[i] + fee[i]
            if cash[a] < cost:
                reason[i] = _INSUFFICIENT_BUYING_POWER
                continue
            cash[a] -= cost
            position[s] += qty[i]
        else:
            held = position[s]
            if held + 0.5 * increment[i] < qty[i]:
                reason[i] = _INSUFFICIENT_POSITION
                continue
            cash[a] += notional[i] - fee[i]
            left = held - qty[i]
            position[s] = 0.0 if abs(left) < 0.5 * increment[i] else left
    return reason
