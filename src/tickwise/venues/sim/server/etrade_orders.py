"""The E*Trade simulator's order calls: list, detail, preview, place and cancel.

`OrderDesk` keeps what the exchange does not: previews (a place must carry the previewId of a
preview of the identical order, made by the same account within the preview lifetime, else
error 101), each order's request as placed (E*Trade lists orders with their terms), and the
orders whose cancel was asked for (CANCEL_REQUESTED until the exchange has cancelled them).
Faults are drawn per place: 5xx and 429 refuse without the order landing; unknown (500),
timeout (held `stall_s`) and drop (connection closed) land it.

Also here: the HTTP pieces the simulator's handlers share (`ApiError`, `document`, ...).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from tickwise.model.instruments import AssetClass, Venue
from tickwise.model.orders import RejectReason, Side
from tickwise.venues.capabilities import ETRADE, OrderType, TimeInForce
from tickwise.venues.etrade.oauth import US_EASTERN
from tickwise.venues.sim.config import VENUE_ORDER_NOT_FOUND, venue_reject_text
from tickwise.venues.sim.exchange import OrderNotFoundError, OrderRefusedError, SimOrder
from tickwise.venues.sim.faults import Fault
from tickwise.venues.sim.server import etrade_render as render
from tickwise.venues.sim.server.common import SimContext
from tickwise.venues.sim.server.etrade_render import OrderSpec

PREVIEW_LIFETIME_S = 180.0
STALE_PREVIEW = (
    101,
    "For your protection, we have timed out your original order request. If you would like "
    "to place this order, please resubmit it now.",
)
CANCEL_REFUSED_CODE = 5016  # the simulator's code: the order is already done
MAX_LIST_COUNT = 100
DEFAULT_LIST_COUNT = 25
_ORDER_TYPES = {name: kind for kind, name in ETRADE.order_types[AssetClass.EQUITY].items()}
_TERMS = {name: tif for tif, name in ETRADE.time_in_force[AssetClass.EQUITY].items()}
_TERM_NAMES = dict(ETRADE.time_in_force[AssetClass.EQUITY])
_SIDES = {"BUY": Side.BUY, "SELL": Side.SELL}
_LIST_STATUSES = {"OPEN", "EXECUTED", "CANCELLED", "CANCEL_REQUESTED", "EXPIRED", "REJECTED"}
_LIST_STATUSES |= {"PARTIAL", "INDIVIDUAL_FILLS"}


class ApiError(Exception):
    """An E*Trade `Error` answer."""

    def __init__(self, code: int, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


class DroppedError(Exception):
    """The connection was closed on purpose (fault "drop"): there is no answer to write."""


def refusal(reason: RejectReason, detail: str = "") -> ApiError:
    """E*Trade's error for an order it refuses (the simulator's code and text per reason)."""
    code, text = venue_reject_text(Venue.ETRADE, reason)
    return ApiError(code, detail or text)


def document(doc: Mapping[str, Any], as_json: bool, status: int = 200) -> web.Response:
    if as_json:
        return web.Response(
            body=render.to_json(doc), status=status, content_type="application/json"
        )
    return web.Response(body=render.to_xml(doc), status=status, content_type="application/xml")


def rate_limited() -> web.Response:
    """E*Trade's answer to too many requests: HTTP 400 with an HTML page (venues.md §4.4)."""
    return web.Response(status=400, text=render.RATE_LIMIT_PAGE, content_type="text/html")


def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise refusal(RejectReason.VENUE_ERROR, f"{name} must be a number.") from None
    return min(max(value, low), high)


def day_param(query: Mapping[str, str], name: str) -> str:
    """A MMDDYYYY date as YYYYMMDD (comparable), or "" when absent."""
    raw = query.get(name, "")
    if not raw:
        return ""
    try:
        day = datetime.strptime(raw, "%m%d%Y")
    except ValueError:
        raise refusal(RejectReason.VENUE_ERROR, f"{name} must be MMDDYYYY.") from None
    return day.strftime("%Y%m%d")


def eastern_day(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, US_EASTERN).strftime("%Y%m%d")


@dataclass(frozen=True, slots=True)
class _Preview:
    client: int
    spec: OrderSpec
    created_s: float


@dataclass(frozen=True, slots=True)
class _Checked:
    """An order request the exchange can take."""

    instrument: int
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    limit_price: float


class OrderDesk:
    """The order calls of one simulator (see module docstring)."""

    def __init__(
        self, ctx: SimContext, clock: Callable[[], float], preview_lifetime_s: float
    ) -> None:
        self.ctx = ctx
        self.clock = clock
        self.preview_lifetime_s = preview_lifetime_s
        self._preview_ids = itertools.count(1_000_001)
        self._previews: dict[int, _Preview] = {}
        self._preview_order: deque[tuple[float, int]] = deque()
        self._specs: dict[int, OrderSpec] = {}
        self._cancel_requested: set[int] = set()

    # -- orders: reading --------------------------------------------------------------------

    async def list_orders(
        self, request: web.Request, client: int, account_id: str, parts: list[str], as_json: bool
    ) -> web.StreamResponse:
        query = request.query
        wanted = {s.strip().upper() for s in query.get("status", "").split(",") if s.strip()}
        if wanted - _LIST_STATUSES:
            raise refusal(RejectReason.VENUE_ERROR, f"invalid status {sorted(wanted)[0]}")
        if "INDIVIDUAL_FILLS" in wanted:
            wanted |= {"EXECUTED", "PARTIAL"}
        symbols = {s.strip().upper() for s in query.get("symbol", "").split(",") if s.strip()}
        count = int_param(request, "count", DEFAULT_LIST_COUNT, 1, MAX_LIST_COUNT)
        marker = int_param(request, "marker", 0, 0, 2**62)
        from_day, to_day = day_param(query, "fromDate"), day_param(query, "toDate")
        exchange = self.ctx.exchange
        entries: list[dict[str, Any]] = []
        more = False
        for order in reversed(exchange.orders_of(client)):  # newest first
            if marker and order.order_id >= marker:
                continue
            status = self.status(order)
            spec = self.spec(order)
            day = eastern_day(order.created_ns)
            if (wanted and status not in wanted) or (symbols and spec.symbol not in symbols):
                continue
            if (from_day and day < from_day) or (to_day and day > to_day):
                continue
            if len(entries) == count:
                more = True
                break
            price = exchange.price(order.instrument)
            entries.append(render.order_entry(account_id, order, spec, status, price))
        if not entries:
            return web.Response(status=204)
        body: dict[str, Any] = {"Order": entries}
        if more:
            next_marker = entries[-1]["orderId"]
            params = [(k, v) for k, v in query.items() if k != "marker"]
            body["marker"] = str(next_marker)
            body["next"] = f"{request.path}?{urlencode([*params, ('marker', next_marker)])}"
        return document({"OrdersResponse": body}, as_json)

    async def detail(
        self, request: web.Request, client: int, account_id: str, parts: list[str], as_json: bool
    ) -> web.StreamResponse:
        order = self.ctx.exchange.find(client, order_id=int(parts[2]))
        if order is None:
            raise ApiError(*VENUE_ORDER_NOT_FOUND[Venue.ETRADE])
        price = self.ctx.exchange.price(order.instrument)
        entry = render.order_entry(account_id, order, self.spec(order), self.status(order), price)
        return document({"OrdersResponse": {"Order": [entry]}}, as_json)

    def status(self, order: SimOrder) -> str:
        if order.open and order.order_id in self._cancel_requested:
            return "CANCEL_REQUESTED"
        return render.STATUS_OF_STATE.get(order.state, "OPEN")

    def spec(self, order: SimOrder) -> OrderSpec:
        """The order as it was placed (orders placed around the protocol get a plain one)."""
        spec = self._specs.get(order.order_id)
        if spec is not None:
            return spec
        limit = order.order_type is OrderType.LIMIT
        return OrderSpec(
            order_type="EQ",
            client_order_id=order.client_order_id,
            symbol=self.ctx.exchange.registry[order.instrument].symbol,
            security_type="EQ",
            action=render.ACTION_OF_SIDE[order.side],
            quantity=order.qty,
            price_type="LIMIT" if limit else "MARKET",
            limit_price=order.limit_price if limit else 0.0,
            stop_price=0.0,
            order_term=_TERM_NAMES.get(order.time_in_force, "GOOD_FOR_DAY"),
            market_session="REGULAR",
            all_or_none=False,
        )

    # -- orders: preview, place, cancel ------------------------------------------------------

    async def preview(
        self, request: web.Request, client: int, account_id: str, parts: list[str], as_json: bool
    ) -> web.StreamResponse:
        doc = render.parse_body(await request.read(), request.content_type)
        spec = render.order_spec(doc, "PreviewOrderRequest")
        checked = self._check(client, spec)
        estimate = self._check_funds(client, spec, checked)
        now_s = self.clock()
        while self._preview_order and self._preview_order[0][0] <= now_s:
            self._previews.pop(self._preview_order.popleft()[1], None)
        preview_id = next(self._preview_ids)
        self._previews[preview_id] = _Preview(client, spec, now_s)
        self._preview_order.append((now_s + self.preview_lifetime_s, preview_id))
        now_ns = int(now_s * 1e9)
        return document(render.preview_doc(account_id, spec, preview_id, estimate, now_ns), as_json)

    async def place(
        self, request: web.Request, client: int, account_id: str, parts: list[str], as_json: bool
    ) -> web.StreamResponse:
        doc = render.parse_body(await request.read(), request.content_type)
        spec = render.order_spec(doc, "PlaceOrderRequest")
        preview = self._previews.get(render.preview_id_of(doc) or -1)
        if (
            preview is None
            or preview.client != client
            or preview.spec != spec
            or self.clock() - preview.created_s > self.preview_lifetime_s
        ):
            raise ApiError(*STALE_PREVIEW)
        checked = self._check(client, spec)
        fault = self.ctx.faults.draw()
        if fault is Fault.RATE_LIMIT:
            return rate_limited()
        if fault is Fault.ERROR_5XX:
            return web.Response(status=503, text="Service Unavailable")
        try:
            order = self.ctx.exchange.submit(
                client,
                checked.instrument,
                checked.side,
                spec.quantity,
                spec.client_order_id,
                checked.order_type,
                checked.time_in_force,
                checked.limit_price,
            )
        except OrderRefusedError as exc:
            raise ApiError(exc.code, exc.text) from None
        self._specs[order.order_id] = spec
        if fault is Fault.UNKNOWN:
            return web.Response(status=500, text="Internal Server Error")
        if fault is Fault.DROP:
            if request.transport is not None:
                request.transport.close()
            raise DroppedError()
        if fault is Fault.TIMEOUT:
            await asyncio.sleep(self.ctx.faults.plan.stall_s)
        return document(render.place_doc(account_id, spec, order), as_json)

    async def cancel(
        self, request: web.Request, client: int, account_id: str, parts: list[str], as_json: bool
    ) -> web.StreamResponse:
        doc = render.parse_body(await request.read(), request.content_type)
        body = render.field(doc, "CancelOrderRequest")
        order_id = int(render.as_number(render.field(body, "orderId"), "orderId"))
        order = self.ctx.exchange.find(client, order_id=order_id)
        if order is None:
            raise ApiError(*VENUE_ORDER_NOT_FOUND[Venue.ETRADE])
        if not order.open:
            status = self.status(order).lower()
            raise ApiError(CANCEL_REFUSED_CODE, f"This order cannot be cancelled: it is {status}.")
        self._cancel_requested.add(order_id)
        delay_s = self.ctx.exchange.config.delay_ms(Venue.ETRADE) / 1000.0
        asyncio.get_running_loop().call_later(delay_s, self._cancel_now, client, order_id)
        return document(render.cancel_doc(account_id, order_id, time.time_ns()), as_json)

    def _cancel_now(self, client: int, order_id: int) -> None:
        try:
            self.ctx.exchange.cancel(client, order_id=order_id)
        except OrderNotFoundError:
            pass
        finally:
            self._cancel_requested.discard(order_id)

    def _check(self, client: int, spec: OrderSpec) -> _Checked:
        """What E*Trade refuses in the request itself, before any money is looked at."""
        registry = self.ctx.exchange.registry
        if spec.order_type != "EQ" or spec.security_type != "EQ":
            raise refusal(RejectReason.VENUE_ERROR, "Only equity orders are supported.")
        if not ETRADE.accepts_client_order_id(spec.client_order_id):
            raise refusal(
                RejectReason.VENUE_ERROR, "clientOrderId must be 1 to 20 letters or digits."
            )
        if spec.symbol not in registry:
            raise refusal(RejectReason.UNKNOWN_SYMBOL)
        instrument = registry.by_symbol(spec.symbol)
        if instrument.asset_class is not AssetClass.EQUITY:
            raise refusal(RejectReason.UNKNOWN_SYMBOL)
        side = _SIDES.get(spec.action)
        order_type = _ORDER_TYPES.get(spec.price_type)
        tif = _TERMS.get(spec.order_term)
        if side is None:
            raise refusal(RejectReason.VENUE_ERROR, f"orderAction {spec.action!r} not supported.")
        if order_type not in (OrderType.MARKET, OrderType.LIMIT):
            raise refusal(RejectReason.VENUE_ERROR, f"priceType {spec.price_type!r} not supported.")
        if tif is None or (
            order_type is OrderType.MARKET and tif in (TimeInForce.IOC, TimeInForce.FOK)
        ):
            raise refusal(RejectReason.VENUE_ERROR, f"orderTerm {spec.order_term!r} not allowed.")
        if spec.market_session not in ("REGULAR", "EXTENDED"):
            raise refusal(RejectReason.VENUE_ERROR, "marketSession must be REGULAR or EXTENDED.")
        if order_type is OrderType.LIMIT and not spec.limit_price > 0:
            raise refusal(RejectReason.VENUE_ERROR, "limitPrice is required for LIMIT orders.")
        if not (spec.quantity > 0 and spec.quantity == math.floor(spec.quantity)):
            raise refusal(RejectReason.INVALID_QUANTITY_INCREMENT)
        limit = spec.limit_price if order_type is OrderType.LIMIT else math.nan
        return _Checked(instrument.index, side, order_type, tif, limit)

    def _check_funds(self, client: int, spec: OrderSpec, checked: _Checked) -> float:
        """Preview's checks of the account: id unused, a price, cash or shares. Returns the
        estimated order value."""
        exchange = self.ctx.exchange
        if exchange.find(client, client_order_id=spec.client_order_id) is not None:
            raise refusal(RejectReason.DUPLICATE_CLIENT_ORDER_ID)
        last = exchange.price(checked.instrument)
        price = checked.limit_price if checked.order_type is OrderType.LIMIT else last
        if not math.isfinite(price):
            raise refusal(RejectReason.VENUE_ERROR, "No quote is available for this symbol.")
        estimate = spec.quantity * price
        if estimate < ETRADE.rules.min_notional_equity:
            raise refusal(RejectReason.BELOW_MIN_NOTIONAL)
        if checked.side is Side.BUY:
            if estimate > exchange.cash(client) - exchange.locked(client) + 1e-9:
                raise refusal(RejectReason.INSUFFICIENT_BUYING_POWER)
        else:
            held = exchange.positions(client).get(checked.instrument, 0.0)
            free = held - exchange.held_by_open_sells(client, checked.instrument)
            if spec.quantity > free + 1e-9:
                raise refusal(RejectReason.INSUFFICIENT_POSITION)
        return estimate
