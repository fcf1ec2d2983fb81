"""E*Trade v1 request bodies and answers, as the adapter writes and reads them (JSON).

Pure functions. Answers are read defensively, as venues.md §4.2-§4.3 warns: single-element arrays
may come as objects, key casing varies (`Messages`/`messages`), numbers may be strings, and an
empty order list is an empty body (HTTP 204). Anything missing a field the adapter needs raises
`EtradeFormatError`, which the adapter counts and treats as "no answer".
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from tickwise.venues.http import decode_json

MARKET = "MARKET"
DAY = "GOOD_FOR_DAY"


class EtradeFormatError(ValueError):
    """An E*Trade answer that is not the document the call returns."""


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """One equity market order as E*Trade takes it: whole shares, good for the day."""

    client_order_id: str
    symbol: str
    action: str  # BUY | SELL
    quantity: int

    def _body(self) -> dict[str, Any]:
        return {
            "orderType": "EQ",
            "clientOrderId": self.client_order_id,
            "Order": [
                {
                    "allOrNone": False,
                    "priceType": MARKET,
                    "orderTerm": DAY,
                    "marketSession": "REGULAR",
                    "stopPrice": 0,
                    "Instrument": [
                        {
                            "Product": {"securityType": "EQ", "symbol": self.symbol},
                            "orderAction": self.action,
                            "quantityType": "QUANTITY",
                            "quantity": self.quantity,
                        }
                    ],
                }
            ],
        }

    def preview_body(self) -> bytes:
        return json.dumps({"PreviewOrderRequest": self._body()}).encode()

    def place_body(self, preview_id: int) -> bytes:
        """The identical order with the preview's id (E*Trade refuses anything else, 101)."""
        body = self._body()
        body["PreviewIds"] = [{"previewId": preview_id}]
        return json.dumps({"PlaceOrderRequest": body}).encode()


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """One entry of an orders list (E*Trade does not echo the clientOrderId)."""

    order_id: int
    status: str
    symbol: str
    action: str
    price_type: str
    ordered_qty: float
    filled_qty: float
    avg_price: float
    commission: float
    placed_ms: int


@dataclass(frozen=True, slots=True)
class OrdersPage:
    orders: list[VenueOrder]
    marker: str | None  # where the next page starts; None on the last page


# --- reading helpers ------------------------------------------------------------------------------


def parse_json(body: bytes) -> Any:
    """A JSON answer; an empty body is None (E*Trade's 204 for an empty list)."""
    if not body.strip():
        return None
    try:
        return decode_json(body)
    except ValueError:
        raise EtradeFormatError(f"answer is not JSON: {_snippet(body)}") from None


def _snippet(body: bytes) -> str:
    return " ".join(body[:80].decode("utf-8", "replace").split())


def member(node: object, name: str) -> Any:
    """A member of an object by name in any case; None when absent."""
    if not isinstance(node, Mapping):
        return None
    if name in node:
        return node[name]
    lowered = name.lower()
    for key, value in node.items():
        if isinstance(key, str) and key.lower() == lowered:
            return value
    return None


def items(node: object) -> list[Any]:
    """An array as a list, a single object as a one-element list, nothing as []."""
    if node is None:
        return []
    return list(node) if isinstance(node, list) else [node]


def _required(node: object, name: str, where: str) -> Any:
    value = member(node, name)
    if value is None:
        raise EtradeFormatError(f"{where} has no {name}")
    return value


def _number(value: object, what: str, default: float | None = None) -> float:
    if value is None or value == "":
        if default is None:
            raise EtradeFormatError(f"{what} is missing")
        return default
    try:
        number = float(str(value))
    except ValueError:
        raise EtradeFormatError(f"{what} is not a number") from None
    if not math.isfinite(number):
        raise EtradeFormatError(f"{what} is not finite")
    return number


def _amount(value: object, what: str, default: float | None = None) -> float:
    """A quantity, price or commission of an order: a number that is never negative."""
    number = _number(value, what, default)
    if number < 0.0:
        raise EtradeFormatError(f"{what} is negative")
    return number


def _integer(value: object, what: str) -> int:
    number = _number(value, what)
    if number != math.floor(number):
        raise EtradeFormatError(f"{what} is not a whole number")
    return int(number)


# --- answers --------------------------------------------------------------------------------------


def preview_id(doc: Any) -> int:
    response = _required(doc, "PreviewOrderResponse", "preview answer")
    ids = items(_required(response, "PreviewIds", "PreviewOrderResponse"))
    if not ids:
        raise EtradeFormatError("PreviewOrderResponse has no previewId")
    return _integer(member(ids[0], "previewId"), "previewId")


def placed_order_id(doc: Any) -> int:
    response = _required(doc, "PlaceOrderResponse", "place answer")
    ids = items(_required(response, "OrderIds", "PlaceOrderResponse"))
    if not ids:
        raise EtradeFormatError("PlaceOrderResponse has no orderId")
    return _integer(member(ids[0], "orderId"), "orderId")


def orders_page(doc: Any) -> OrdersPage:
    """An orders list (or an order's details); None (an empty answer) is an empty page."""
    if doc is None:
        return OrdersPage([], None)
    response = _required(doc, "OrdersResponse", "orders answer")
    orders = [_venue_order(entry) for entry in items(member(response, "Order"))]
    marker = member(response, "marker")
    more = marker not in (None, "") and bool(orders)
    return OrdersPage(orders, str(marker) if more else None)


def _venue_order(entry: object) -> VenueOrder:
    order_id = _integer(member(entry, "orderId"), "orderId")
    details = items(member(entry, "OrderDetail"))
    if not details:
        raise EtradeFormatError(f"order {order_id} has no OrderDetail")
    detail = details[0]
    legs = items(member(detail, "Instrument"))
    if not legs:
        raise EtradeFormatError(f"order {order_id} has no Instrument")
    leg = legs[0]
    filled = _amount(member(leg, "filledQuantity"), "filledQuantity", 0.0)
    return VenueOrder(
        order_id=order_id,
        status=str(_required(detail, "status", f"order {order_id}")).upper(),
        symbol=str(member(member(leg, "Product"), "symbol") or "").upper(),
        action=str(member(leg, "orderAction") or "").upper(),
        price_type=str(member(detail, "priceType") or "").upper(),
        ordered_qty=_amount(member(leg, "orderedQuantity"), "orderedQuantity"),
        filled_qty=filled,
        avg_price=_amount(member(leg, "averageExecutionPrice"), "averageExecutionPrice", 0.0),
        commission=_amount(
            member(leg, "commission") or member(leg, "estimatedCommission"), "commission", 0.0
        ),
        placed_ms=_integer(member(detail, "placedTime") or 0, "placedTime"),
    )


def portfolio(doc: Any) -> tuple[list[tuple[str, float]], int]:
    """(symbol, signed quantity) per position, and the number of pages."""
    if doc is None:
        return [], 1
    response = _required(doc, "PortfolioResponse", "portfolio answer")
    out: list[tuple[str, float]] = []
    pages = 1
    for account in items(member(response, "AccountPortfolio")):
        total = member(account, "totalPages")
        pages = max(pages, 1 if total in (None, "") else _integer(total, "totalPages"))
        for position in items(member(account, "Position")):
            symbol = str(member(member(position, "Product"), "symbol") or "").upper()
            qty = abs(_number(member(position, "quantity"), "quantity"))
            short = str(member(position, "positionType") or "LONG").upper() == "SHORT"
            if not symbol:
                raise EtradeFormatError("a position has no symbol")
            out.append((symbol, -qty if short else qty))
    return out, pages


def cash_balance(doc: Any) -> float:
    response = _required(doc, "BalanceResponse", "balance answer")
    computed = _required(response, "Computed", "BalanceResponse")
    return _number(member(computed, "cashBalance"), "Computed.cashBalance")


def oauth_problem(body: bytes) -> str:
    """The `oauth_problem` of a 401 answer ("" when it names none)."""
    text = body[:2000].decode("utf-8", "replace").strip()
    return dict(parse_qsl(text, keep_blank_values=True)).get("oauth_problem", "")
