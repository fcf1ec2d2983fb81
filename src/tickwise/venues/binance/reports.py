"""What Binance says about one order, read from its answers and user data events.

`read_order` reads a new-order answer (ACK, RESULT or FULL), a query answer or an openOrders
row; `read_execution` an `executionReport` event. Both raise `ValueError` for an answer that
lacks what the adapter needs, which the adapter counts as malformed. Commissions are converted
to USD: stablecoins 1:1, the base asset at the fill price; any other asset (BNB) cannot be
priced here and leaves the fee unknown (None).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from tickwise.model.orders import OrderState, RejectReason, Side
from tickwise.venues.binance.wire import (
    ORDER_STATES,
    SIDE_OF,
    USD_ASSETS,
    number,
    stream_reject_reason,
)


@dataclass(frozen=True, slots=True)
class OrderReport:
    """One order as the venue reports it."""

    client_order_id: str
    symbol: str
    side: Side
    state: OrderState
    qty: float
    filled_qty: float
    avg_price: float
    fee: float | None  # USD; None when the answer does not say (query) or cannot be priced
    order_id: int


@dataclass(frozen=True, slots=True)
class ExecutionEvent:
    """One `executionReport`: the order's state after it and this execution's commission."""

    client_order_id: str  # the order's own id (`C` on cancels, else `c`)
    symbol: str
    side: Side
    exec_type: str
    state: OrderState
    reason: RejectReason
    qty: float
    filled_qty: float
    avg_price: float
    fee: float | None  # USD, of this execution only
    order_id: int


def fee_in_usd(commission: float, asset: str | None, base: str, price: float) -> float | None:
    """A commission in USD: stablecoins 1:1, the base asset at `price`, else None."""
    if commission == 0.0:
        return 0.0
    if asset in USD_ASSETS:
        return commission
    if asset == base:
        return _finite(commission * price, "commission in USD")
    return None


def _finite(value: float, what: str) -> float:
    """`value`, or ValueError when an answer's amounts multiply or add up past any float."""
    if not math.isfinite(value):
        raise ValueError(f"{what} is not finite")
    return value


def _average(quote: float, filled: float) -> float:
    """The average fill price from the quote total and the filled quantity (0 when none)."""
    return _finite(quote / filled, "average price") if filled > 0 else 0.0


def _text(body: Mapping[str, object], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"answer has no {name}")
    return value


def _integer(body: Mapping[str, object], name: str) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"answer has no integer {name}")
    return value


def _state(status: str) -> OrderState:
    try:
        return ORDER_STATES[status]
    except KeyError:
        raise ValueError(f"unknown order status {status!r}") from None


def _side(text: str) -> Side:
    try:
        return SIDE_OF[text]
    except KeyError:
        raise ValueError(f"unknown side {text!r}") from None


def read_order(body: object, base: str) -> OrderReport:
    """An order answer (`base` = the symbol's base asset, for commissions paid in it)."""
    if not isinstance(body, Mapping):
        raise ValueError("order answer is not an object")
    if "status" not in body:  # ACK: accepted, nothing decided yet
        return OrderReport(
            client_order_id=_text(body, "clientOrderId"),
            symbol=_text(body, "symbol"),
            side=Side.BUY,
            state=OrderState.ACKED,
            qty=0.0,
            filled_qty=0.0,
            avg_price=0.0,
            fee=None,
            order_id=_integer(body, "orderId"),
        )
    filled = number(body.get("executedQty", "0"))
    avg = _average(number(body.get("cummulativeQuoteQty", "0")), filled)
    fee: float | None = None
    fills = body.get("fills")
    if isinstance(fills, list):
        fee = 0.0
        for fill in fills:
            if not isinstance(fill, Mapping):
                raise ValueError("fill is not an object")
            asset = fill.get("commissionAsset")
            one = fee_in_usd(
                number(fill.get("commission", "0")),
                asset if isinstance(asset, str) else None,
                base,
                number(fill.get("price", "0")),
            )
            fee = None if one is None or fee is None else _finite(fee + one, "commission")
    return OrderReport(
        client_order_id=_text(body, "clientOrderId"),
        symbol=_text(body, "symbol"),
        side=_side(_text(body, "side")),
        state=_state(_text(body, "status")),
        qty=number(body.get("origQty", "0")),
        filled_qty=filled,
        avg_price=avg,
        fee=fee,
        order_id=_integer(body, "orderId"),
    )


def read_trades_fee(body: object, base: str) -> float | None:
    """The total commission in USD of `myTrades` rows; None when one cannot be priced."""
    if not isinstance(body, list):
        raise ValueError("myTrades answer is not a list")
    total = 0.0
    for trade in body:
        if not isinstance(trade, Mapping):
            raise ValueError("trade is not an object")
        asset = trade.get("commissionAsset")
        one = fee_in_usd(
            number(trade.get("commission", "0")),
            asset if isinstance(asset, str) else None,
            base,
            number(trade.get("price", "0")),
        )
        if one is None:
            return None
        total = _finite(total + one, "commission")
    return total


def read_execution(event: Mapping[str, object], base_of: Mapping[str, str]) -> ExecutionEvent:
    """An `executionReport`; `base_of` maps symbols to base assets (for commissions)."""
    symbol = _text(event, "s")
    side = _side(_text(event, "S"))
    original = event.get("C")
    coid = original if isinstance(original, str) and original else _text(event, "c")
    filled = number(event.get("z", "0"))
    avg = _average(number(event.get("Z", "0")), filled)
    state = _state(_text(event, "X"))
    reject = event.get("r")
    reason = (
        stream_reject_reason(reject if isinstance(reject, str) else "", side)
        if state is OrderState.REJECTED
        else RejectReason.NONE
    )
    asset = event.get("N")
    fee = fee_in_usd(
        number(event.get("n", "0") or "0"),
        asset if isinstance(asset, str) else None,
        base_of.get(symbol, ""),
        number(event.get("L", "0")),
    )
    return ExecutionEvent(
        client_order_id=coid,
        symbol=symbol,
        side=side,
        exec_type=_text(event, "x"),
        state=state,
        reason=reason,
        qty=number(event.get("q", "0")),
        filled_qty=filled,
        avg_price=avg,
        fee=fee,
        order_id=_integer(event, "i"),
    )
