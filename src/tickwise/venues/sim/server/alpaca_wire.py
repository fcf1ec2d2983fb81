"""Alpaca's JSON shapes for the simulator, and what its handlers share (venues.md §1-§2).

Orders, accounts, positions, trade events and errors are rendered as the real API does and as
alpaca-py's pydantic models read them: decimals as strings (up to 9 places), RFC 3339 timestamps
with nanoseconds, UUIDs for ids, orders with `BTC/USD` symbols and positions with `BTCUSD`.
Order and asset ids are derived from the exchange's own numbers (a fixed UUID prefix + the
number), so a path id maps back without a table. Beside the shapes: the key check
(`AlpacaKeys`), the per-minute request budget behind the `X-RateLimit-*` headers
(`RequestBudget`), and the registry of handlers that a shutdown must end rather than wait for
(`OpenHandlers`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import math
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSCloseCode, web

from tickwise.model.instruments import AssetClass, Instrument, InstrumentRegistry, Venue
from tickwise.model.orders import OrderState, Side
from tickwise.venues.capabilities import CAPABILITIES, OrderType, TimeInForce
from tickwise.venues.sim.exchange import OrderEvent, SimExchange, SimOrder
from tickwise.venues.sim.server.common import (
    BROKER_KEY_ID,
    SimAccounts,
    broker_account_uuid,
    broker_secret,
    same_secret,
)

_EXECUTION_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "tickwise-sim/alpaca/executions")
_ORDER_PREFIX = uuid.uuid5(uuid.NAMESPACE_URL, "tickwise-sim/alpaca/orders").hex[:20]
_ASSET_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "tickwise-sim/alpaca/assets")
_CAPS = CAPABILITIES[Venue.ALPACA]

# SimOrder state -> Alpaca order status (venues.md §6).
ORDER_STATUS: dict[OrderState, str] = {
    OrderState.ACKED: "new",
    OrderState.PARTIALLY_FILLED: "partially_filled",
    OrderState.FILLED: "filled",
    OrderState.CANCELED: "canceled",
    OrderState.EXPIRED: "expired",
    OrderState.REJECTED: "rejected",
}

UNAUTHORIZED = (40110000, "request is not authorized")
NOT_FOUND = (40410000, "order not found")
RATE_LIMITED = (42910000, "rate limit exceeded")
INVALID_BODY = (40010000, "request body format is invalid")
VALIDATION = 40010001
UNPROCESSABLE = 42210000


def error_body(code: int, message: str, **extra: Any) -> dict[str, Any]:
    """Alpaca's error body: `{"code": <8 digits>, "message": ...}` plus any extra fields."""
    return {"code": code, "message": message, **extra}


class AlpacaKeys:
    """Checks the keys a caller presents: a client's Trading API key pair (one account each)
    or the firm's Broker API key (every account)."""

    def __init__(self, accounts: SimAccounts) -> None:
        self.accounts = accounts
        self._broker_secret = broker_secret()

    def client_of(self, key_id: str, secret: str) -> int | None:
        """The client whose Trading API key pair this is, or None."""
        client = self.accounts.client_of_key(key_id)
        if client is None:
            return None
        expected = self.accounts.credential(client).secret.reveal("secret")
        return client if same_secret(secret, expected) else None

    def is_broker(self, key_id: str, secret: str) -> bool:
        return key_id == BROKER_KEY_ID and same_secret(secret, self._broker_secret)

    def is_broker_basic(self, authorization: str) -> bool:
        """An `Authorization: Basic ...` header carrying the firm's Broker API key."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            raw = base64.b64decode(token.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        key_id, sep, secret = raw.partition(":")
        return bool(sep) and self.is_broker(key_id, secret)


def rfc3339(ns: int) -> str:
    """Epoch nanoseconds as RFC 3339 UTC with nine fractional digits."""
    seconds, frac = divmod(int(ns), 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{frac:09d}Z"


def now_rfc3339() -> str:
    return rfc3339(time.time_ns())


def decimal_text(value: float) -> str:
    """A float as Alpaca's decimal string: up to 9 places, no exponent, no trailing zeros."""
    if not math.isfinite(value):
        raise ValueError(f"not a finite decimal: {value}")
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def order_uuid(order_id: int) -> str:
    return str(uuid.UUID(_ORDER_PREFIX + f"{order_id:012x}"))


def order_id_of(text: str) -> int | None:
    """The exchange's order number behind an order UUID, or None if it is not one of ours."""
    try:
        value = uuid.UUID(text)
    except ValueError:
        return None
    return int(value.hex[20:], 16) if value.hex[:20] == _ORDER_PREFIX else None


def asset_uuid(symbol: str) -> str:
    return str(uuid.uuid5(_ASSET_NAMESPACE, symbol))


def asset_class_name(inst: Instrument) -> str:
    return "crypto" if inst.asset_class is AssetClass.CRYPTO else "us_equity"


def position_symbol(inst: Instrument) -> str:
    """Positions spell crypto pairs without the slash (`BTCUSD`), orders with it."""
    return inst.symbol.replace("/", "") if inst.asset_class is AssetClass.CRYPTO else inst.symbol


class SymbolBook:
    """Symbol (as orders, positions and data streams spell it) -> instrument index."""

    def __init__(self, registry: InstrumentRegistry) -> None:
        self.registry = registry
        self._index: dict[str, int] = {}
        for inst in registry:
            self._index[inst.symbol] = inst.index
            self._index.setdefault(position_symbol(inst), inst.index)
            self._index.setdefault(asset_uuid(inst.symbol), inst.index)

    def index(self, symbol: str) -> int | None:
        return self._index.get(symbol)


def order_type_name(order: SimOrder, inst: Instrument) -> str:
    return _CAPS.order_types[inst.asset_class].get(order.order_type, "market")


def tif_name(tif: TimeInForce, inst: Instrument) -> str:
    return _CAPS.time_in_force[inst.asset_class].get(tif, "day")


def parse_order_type(name: str, inst: Instrument) -> OrderType | None:
    for kind, text in _CAPS.order_types[inst.asset_class].items():
        if text == name:
            return kind
    return None


def parse_tif(name: str, inst: Instrument) -> TimeInForce | None:
    for kind, text in _CAPS.time_in_force[inst.asset_class].items():
        if text == name:
            return kind
    return None


def order_json(
    order: SimOrder, registry: InstrumentRegistry, *, status: str | None = None, broker: bool
) -> dict[str, Any]:
    """One order as `GET /v2/orders/{id}` returns it (Broker API adds `commission`)."""
    inst = registry[order.instrument]
    created = rfc3339(order.created_ns)
    updated = rfc3339(order.updated_ns or order.created_ns)
    state = order.state
    kind = order_type_name(order, inst)
    doc: dict[str, Any] = {
        "id": order_uuid(order.order_id),
        "client_order_id": order.client_order_id,
        "created_at": created,
        "updated_at": updated,
        "submitted_at": created,
        "filled_at": updated if state is OrderState.FILLED else None,
        "expired_at": updated if state is OrderState.EXPIRED else None,
        "canceled_at": updated if state is OrderState.CANCELED else None,
        "failed_at": updated if state is OrderState.REJECTED else None,
        "replaced_at": None,
        "replaced_by": None,
        "replaces": None,
        "asset_id": asset_uuid(inst.symbol),
        "symbol": inst.symbol,
        "asset_class": asset_class_name(inst),
        "notional": None,
        "qty": decimal_text(order.qty),
        "filled_qty": decimal_text(order.filled_qty),
        "filled_avg_price": (decimal_text(order.avg_fill_price) if order.filled_qty > 0 else None),
        "order_class": "",
        "order_type": kind,
        "type": kind,
        "side": "buy" if order.side is Side.BUY else "sell",
        "time_in_force": tif_name(order.time_in_force, inst),
        "limit_price": (
            decimal_text(order.limit_price) if math.isfinite(order.limit_price) else None
        ),
        "stop_price": None,
        "status": status or ORDER_STATUS.get(state, "new"),
        "extended_hours": False,
        "legs": None,
        "trail_percent": None,
        "trail_price": None,
        "hwm": None,
        "position_intent": "buy_to_open" if order.side is Side.BUY else "sell_to_close",
    }
    if broker:
        doc["commission"] = decimal_text(order.fee)
        doc["subtag"] = None
        doc["source"] = None
    return doc


def _cost_basis(exchange: SimExchange, client: int) -> dict[int, tuple[float, float]]:
    """(quantity, cost) per instrument from the account's fills, at average cost."""
    book: dict[int, tuple[float, float]] = {}
    fills = sorted(
        (o for o in exchange.orders_of(client) if o.filled_qty > 0), key=lambda o: o.updated_ns
    )
    for order in fills:
        qty, cost = book.get(order.instrument, (0.0, 0.0))
        if order.side is Side.BUY:
            qty, cost = qty + order.filled_qty, cost + order.filled_qty * order.avg_fill_price
        else:
            average = cost / qty if qty > 0 else order.avg_fill_price
            qty, cost = qty - order.filled_qty, cost - order.filled_qty * average
        book[order.instrument] = (qty, cost)
    return book


def _position_doc(
    exchange: SimExchange, client: int, instrument: int, qty: float, cost: float | None
) -> dict[str, Any]:
    inst = exchange.registry[instrument]
    price = exchange.price(instrument)
    price = price if math.isfinite(price) else 0.0
    entry = cost / qty if cost is not None and qty != 0 else price
    basis = entry * qty
    market_value = price * qty
    pnl = market_value - basis
    pnl_pc = decimal_text(pnl / abs(basis)) if basis else "0"
    available = qty - exchange.held_by_open_sells(client, instrument)
    crypto = inst.asset_class is AssetClass.CRYPTO
    return {
        "asset_id": asset_uuid(inst.symbol),
        "symbol": position_symbol(inst),
        "exchange": "CRYPTO" if crypto else "NASDAQ",
        "asset_class": asset_class_name(inst),
        "asset_marginable": not crypto,
        "avg_entry_price": decimal_text(entry),
        "qty": decimal_text(qty),
        "qty_available": decimal_text(available),
        "side": "long" if qty >= 0 else "short",
        "market_value": decimal_text(market_value),
        "cost_basis": decimal_text(basis),
        "unrealized_pl": decimal_text(pnl),
        "unrealized_plpc": pnl_pc,
        "unrealized_intraday_pl": decimal_text(pnl),
        "unrealized_intraday_plpc": pnl_pc,
        "current_price": decimal_text(price),
        "lastday_price": decimal_text(price),
        "change_today": "0",
    }


def positions_json(exchange: SimExchange, client: int) -> list[dict[str, Any]]:
    """`GET /v2/positions`: every open position (short quantities negative)."""
    basis = _cost_basis(exchange, client)
    return [
        _position_doc(exchange, client, inst, qty, basis.get(inst, (0.0, None))[1])
        for inst, qty in sorted(exchange.positions(client).items())
    ]


def position_json(exchange: SimExchange, client: int, instrument: int) -> dict[str, Any] | None:
    """`GET /v2/positions/{symbol}`, or None when the account holds none."""
    qty = exchange.positions(client).get(instrument, 0.0)
    if qty == 0.0:
        return None
    cost = _cost_basis(exchange, client).get(instrument, (0.0, None))[1]
    return _position_doc(exchange, client, instrument, qty, cost)


def account_number(client: int) -> str:
    return f"PA{client:010d}"


def trade_account_json(exchange: SimExchange, client: int, *, broker: bool) -> dict[str, Any]:
    """`GET /v2/account`; the Broker API's `.../account` adds the previous close's values."""
    cash = exchange.cash(client)
    long_value = short_value = 0.0
    for inst, qty in exchange.positions(client).items():
        price = exchange.price(inst)
        value = qty * (price if math.isfinite(price) else 0.0)
        if value >= 0:
            long_value += value
        else:
            short_value += value
    equity = cash + long_value + short_value
    buying_power = max(0.0, cash - exchange.locked(client))
    zero = "0"
    doc: dict[str, Any] = {
        "id": str(broker_account_uuid(client)),
        "account_number": account_number(client),
        "status": "ACTIVE",
        "crypto_status": "ACTIVE",
        "currency": "USD",
        "buying_power": decimal_text(buying_power),
        "regt_buying_power": decimal_text(buying_power),
        "daytrading_buying_power": zero,
        "non_marginable_buying_power": decimal_text(buying_power),
        "options_buying_power": decimal_text(buying_power),
        "cash": decimal_text(cash),
        "accrued_fees": zero,
        "pending_transfer_out": zero,
        "pending_transfer_in": zero,
        "portfolio_value": decimal_text(equity),
        "pattern_day_trader": False,
        "trading_blocked": False,
        "transfers_blocked": False,
        "account_blocked": False,
        "created_at": "2024-01-02T14:30:00Z",
        "trade_suspended_by_user": False,
        "multiplier": "1",
        "shorting_enabled": False,
        "equity": decimal_text(equity),
        "last_equity": decimal_text(equity),
        "long_market_value": decimal_text(long_value),
        "short_market_value": decimal_text(short_value),
        "initial_margin": zero,
        "maintenance_margin": zero,
        "last_maintenance_margin": zero,
        "sma": zero,
        "daytrade_count": 0,
        "options_approved_level": 0,
        "options_trading_level": 0,
    }
    if broker:
        doc.update(
            {
                "cash_withdrawable": doc["cash"],
                "cash_transferable": doc["cash"],
                "previous_close": "2024-01-02T21:00:00Z",
                "last_long_market_value": doc["long_market_value"],
                "last_short_market_value": doc["short_market_value"],
                "last_cash": doc["cash"],
                "last_initial_margin": zero,
                "last_regt_buying_power": doc["regt_buying_power"],
                "last_buying_power": doc["buying_power"],
                "clearing_broker": "VELOX",
            }
        )
    return doc


def broker_account_json(exchange: SimExchange, client: int) -> dict[str, Any]:
    """`GET /v1/accounts/{id}`: the Broker API's Account (onboarding data left out)."""
    trade = trade_account_json(exchange, client, broker=False)
    return {
        "id": trade["id"],
        "account_number": trade["account_number"],
        "status": "ACTIVE",
        "crypto_status": "ACTIVE",
        "currency": "USD",
        "last_equity": trade["last_equity"],
        "created_at": trade["created_at"],
        "account_type": "trading",
        "enabled_assets": ["us_equity", "crypto"],
    }


def trade_update_json(event: OrderEvent, exchange: SimExchange, *, broker: bool) -> dict[str, Any]:
    """The `data` of one trade_updates message (and of a Broker API trade event)."""
    order = event.order
    doc: dict[str, Any] = {
        "event": event.kind,
        "order": order_json(order, exchange.registry, broker=broker),
        "timestamp": rfc3339(event.ts_ns),
    }
    if event.kind == "fill":
        position = exchange.positions(order.client).get(order.instrument, 0.0)
        doc["execution_id"] = str(uuid.uuid5(_EXECUTION_NAMESPACE, str(order.order_id)))
        doc["price"] = decimal_text(order.avg_fill_price)
        doc["qty"] = decimal_text(order.filled_qty)
        doc["position_qty"] = decimal_text(position)
    return doc


class OpenHandlers:
    """Handlers that may outlive a graceful shutdown (streams, stalled answers). The server's
    `on_shutdown` ends them instead of waiting for them: WebSockets get a close frame while the
    connection still reads the client's reply (later the close handshake could only time
    out), everything else is cancelled."""

    def __init__(self, close_timeout_s: float = 2.0) -> None:
        self._tasks: dict[asyncio.Task[Any], web.WebSocketResponse | None] = {}
        self._close_timeout_s = close_timeout_s

    @contextlib.contextmanager
    def track(self, ws: web.WebSocketResponse | None = None) -> Iterator[None]:
        task = asyncio.current_task()
        if task is not None:
            self._tasks[task] = ws
        try:
            yield
        finally:
            if task is not None:
                self._tasks.pop(task, None)

    async def end_all(self, app: web.Application | None = None) -> None:
        sockets = [ws for ws in self._tasks.values() if ws is not None and not ws.closed]
        closing = (ws.close(code=WSCloseCode.GOING_AWAY, message=b"shutdown") for ws in sockets)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*closing, return_exceptions=True), self._close_timeout_s
            )
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()


class RequestBudget:
    """Requests per fixed wall-clock window per bucket (a key or an account), as Alpaca's
    `X-RateLimit-Limit/-Remaining/-Reset` headers report them."""

    def __init__(self, limit: int, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._counts: dict[str, tuple[float, int]] = {}

    def take(self, bucket: str, now: float) -> tuple[bool, dict[str, str]]:
        """Count one request; (admitted, the headers to answer with)."""
        start = math.floor(now / self.window_s) * self.window_s
        window, used = self._counts.get(bucket, (start, 0))
        if window != start:
            used = 0
        admitted = used < self.limit
        if admitted:
            used += 1
            self._counts[bucket] = (start, used)
        reset = math.ceil(start + self.window_s)
        return admitted, {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.limit - used),
            "X-RateLimit-Reset": str(reset),
        }
