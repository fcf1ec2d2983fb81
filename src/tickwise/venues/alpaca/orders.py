"""Alpaca orders on the wire, normalised (venues.md §1.2, §1.5, §6).

What the adapter sends (`market_order_body`) and what it reads back: an order object from a
REST answer or an event (`parse_order` -> `AlpacaOrder`), Alpaca's statuses and event names as
normalised `OrderState`s, and symbols as instrument indexes (orders spell crypto `BTC/USD`,
positions `BTCUSD`). Pure functions, no network.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tickwise.model.ids import ClientOrderId
from tickwise.model.instruments import AssetClass, Instrument, InstrumentRegistry, Venue
from tickwise.model.orders import OrderState, RejectReason, Side
from tickwise.venues.base import OrderStatus

# Order status -> normalised state (venues.md §6).
STATUS_STATES: Mapping[str, OrderState] = {
    "accepted": OrderState.SENT,
    "pending_new": OrderState.SENT,
    "new": OrderState.ACKED,
    "accepted_for_bidding": OrderState.ACKED,
    "held": OrderState.ACKED,
    "stopped": OrderState.ACKED,
    "calculated": OrderState.ACKED,
    "suspended": OrderState.ACKED,
    "pending_cancel": OrderState.ACKED,
    "pending_replace": OrderState.ACKED,
    "partially_filled": OrderState.PARTIALLY_FILLED,
    "filled": OrderState.FILLED,
    "canceled": OrderState.CANCELED,
    "replaced": OrderState.CANCELED,  # terminal for the old order; a new order replaces it
    "expired": OrderState.EXPIRED,
    "done_for_day": OrderState.EXPIRED,
    "rejected": OrderState.REJECTED,
}

# Stream events that end an order (trade_updates and Broker API trade events, §1.5 / §2).
TERMINAL_EVENTS: Mapping[str, OrderState] = {
    "fill": OrderState.FILLED,
    "canceled": OrderState.CANCELED,
    "expired": OrderState.EXPIRED,
    "done_for_day": OrderState.EXPIRED,
    "rejected": OrderState.REJECTED,
    "replaced": OrderState.CANCELED,
}

# The time in force of the engine's market orders per asset class (crypto takes gtc/ioc only).
MARKET_TIME_IN_FORCE: Mapping[AssetClass, str] = {
    AssetClass.EQUITY: "day",
    AssetClass.CRYPTO: "gtc",
}


class MalformedOrderError(ValueError):
    """An order object without the fields the adapter needs, or with unreadable ones."""


@dataclass(frozen=True, slots=True)
class AlpacaOrder:
    """The fields of one Alpaca order the adapter acts on."""

    order_id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: float
    status: str
    state: OrderState
    filled_qty: float
    filled_avg_price: float
    fee: float
    created_at: str


def _text(doc: Mapping[str, Any], name: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str) or not value:
        raise MalformedOrderError(f"order field {name!r} is missing or not text")
    return value


def _amount(doc: Mapping[str, Any], name: str, *, required: bool = False) -> float:
    """A decimal string (or number) field; 0 when absent and not required. Quantities, prices
    and commissions are never negative, so a negative one is malformed, not a short sale."""
    value = doc.get(name)
    if value is None or value == "":
        if required:
            raise MalformedOrderError(f"order field {name!r} is missing")
        return 0.0
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise MalformedOrderError(f"order field {name!r} is not a decimal")
    try:
        number = float(value)
    except (ValueError, OverflowError):  # OverflowError: an integer beyond any float
        raise MalformedOrderError(f"order field {name!r} is not a decimal") from None
    if not math.isfinite(number) or number < 0.0:
        raise MalformedOrderError(f"order field {name!r} is not a finite, non-negative decimal")
    return number


def parse_order(doc: object) -> AlpacaOrder:
    """An order object as the REST API and the streams carry it."""
    if not isinstance(doc, Mapping):
        raise MalformedOrderError("an order must be a JSON object")
    status = _text(doc, "status")
    state = STATUS_STATES.get(status)
    if state is None:
        raise MalformedOrderError(f"unknown order status {status[:40]!r}")
    side_text = _text(doc, "side")
    if side_text not in ("buy", "sell"):
        raise MalformedOrderError(f"unknown order side {side_text[:40]!r}")
    return AlpacaOrder(
        order_id=_text(doc, "id"),
        client_order_id=_text(doc, "client_order_id"),
        symbol=_text(doc, "symbol"),
        side=Side.BUY if side_text == "buy" else Side.SELL,
        qty=_amount(doc, "qty"),
        status=status,
        state=state,
        filled_qty=_amount(doc, "filled_qty"),
        filled_avg_price=_amount(doc, "filled_avg_price"),
        fee=_amount(doc, "commission"),  # Broker API only; the Trading API charges none
        created_at=str(doc.get("created_at") or ""),
    )


def decimal_text(value: float) -> str:
    """A quantity as Alpaca takes it: a decimal string with up to 9 places, no exponent."""
    if not math.isfinite(value):
        raise ValueError(f"not a finite quantity: {value}")
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def market_order_body(inst: Instrument, side: Side, qty: float, client_order_id: str) -> bytes:
    """`POST .../orders` for one market order (day for stocks, gtc for crypto)."""
    body = {
        "symbol": inst.symbol,
        "qty": decimal_text(qty),
        "side": "buy" if side is Side.BUY else "sell",
        "type": "market",
        "time_in_force": MARKET_TIME_IN_FORCE[inst.asset_class],
        "client_order_id": client_order_id,
    }
    return json.dumps(body, separators=(",", ":")).encode()


class SymbolIndex:
    """Alpaca symbols -> instrument indexes, in both spellings of a crypto pair."""

    def __init__(self, registry: InstrumentRegistry) -> None:
        self._index: dict[str, int] = {}
        for inst in registry:
            self._index[inst.symbol] = inst.index
            if inst.asset_class is AssetClass.CRYPTO:
                self._index.setdefault(inst.symbol.replace("/", ""), inst.index)

    def get(self, symbol: str) -> int | None:
        return self._index.get(symbol)


def order_status(
    order: AlpacaOrder, client: int, instrument: int, *, reason: RejectReason | None = None
) -> OrderStatus:
    """The normalised status of an Alpaca order of `client`."""
    if reason is None:
        rejected = order.state is OrderState.REJECTED
        reason = RejectReason.VENUE_ERROR if rejected else RejectReason.NONE
    return OrderStatus(
        client_order_id=ClientOrderId(order.client_order_id),
        venue=Venue.ALPACA,
        client=client,
        instrument=instrument,
        side=order.side,
        qty=order.qty,
        state=order.state,
        reason=reason,
        filled_qty=order.filled_qty,
        avg_fill_price=order.filled_avg_price,
        fee=order.fee,
        venue_message=order.status,
    )
