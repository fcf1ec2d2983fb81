"""Pre-trade checks on candidate orders, vectorised over a whole fan-out.

Each function takes columns (one row per candidate order) and returns new columns or a mask; none
keeps state, so the allocator composes them and tests check each alone. Quantities are unsigned;
`side` is +1 (buy) / -1 (sell). A clip only ever makes an order smaller and keeps its quantity a
multiple of the venue increment. `RISK_REASONS` names the `RejectReason` behind each check,
these and the stateful ones (`price_band`, `daily_loss`, `throttle`, the allocator's halts and
stale-data guard).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tickwise.model.orders import RejectReason

F64 = npt.NDArray[np.float64]
# Tolerance for float noise when dividing by an increment (0.3 / 0.1 = 2.9999999999999996).
_INCREMENT_EPS = 1e-9

RISK_REASONS: dict[str, RejectReason] = {
    "max_order_notional": RejectReason.RISK_MAX_ORDER_NOTIONAL,
    "max_position": RejectReason.RISK_MAX_POSITION,
    "buying_power": RejectReason.RISK_BUYING_POWER,
    "min_notional": RejectReason.BELOW_MIN_NOTIONAL,
    "no_short": RejectReason.INSUFFICIENT_POSITION,
    "price_band": RejectReason.RISK_PRICE_BAND,
    "stale_data": RejectReason.RISK_STALE_DATA,
    "max_daily_loss": RejectReason.RISK_MAX_DAILY_LOSS,
    "halted": RejectReason.RISK_HALTED,
    "throttled": RejectReason.RISK_THROTTLED,
}


def round_down_to_increment(qty: F64, increment: F64) -> F64:
    """Unsigned quantities rounded toward zero to a multiple of `increment`."""
    steps = np.floor(np.maximum(qty, 0.0) / increment + _INCREMENT_EPS)
    return np.asarray(steps * increment, dtype=np.float64)


def cap_sells_at_position(
    qty: F64, side: npt.NDArray[np.int8], position: F64, increment: F64
) -> F64:
    """No shorts: a sell never exceeds the (expected) position held."""
    sellable = round_down_to_increment(position, increment)
    return np.where(side < 0, np.minimum(qty, sellable), qty)


def below_band(notional: F64, equity: F64, band: float) -> npt.NDArray[np.bool_]:
    """Orders too small to be worth trading: under `band` (a share) of the client's equity."""
    return np.asarray(notional < equity * band)


def below_min_notional(notional: F64, min_notional: F64) -> npt.NDArray[np.bool_]:
    """Orders the venue would refuse for their size."""
    return np.asarray(notional < min_notional)


def clip_to_max_position(
    qty: F64,
    side: npt.NDArray[np.int8],
    position: F64,
    price: F64,
    equity: F64,
    max_position_weight: F64,
    increment: F64,
) -> F64:
    """Buys clipped so the position after the order stays within the client's weight limit."""
    room = max_position_weight * equity / price - position
    allowed = round_down_to_increment(room, increment)
    return np.where(side > 0, np.minimum(qty, allowed), qty)


def exceeds_max_order_notional(notional: F64, max_order_notional: F64) -> npt.NDArray[np.bool_]:
    """Orders larger than the client's single-order limit: rejected, never split."""
    return np.asarray(notional > max_order_notional)


def buy_cost(qty: F64, side: npt.NDArray[np.int8], price: F64, fee_buffer: float) -> F64:
    """Cash a buy reserves: notional plus a buffer for fees and slippage (0 for sells)."""
    return np.where(side > 0, qty * price * (1.0 + fee_buffer), 0.0)


def clip_to_buying_power(
    qty: F64,
    side: npt.NDArray[np.int8],
    client_row: npt.NDArray[np.intp],
    price: F64,
    cash: F64,
    fee_buffer: float,
    increment: F64,
    *,
    clip: bool = True,
) -> F64:
    """Buys limited to each client's available cash, fees buffered.

    A client may receive several buys in one pass (signals on several instruments); when their
    cost exceeds the cash, every buy of that client is scaled down by the same factor and
    rounded down to its increment (`clip=True`), or all of them are dropped (`clip=False`).
    `cash` is indexed by `client_row`. Sells are never touched.
    """
    cost = buy_cost(qty, side, price, fee_buffer)
    wanted = np.bincount(client_row, weights=cost, minlength=cash.size)
    available = np.maximum(cash, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(wanted > available, available / wanted, 1.0)
    if not clip:
        scale = np.where(scale < 1.0, 0.0, 1.0)
    factor = scale[client_row]
    scaled = round_down_to_increment(qty * factor, increment)
    return np.where((side > 0) & (factor < 1.0), scaled, qty)


def market_data_usable(price: F64, bid: F64, ask: F64) -> npt.NDArray[np.bool_]:
    """Signals that can be traded on: finite positive price, bid and ask, and a book that is not
    crossed (bid > ask). A locked book (bid == ask) is a real quote and passes."""
    finite = np.isfinite(price) & np.isfinite(bid) & np.isfinite(ask)
    with np.errstate(invalid="ignore"):
        return np.asarray(finite & (price > 0) & (bid > 0) & (ask > 0) & (bid <= ask))


def stale(ts_event: npt.NDArray[np.int64], now_ns: int, max_age_ns: int) -> npt.NDArray[np.bool_]:
    """Market data older than `max_age_ns` at `now_ns`; `max_age_ns == 0` disables the check.
    Data stamped after `now_ns` (clocks a little apart) is not stale."""
    if max_age_ns <= 0:
        return np.zeros(ts_event.size, dtype=np.bool_)
    return np.asarray(ts_event < now_ns - max_age_ns)  # age > max, without int64 overflow
