"""How Binance Spot writes the simulator's orders, trades and user data events as JSON.

Decimals are 8-place strings and times epoch milliseconds, as the real venue writes them. An
order fills in one trade at the simulator, so its trade id is its order id.
"""

from __future__ import annotations

import itertools

from tickwise.venues.binance.wire import (
    QUOTE_ASSET,
    SIDES,
    STATUS_OF,
    STREAM_REJECT_REASONS,
    SymbolMap,
    fmt,
)
from tickwise.venues.capabilities import LimitRule, OrderType, TimeInForce
from tickwise.venues.sim.exchange import OrderEvent, SimOrder

TIF_TEXT = {TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC", TimeInForce.FOK: "FOK"}
TYPE_TEXT = {OrderType.MARKET: "MARKET", OrderType.LIMIT: "LIMIT"}
_EXEC_TYPE = {
    "new": "NEW",
    "fill": "TRADE",
    "canceled": "CANCELED",
    "rejected": "REJECTED",
    "expired": "EXPIRED",
}


class BinanceJson:
    """Renders orders, trades and events of one exchange (symbols from its registry)."""

    def __init__(self, symbols: SymbolMap) -> None:
        self.symbols = symbols
        self._execution_ids = itertools.count(1)

    def execution_report(self, event: OrderEvent) -> dict[str, object]:
        """The `executionReport` of one order event."""
        o = event.order
        fill = event.kind == "fill"
        event_ms = event.ts_ns // 1_000_000
        reject = STREAM_REJECT_REASONS.get(o.reason, "OTHER") if event.kind == "rejected" else None
        return {
            "e": "executionReport",
            "E": event_ms,
            "s": self.symbols.wire[o.instrument],
            "c": o.client_order_id,
            "S": SIDES[o.side],
            "o": TYPE_TEXT[o.order_type],
            "f": TIF_TEXT.get(o.time_in_force, "GTC"),
            "q": fmt(o.qty),
            "p": fmt(o.limit_price),
            "P": fmt(0),
            "F": fmt(0),
            "g": -1,
            "C": o.client_order_id if event.kind == "canceled" else "",
            "x": _EXEC_TYPE[event.kind],
            "X": STATUS_OF.get(o.state, "NEW"),
            "r": reject or "NONE",
            "i": o.order_id,
            "l": fmt(o.filled_qty if fill else 0),
            "z": fmt(o.filled_qty),
            "L": fmt(o.avg_fill_price if fill else 0),
            "n": fmt(o.fee if fill else 0),
            "N": QUOTE_ASSET if fill else None,
            "T": event_ms,
            "t": o.order_id if fill else -1,
            "I": next(self._execution_ids),
            "w": o.open and o.order_type is OrderType.LIMIT,
            "m": False,
            "M": False,
            "O": o.created_ns // 1_000_000,
            "Z": fmt(o.notional),
            "Y": fmt(o.notional if fill else 0),
            "Q": fmt(0),
            "W": o.created_ns // 1_000_000,
            "V": "EXPIRE_MAKER",
        }

    def result_fields(self, o: SimOrder) -> dict[str, object]:
        return {
            "price": fmt(o.limit_price),
            "origQty": fmt(o.qty),
            "executedQty": fmt(o.filled_qty),
            "origQuoteOrderQty": fmt(0),
            "cummulativeQuoteQty": fmt(o.notional),
            "status": STATUS_OF.get(o.state, "NEW"),
            "timeInForce": TIF_TEXT.get(o.time_in_force, "GTC"),
            "type": TYPE_TEXT[o.order_type],
            "side": SIDES[o.side],
        }

    def order(self, o: SimOrder) -> dict[str, object]:
        """An order as `GET /api/v3/order` and `openOrders` show it."""
        out: dict[str, object] = {
            "symbol": self.symbols.wire[o.instrument],
            "orderId": o.order_id,
            "orderListId": -1,
            "clientOrderId": o.client_order_id,
        }
        out.update(self.result_fields(o))
        out.update(
            {
                "stopPrice": fmt(0),
                "icebergQty": fmt(0),
                "time": o.created_ns // 1_000_000,
                "updateTime": o.updated_ns // 1_000_000,
                "isWorking": o.open,
                "workingTime": o.created_ns // 1_000_000,
                "selfTradePreventionMode": "EXPIRE_MAKER",
            }
        )
        return out

    def fills(self, o: SimOrder) -> list[dict[str, object]]:
        if o.filled_qty <= 0:
            return []
        return [
            {
                "price": fmt(o.avg_fill_price),
                "qty": fmt(o.filled_qty),
                "commission": fmt(o.fee),
                "commissionAsset": QUOTE_ASSET,
                "tradeId": o.order_id,
            }
        ]

    def trade(self, o: SimOrder) -> dict[str, object]:
        return {
            "symbol": self.symbols.wire[o.instrument],
            "id": o.order_id,
            "orderId": o.order_id,
            "orderListId": -1,
            "price": fmt(o.avg_fill_price),
            "qty": fmt(o.filled_qty),
            "quoteQty": fmt(o.notional),
            "commission": fmt(o.fee),
            "commissionAsset": QUOTE_ASSET,
            "time": o.updated_ns // 1_000_000,
            "isBuyer": SIDES[o.side] == "BUY",
            "isMaker": False,
            "isBestMatch": True,
        }


def rate_limits_document(rules: tuple[LimitRule, ...]) -> list[dict[str, object]]:
    """exchangeInfo `rateLimits`, from the rules the server enforces."""
    kinds = {"weight": "REQUEST_WEIGHT", "requests": "RAW_REQUESTS", "orders": "ORDERS"}
    out: list[dict[str, object]] = []
    for rule in rules:
        interval, num = interval_of(rule.window_s)
        out.append(
            {
                "rateLimitType": kinds[rule.unit],
                "interval": interval,
                "intervalNum": num,
                "limit": int(rule.capacity),
            }
        )
    return out


def interval_of(window_s: float) -> tuple[str, int]:
    """A window as Binance names it: ("MINUTE", 1), ("SECOND", 10), ("DAY", 1)."""
    for name, size in (("DAY", 86400.0), ("HOUR", 3600.0), ("MINUTE", 60.0)):
        if window_s >= size and window_s % size == 0:
            return name, int(window_s // size)
    return "SECOND", int(window_s)
