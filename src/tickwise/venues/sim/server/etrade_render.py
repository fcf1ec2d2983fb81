"""E*Trade's documents as the simulator writes and reads them, in JSON and in XML.

One document tree serves both formats: a dict of one root key, nested dicts for objects, lists
for arrays (in XML a list is the element repeated, as E*Trade writes `<Order>` once per order),
and scalars. Requests arrive the same way: JSON bodies as they are, XML bodies (pyetrade's
preview, place and cancel) parsed into the same tree with text leaves.

Also here: the order request as the simulator compares a place with its preview (`OrderSpec`),
and the order, position, balance and error documents (venues.md §4.2-§4.3).
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from tickwise.model.orders import OrderState, Side
from tickwise.venues.http import decode_json
from tickwise.venues.sim.exchange import SimOrder

RATE_LIMIT_PAGE = (
    "<html><head><title>Rate limit</title></head><body>"
    "<p>Number of requests exceeded the rate limit set</p></body></html>"
)
STATUS_OF_STATE: dict[OrderState, str] = {
    OrderState.ACKED: "OPEN",
    OrderState.PARTIALLY_FILLED: "PARTIAL",
    OrderState.FILLED: "EXECUTED",
    OrderState.CANCELED: "CANCELLED",
    OrderState.REJECTED: "REJECTED",
    OrderState.EXPIRED: "EXPIRED",
}
ACTION_OF_SIDE = {Side.BUY: "BUY", Side.SELL: "SELL"}


class RequestFormatError(ValueError):
    """A request body that is not the JSON or XML document the call expects."""


# --- encoding and decoding ----------------------------------------------------------------------


def _xml_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "0"
    return str(value)


def _xml_element(tag: str, value: object, out: list[str]) -> None:
    if isinstance(value, list):
        for item in value:
            _xml_element(tag, item, out)
    elif isinstance(value, Mapping):
        out.append(f"<{tag}>")
        for key, child in value.items():
            _xml_element(str(key), child, out)
        out.append(f"</{tag}>")
    elif value is None:
        out.append(f"<{tag}/>")
    else:
        out.append(f"<{tag}>{escape(_xml_text(value))}</{tag}>")


def to_xml(doc: Mapping[str, Any]) -> bytes:
    """A one-root document as XML."""
    if len(doc) != 1:
        raise ValueError("an XML document has exactly one root")
    out = ['<?xml version="1.0" encoding="UTF-8" standalone="yes"?>']
    for tag, value in doc.items():
        _xml_element(tag, value, out)
    return "".join(out).encode("utf-8")


def to_json(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


def _tree(element: ET.Element) -> Any:
    children = list(element)
    if not children:
        return (element.text or "").strip()
    out: dict[str, Any] = {}
    for child in children:
        value = _tree(child)
        if child.tag in out:
            previous = out[child.tag]
            out[child.tag] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            out[child.tag] = value
    return out


def parse_body(body: bytes, content_type: str) -> dict[str, Any]:
    """A JSON or XML request body as a document tree (one root key)."""
    text = body.decode("utf-8", "replace").strip()
    if not text:
        raise RequestFormatError("the request has no body")
    if "json" in content_type or text.startswith("{"):
        try:
            doc = decode_json(text)
        except ValueError as exc:
            raise RequestFormatError(f"request body is not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or len(doc) != 1:
            raise RequestFormatError("request body must be an object with one root key")
        return doc
    if "<!doctype" in text[:4096].lower() or "<!entity" in text.lower():
        raise RequestFormatError("document type declarations are not accepted")
    try:
        root = ET.fromstring(text)
        return {root.tag: _tree(root)}
    except ET.ParseError as exc:
        raise RequestFormatError(f"request body is not valid XML: {exc}") from None
    except RecursionError:  # elements nested deeper than any order document
        raise RequestFormatError("request body is nested too deeply") from None


# --- reading requests -----------------------------------------------------------------------------


def field(node: object, name: str) -> Any:
    """A member of an object by name, any case; None when absent."""
    if not isinstance(node, Mapping):
        return None
    if name in node:
        return node[name]
    lowered = name.lower()
    for key, value in node.items():
        if str(key).lower() == lowered:
            return value
    return None


def first(node: object) -> Any:
    """The object itself, or the first of a list (XML gives objects where JSON gives arrays)."""
    if isinstance(node, list):
        return node[0] if node else None
    return node


def as_number(value: object, what: str, default: float | None = None) -> float:
    if value is None or value == "":
        if default is None:
            raise RequestFormatError(f"{what} is required")
        return default
    try:
        number = float(str(value))
    except ValueError:
        raise RequestFormatError(f"{what} is not a number: {str(value)[:40]!r}") from None
    if not math.isfinite(number):
        raise RequestFormatError(f"{what} is not a finite number")
    return number


def as_bool(value: object) -> bool:
    return str(value).strip().lower() == "true"


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """An equity order request as the simulator compares a place with its preview."""

    order_type: str
    client_order_id: str
    symbol: str
    security_type: str
    action: str
    quantity: float
    price_type: str
    limit_price: float
    stop_price: float
    order_term: str
    market_session: str
    all_or_none: bool


def order_spec(doc: Mapping[str, Any], root: str) -> OrderSpec:
    """The order of a `PreviewOrderRequest` or `PlaceOrderRequest` (one order, one leg)."""
    request = field(doc, root)
    if not isinstance(request, Mapping):
        raise RequestFormatError(f"expected a {root} document")
    order = first(field(request, "Order"))
    instrument = first(field(order, "Instrument"))
    product = field(instrument, "Product")
    if not isinstance(order, Mapping) or not isinstance(instrument, Mapping):
        raise RequestFormatError("the order needs Order and Order.Instrument")
    if isinstance(field(request, "Order"), list) and len(field(request, "Order")) > 1:
        raise RequestFormatError("one order per request")
    if isinstance(field(order, "Instrument"), list) and len(field(order, "Instrument")) > 1:
        raise RequestFormatError("equity orders have one instrument")
    coid = field(request, "clientOrderId") or field(order, "clientOrderId") or ""
    symbol = field(product, "symbol") or field(order, "symbol") or ""
    return OrderSpec(
        order_type=str(field(request, "orderType") or "EQ").upper(),
        client_order_id=str(coid).strip(),
        symbol=str(symbol).strip().upper(),
        security_type=str(field(product, "securityType") or "EQ").upper(),
        action=str(field(instrument, "orderAction") or "").upper(),
        quantity=as_number(field(instrument, "quantity"), "quantity"),
        price_type=str(field(order, "priceType") or "").upper(),
        limit_price=as_number(field(order, "limitPrice"), "limitPrice", 0.0),
        stop_price=as_number(field(order, "stopPrice"), "stopPrice", 0.0),
        order_term=str(field(order, "orderTerm") or "").upper(),
        market_session=str(field(order, "marketSession") or "REGULAR").upper(),
        all_or_none=as_bool(field(order, "allOrNone")),
    )


def preview_id_of(doc: Mapping[str, Any]) -> int | None:
    """The previewId a `PlaceOrderRequest` carries (in PreviewIds, or in the order itself)."""
    request = field(doc, "PlaceOrderRequest")
    ids = first(field(request, "PreviewIds"))
    value = field(ids, "previewId")
    if value is None:
        value = field(first(field(request, "Order")), "previewId")
    try:
        return int(str(value).strip()) if value is not None else None
    except ValueError:
        return None


# --- documents ------------------------------------------------------------------------------------


def epoch_ms(ns: int) -> int:
    return ns // 1_000_000


def error_doc(code: int, message: str) -> dict[str, Any]:
    return {"Error": {"code": code, "message": message}}


def _order_leg(spec: OrderSpec, quantity_key: str = "quantity") -> dict[str, Any]:
    return {
        "symbolDescription": spec.symbol,
        "orderAction": spec.action,
        "quantityType": "QUANTITY",
        quantity_key: int(spec.quantity),
        "Product": {"symbol": spec.symbol, "securityType": spec.security_type},
    }


def _order_terms(spec: OrderSpec) -> dict[str, Any]:
    return {
        "allOrNone": spec.all_or_none,
        "priceType": spec.price_type,
        "limitPrice": spec.limit_price,
        "stopPrice": spec.stop_price,
        "orderTerm": spec.order_term,
        "marketSession": spec.market_session,
    }


def preview_doc(
    account_id: str, spec: OrderSpec, preview_id: int, estimate: float, now_ns: int
) -> dict[str, Any]:
    order = {
        **_order_terms(spec),
        "estimatedCommission": 0.0,
        "estimatedTotalAmount": round(estimate, 2),
        "messages": {
            "Message": [{"description": "200|Your order was successfully previewed.", "code": 1026}]
        },
        "Instrument": [_order_leg(spec)],
    }
    return {
        "PreviewOrderResponse": {
            "orderType": spec.order_type,
            "totalOrderValue": round(estimate, 2),
            "totalCommission": 0.0,
            "accountId": account_id,
            "previewTime": epoch_ms(now_ns),
            "dstFlag": False,
            "marketSession": spec.market_session,
            "Order": [order],
            "PreviewIds": [{"previewId": preview_id}],
        }
    }


def place_doc(account_id: str, spec: OrderSpec, order: SimOrder) -> dict[str, Any]:
    placed = {
        **_order_terms(spec),
        "placedTime": epoch_ms(order.created_ns),
        "messages": {
            "Message": [
                {
                    "description": f"{order.order_id}|Your order was successfully entered.",
                    "code": 1027,
                    "type": "WARNING",
                }
            ]
        },
        "Instrument": [_order_leg(spec)],
    }
    return {
        "PlaceOrderResponse": {
            "orderType": spec.order_type,
            "accountId": account_id,
            "placedTime": epoch_ms(order.created_ns),
            "dstFlag": False,
            "marketSession": spec.market_session,
            "OrderIds": [{"orderId": order.order_id}],
            "Order": [placed],
        }
    }


def cancel_doc(account_id: str, order_id: int, now_ns: int) -> dict[str, Any]:
    return {
        "CancelOrderResponse": {
            "accountId": account_id,
            "orderId": order_id,
            "cancelTime": epoch_ms(now_ns),
            "Messages": {
                "Message": [
                    {
                        "code": 5011,
                        "description": "200|Your request to cancel your order is being processed.",
                        "type": "WARNING",
                    }
                ]
            },
        }
    }


def order_entry(
    account_id: str, order: SimOrder, spec: OrderSpec, status: str, last_price: float
) -> dict[str, Any]:
    """One `OrdersResponse.Order` entry (the clientOrderId is not echoed, venues.md §4.3)."""
    filled = order.filled_qty
    price = order.avg_fill_price if filled > 0 else (last_price if math.isfinite(last_price) else 0)
    leg = _order_leg(spec, "orderedQuantity")
    leg.update(
        {
            "filledQuantity": filled,
            "averageExecutionPrice": order.avg_fill_price if filled > 0 else 0.0,
            "estimatedCommission": order.fee,
            "estimatedFees": 0.0,
        }
    )
    detail: dict[str, Any] = {
        "orderNumber": 1,
        "accountId": account_id,
        "placedTime": epoch_ms(order.created_ns),
        "orderValue": round(order.qty * price, 2),
        "status": status,
        **_order_terms(spec),
        "Instrument": [leg],
    }
    if order.state is OrderState.FILLED:
        detail["executedTime"] = epoch_ms(order.updated_ns)
    return {"orderId": order.order_id, "orderType": spec.order_type, "OrderDetail": [detail]}


def account_entry(account_id: str, account_id_key: str) -> dict[str, Any]:
    return {
        "accountId": account_id,
        "accountIdKey": account_id_key,
        "accountMode": "CASH",
        "accountDesc": "INDIVIDUAL",
        "accountName": "",
        "accountType": "INDIVIDUAL",
        "institutionType": "BROKERAGE",
        "accountStatus": "ACTIVE",
        "closedDate": 0,
    }


def balance_doc(
    account_id: str, cash: float, locked: float, long_value: float, short_value: float
) -> dict[str, Any]:
    """`BalanceResponse`: `cashBalance` is the account's cash; what resting buys hold is not
    available for investment."""
    free = cash - locked
    return {
        "BalanceResponse": {
            "accountId": account_id,
            "accountType": "INDIVIDUAL",
            "optionLevel": "NO_OPTIONS",
            "accountDescription": "INDIVIDUAL",
            "quoteMode": 6,
            "dayTraderStatus": "NO_PDT",
            "accountMode": "CASH",
            "Cash": {"fundsForOpenOrdersCash": round(locked, 2), "moneyMktBalance": 0.0},
            "Computed": {
                "cashAvailableForInvestment": free,
                "cashAvailableForWithdrawal": free,
                "netCash": cash,
                "cashBalance": cash,
                "settledCashForInvestment": free,
                "unSettledCashForInvestment": 0.0,
                "fundsWithheldFromPurchasePower": locked,
                "fundsWithheldFromWithdrawal": locked,
                "cashBuyingPower": free,
                "dtCashBuyingPower": free,
                "marginBuyingPower": free,
                "dtMarginBuyingPower": free,
                "RealTimeValues": {
                    "totalAccountValue": cash + long_value + short_value,
                    "netMv": long_value + short_value,
                    "netMvLong": long_value,
                    "netMvShort": short_value,
                },
            },
        }
    }


def position_entry(
    position_id: int,
    symbol: str,
    quantity: float,
    cost_per_share: float,
    last_price: float,
    acquired_ns: int,
) -> dict[str, Any]:
    last = last_price if math.isfinite(last_price) else cost_per_share
    value = quantity * last
    cost = quantity * cost_per_share
    return {
        "positionId": position_id,
        "symbolDescription": symbol,
        "dateAcquired": epoch_ms(acquired_ns),
        "pricePaid": cost_per_share,
        "commissions": 0.0,
        "otherFees": 0.0,
        "quantity": quantity,
        "positionIndicator": "TYPE2",
        "positionType": "LONG" if quantity > 0 else "SHORT",
        "daysGain": 0.0,
        "daysGainPct": 0.0,
        "marketValue": value,
        "totalCost": cost,
        "totalGain": value - cost,
        "totalGainPct": (value - cost) / abs(cost) * 100.0 if cost else 0.0,
        "costPerShare": cost_per_share,
        "Product": {"symbol": symbol, "securityType": "EQ"},
        "Quick": {"lastTrade": last, "change": 0.0, "changePct": 0.0, "volume": 0},
    }
