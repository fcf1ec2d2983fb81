"""Alpaca's Trading API and Broker API over the simulator, on one port (venues.md §1, §2, §6).

    /v2/orders, /v2/account, /v2/positions ...   Trading API, one account per key pair
                                                 (`APCA-API-KEY-ID` / `APCA-API-SECRET-KEY`)
    /v1/trading/accounts/{account_id}/...        Broker API, the firm's key (HTTP Basic)
    /v1/accounts/{account_id}                    Broker API account
    /v1/events/trades, /stream, /v2/iex ...      the streams (`alpaca_streams`)

Orders the exchange refuses on receipt are answered at once in Alpaca's words: 403 40310000
for buying power and quantity, 422 40010001 for validation and a reused client order id (ids
are unique per account forever), 422 42210000 for an unknown asset. A cancel is answered 204 and
its outcome arrives on the streams. With `ctx.rate_limits`, requests are counted per fixed
minute (Trading API: 200 per key; Broker API: 1000 per account on account paths, 1000 per key
elsewhere) and reported in `X-RateLimit-*` headers; the excess gets 429 42910000. Order POSTs
draw a fault from `ctx.faults` and suffer it after the order landed or not, as
`tickwise.venues.sim.faults` describes.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tickwise.model.instruments import AssetClass
from tickwise.model.orders import OrderState, RejectReason, Side
from tickwise.venues.alpaca.auth import KEY_ID_HEADER, SECRET_KEY_HEADER
from tickwise.venues.capabilities import (
    ALPACA,
    ALPACA_BROKER,
    LimitRule,
    OrderType,
    TimeInForce,
)
from tickwise.venues.http import decode_json
from tickwise.venues.marketdata import rfc3339_ns
from tickwise.venues.sim.exchange import OrderRefusedError, SimOrder
from tickwise.venues.sim.faults import Fault
from tickwise.venues.sim.server.alpaca_streams import AlpacaStreams
from tickwise.venues.sim.server.alpaca_wire import (
    INVALID_BODY,
    NOT_FOUND,
    ORDER_STATUS,
    RATE_LIMITED,
    UNAUTHORIZED,
    UNPROCESSABLE,
    VALIDATION,
    AlpacaKeys,
    OpenHandlers,
    RequestBudget,
    SymbolBook,
    broker_account_json,
    decimal_text,
    error_body,
    now_rfc3339,
    order_id_of,
    order_json,
    order_uuid,
    parse_order_type,
    parse_tif,
    position_json,
    positions_json,
    rfc3339,
    trade_account_json,
)
from tickwise.venues.sim.server.common import SimContext

_MAX_CLIENT_ORDER_ID = 48
_RATE_HEADERS = web.RequestKey("alpaca_rate_headers", dict[str, str])
_LIST_LIMIT_MAX = 500


class ApiError(Exception):
    """An answer in Alpaca's error shape, raised from anywhere in a handler."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.body = error_body(code, message, **extra)
        self.headers = headers or {}

    def response(self) -> web.Response:
        return web.json_response(self.body, status=self.status, headers=self.headers)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request is for: the account (client) and which API it came through."""

    client: int
    broker: bool


@dataclass(frozen=True, slots=True)
class _OrderRequest:
    instrument: int
    side: Side
    qty: float
    order_type: OrderType
    time_in_force: TimeInForce
    limit_price: float
    client_order_id: str


Handler = Callable[[web.Request, Caller], Awaitable[web.StreamResponse]]


def _capacity(rules: tuple[LimitRule, ...], name: str) -> int:
    return int(next(rule.capacity for rule in rules if rule.name == name))


def _decimal(value: object) -> float | None:
    """A positive finite decimal sent as a string or a number, else None."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):  # OverflowError: an integer beyond any float
        return None
    return number if math.isfinite(number) and number > 0 else None


class AlpacaApi:
    """The REST handlers of both APIs over one `SimContext`."""

    def __init__(self, ctx: SimContext, open_handlers: OpenHandlers) -> None:
        self.ctx = ctx
        self.open = open_handlers
        self.exchange = ctx.exchange
        self.registry = ctx.exchange.registry
        self.symbols = SymbolBook(self.registry)
        self.keys = AlpacaKeys(ctx.accounts)
        self._trading_budget = RequestBudget(_capacity(ALPACA.limits, "trading-api"))
        self._account_budget = RequestBudget(
            _capacity(ALPACA_BROKER.limits, "broker-api-per-account")
        )
        self._broker_budget = RequestBudget(_capacity(ALPACA_BROKER.limits, "broker-api"))
        self._server_errors = 0

    # -- plumbing --------------------------------------------------------------------------

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Alpaca's error shape for every refusal, rate-limit headers, the network delay."""
        try:
            response = await handler(request)
        except ApiError as err:
            response = err.response()
        except web.HTTPNotFound:
            response = web.json_response(error_body(40410000, "endpoint not found"), status=404)
        except web.HTTPMethodNotAllowed:
            response = web.json_response(error_body(40510000, "method not allowed"), status=405)
        if isinstance(response, web.Response):  # not a WebSocket or an event stream
            response.headers.update(request.get(_RATE_HEADERS, {}))
            await self.ctx.network_delay()
        return response

    def _admit(self, request: web.Request, budget: RequestBudget, bucket: str) -> None:
        if not self.ctx.rate_limits:
            return
        admitted, headers = budget.take(bucket, time.time())
        request[_RATE_HEADERS] = headers
        if not admitted:
            wait = max(1, int(headers["X-RateLimit-Reset"]) - int(time.time()))
            raise ApiError(429, *RATE_LIMITED, headers={"Retry-After": str(wait)})

    def _trading_caller(self, request: web.Request) -> Caller:
        key_id = request.headers.get(KEY_ID_HEADER, "")
        client = self.keys.client_of(key_id, request.headers.get(SECRET_KEY_HEADER, ""))
        if client is None:
            raise ApiError(401, *UNAUTHORIZED)
        self._admit(request, self._trading_budget, f"key:{key_id}")
        return Caller(client, broker=False)

    def _check_broker(self, request: web.Request) -> None:
        if not self.keys.is_broker_basic(request.headers.get("Authorization", "")):
            raise ApiError(401, *UNAUTHORIZED)

    def _broker_caller(self, request: web.Request) -> Caller:
        self._check_broker(request)
        account_id = request.match_info["account_id"]
        client = self.ctx.accounts.client_of_account(account_id)
        if client is None:
            raise ApiError(404, 40410000, "account not found")
        self._admit(request, self._account_budget, f"account:{account_id}")
        return Caller(client, broker=True)

    def _trading(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def route(request: web.Request) -> web.StreamResponse:
            return await handler(request, self._trading_caller(request))

        return route

    def _broker(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def route(request: web.Request) -> web.StreamResponse:
            return await handler(request, self._broker_caller(request))

        return route

    def add_routes(self, app: web.Application) -> None:
        account_routes: list[tuple[str, str, Handler]] = [
            ("POST", "/orders", self.post_order),
            ("GET", "/orders", self.list_orders),
            ("DELETE", "/orders", self.cancel_all),
            ("GET", "/orders:by_client_order_id", self.get_by_client_order_id),
            ("GET", "/orders/{order_id}", self.get_order),
            ("DELETE", "/orders/{order_id}", self.cancel_order),
            ("GET", "/account", self.get_account),
            ("GET", "/positions", self.list_positions),
            ("GET", "/positions/{symbol:.+}", self.get_position),
        ]
        for method, path, handler in account_routes:
            app.router.add_route(method, "/v2" + path, self._trading(handler))
            app.router.add_route(
                method, "/v1/trading/accounts/{account_id}" + path, self._broker(handler)
            )
        app.router.add_get("/v2/clock", self.clock)
        app.router.add_get("/v1/clock", self.clock)
        app.router.add_get("/v1/accounts/{account_id}", self.get_broker_account)

    # -- orders ----------------------------------------------------------------------------

    async def post_order(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        spec = self._parse_order(await _json_body(request))
        fault = self.ctx.faults.draw()
        if fault is Fault.ERROR_5XX:
            raise self._server_error(unknown=False)
        if fault is Fault.RATE_LIMIT:
            raise ApiError(429, *RATE_LIMITED, headers={"Retry-After": "1"})
        order: SimOrder | None = None
        refusal: ApiError | None = None
        try:
            order = self._submit(caller, spec)
        except ApiError as err:
            refusal = err
        if fault is Fault.UNKNOWN:
            raise self._server_error(unknown=True)
        if fault is Fault.TIMEOUT:
            with self.open.track():  # the server's shutdown ends the wait
                await asyncio.sleep(self.ctx.faults.plan.stall_s)
        if fault is Fault.DROP:
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)
        if order is None:
            assert refusal is not None
            raise refusal
        status = "accepted" if order.state is OrderState.ACKED and order.in_matching else None
        return web.json_response(
            order_json(order, self.registry, status=status, broker=caller.broker)
        )

    def _server_error(self, *, unknown: bool) -> ApiError:
        self._server_errors += 1
        if unknown and self._server_errors % 2 == 0:
            return ApiError(504, 50410000, "gateway timeout")
        if not unknown and self._server_errors % 2 == 0:
            return ApiError(503, 50310000, "service unavailable")
        return ApiError(500, 50010000, "internal server error")

    def _parse_order(self, body: object) -> _OrderRequest:
        if not isinstance(body, dict):
            raise ApiError(400, *INVALID_BODY)
        symbol = body.get("symbol")
        index = self.symbols.index(symbol) if isinstance(symbol, str) else None
        if index is None:
            raise ApiError(422, UNPROCESSABLE, "asset not found")
        inst = self.registry[index]
        side = {"buy": Side.BUY, "sell": Side.SELL}.get(str(body.get("side")))
        if side is None:
            raise ApiError(422, VALIDATION, "invalid side")
        if body.get("notional") is not None:
            raise ApiError(422, VALIDATION, "notional orders are not supported")
        qty = _decimal(body.get("qty"))
        if qty is None:
            raise ApiError(422, VALIDATION, "qty must be a positive decimal")
        kind = parse_order_type(str(body.get("type") or body.get("order_type")), inst)
        crypto = inst.asset_class is AssetClass.CRYPTO
        if kind is None:
            text = "invalid order type for crypto order" if crypto else "invalid order type"
            raise ApiError(422, VALIDATION, text)
        tif = parse_tif(str(body.get("time_in_force")), inst)
        if tif is None:
            text = "invalid crypto time_in_force" if crypto else "invalid time_in_force"
            raise ApiError(422, VALIDATION, text)
        limit_price = math.nan
        if kind is OrderType.LIMIT:
            price = _decimal(body.get("limit_price"))
            if price is None:
                raise ApiError(422, VALIDATION, "limit_price is required for limit orders")
            limit_price = price
        coid = body.get("client_order_id") or str(uuid.uuid4())
        if not isinstance(coid, str) or len(coid) > _MAX_CLIENT_ORDER_ID:
            raise ApiError(422, VALIDATION, "client_order_id must be no more than 48 characters")
        return _OrderRequest(index, side, qty, kind, tif, limit_price, coid)

    def _submit(self, caller: Caller, spec: _OrderRequest) -> SimOrder:
        """The exchange takes the order, or an `ApiError` in Alpaca's words says why not."""
        client, exchange = caller.client, self.exchange
        venue = exchange.venue
        try:
            # Duplicates first: a resend of an order that landed must read as a duplicate, not
            # as a lack of the funds its first copy spent.
            if exchange.find(client, client_order_id=spec.client_order_id) is not None:
                raise OrderRefusedError(venue, RejectReason.DUPLICATE_CLIENT_ORDER_ID)
            self._check_funds(client, spec)
            return exchange.submit(
                client,
                spec.instrument,
                spec.side,
                spec.qty,
                spec.client_order_id,
                spec.order_type,
                spec.time_in_force,
                spec.limit_price,
            )
        except OrderRefusedError as refused:
            raise self._refusal(refused, client, spec) from None

    def _check_funds(self, client: int, spec: _OrderRequest) -> None:
        """Buying power (cash not held by resting buys) and quantity available (not held by
        open sells), checked on receipt as Alpaca does."""
        exchange = self.exchange
        if spec.side is Side.BUY:
            price = spec.limit_price if spec.order_type is OrderType.LIMIT else math.nan
            if not math.isfinite(price):
                price = exchange.price(spec.instrument)
            available = exchange.cash(client) - exchange.locked(client)
            if math.isfinite(price) and spec.qty * price > available * (1 + 1e-12) + 1e-9:
                raise OrderRefusedError(exchange.venue, RejectReason.INSUFFICIENT_BUYING_POWER)
            return
        held = exchange.positions(client).get(spec.instrument, 0.0)
        available = held - exchange.held_by_open_sells(client, spec.instrument)
        if spec.qty > available * (1 + exchange.config.qty_tolerance) + 1e-12:
            raise OrderRefusedError(exchange.venue, RejectReason.INSUFFICIENT_POSITION)

    def _refusal(self, refused: OrderRefusedError, client: int, spec: _OrderRequest) -> ApiError:
        code = int(refused.code)
        status = 403 if code == 40310000 else 422
        if refused.reason is RejectReason.INSUFFICIENT_BUYING_POWER:
            price = self.exchange.price(spec.instrument)
            cost = spec.qty * (spec.limit_price if math.isfinite(spec.limit_price) else price)
            power = self.exchange.cash(client) - self.exchange.locked(client)
            return ApiError(
                status,
                code,
                refused.text,
                buying_power=decimal_text(max(power, 0.0)),
                cost_basis=decimal_text(cost if math.isfinite(cost) else 0.0),
            )
        return ApiError(status, code, refused.text)

    def _order_of(self, request: web.Request, caller: Caller) -> SimOrder:
        number = order_id_of(request.match_info["order_id"])
        order = None if number is None else self.exchange.find(caller.client, order_id=number)
        if order is None:
            raise ApiError(404, *NOT_FOUND)
        return order

    async def get_order(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        order = self._order_of(request, caller)
        return web.json_response(order_json(order, self.registry, broker=caller.broker))

    async def get_by_client_order_id(
        self, request: web.Request, caller: Caller
    ) -> web.StreamResponse:
        coid = request.query.get("client_order_id", "")
        if not coid:
            raise ApiError(422, VALIDATION, "client_order_id is required")
        order = self.exchange.find(caller.client, client_order_id=coid)
        if order is None:
            raise ApiError(404, *NOT_FOUND)
        return web.json_response(order_json(order, self.registry, broker=caller.broker))

    async def list_orders(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        query = request.query
        status = query.get("status", "open")
        if status not in ("open", "closed", "all"):
            raise ApiError(422, VALIDATION, "invalid status")
        try:
            limit = int(query.get("limit", "50"))
        except ValueError:
            raise ApiError(422, VALIDATION, "invalid limit") from None
        if not 1 <= limit <= _LIST_LIMIT_MAX:
            raise ApiError(422, VALIDATION, f"limit must be 1..{_LIST_LIMIT_MAX}")
        orders = self.exchange.orders_of(caller.client)
        if status != "all":
            orders = [o for o in orders if o.open == (status == "open")]
        symbols = {s for s in query.get("symbols", "").split(",") if s}
        if symbols:
            wanted = {self.symbols.index(s) for s in symbols}
            orders = [o for o in orders if o.instrument in wanted]
        if side := query.get("side"):
            orders = [o for o in orders if (o.side is Side.BUY) == (side == "buy")]
        for name in ("after", "until"):  # creation time, after: strictly, until: inclusive
            if not (text := query.get(name)):
                continue
            try:
                bound = rfc3339_ns(text)
            except ValueError:
                raise ApiError(422, VALIDATION, f"invalid {name}") from None
            if name == "after":
                orders = [o for o in orders if o.created_ns > bound]
            else:
                orders = [o for o in orders if o.created_ns <= bound]
        if query.get("direction", "desc") == "desc":
            orders = orders[::-1]
        docs = [order_json(o, self.registry, broker=caller.broker) for o in orders[:limit]]
        return web.json_response(docs)

    async def cancel_order(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        order = self._order_of(request, caller)
        if not order.open:
            status = ORDER_STATUS.get(order.state, "new")
            raise ApiError(422, UNPROCESSABLE, f'order is already in "{status}" state')
        self.exchange.cancel(caller.client, order_id=order.order_id)
        return web.Response(status=204)

    async def cancel_all(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        answers = []
        for order in self.exchange.orders_of(caller.client, open_only=True):
            self.exchange.cancel(caller.client, order_id=order.order_id)
            answers.append({"id": order_uuid(order.order_id), "status": 200})
        return web.json_response(answers, status=207)

    # -- accounts --------------------------------------------------------------------------

    async def get_account(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        return web.json_response(
            trade_account_json(self.exchange, caller.client, broker=caller.broker)
        )

    async def list_positions(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        return web.json_response(positions_json(self.exchange, caller.client))

    async def get_position(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        index = self.symbols.index(request.match_info["symbol"])
        doc = None if index is None else position_json(self.exchange, caller.client, index)
        if doc is None:
            raise ApiError(404, 40410000, "position does not exist")
        return web.json_response(doc)

    async def get_broker_account(self, request: web.Request) -> web.StreamResponse:
        self._check_broker(request)
        self._admit(request, self._broker_budget, "broker")
        client = self.ctx.accounts.client_of_account(request.match_info["account_id"])
        if client is None:
            raise ApiError(404, 40410000, "account not found")
        return web.json_response(broker_account_json(self.exchange, client))

    async def clock(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/v1/"):
            self._check_broker(request)
        else:
            self._trading_caller(request)
        now = time.time_ns()
        day = 86_400 * 1_000_000_000
        return web.json_response(
            {
                "timestamp": now_rfc3339(),
                "is_open": True,
                "next_open": rfc3339(now + day),
                "next_close": rfc3339(now + day // 4),
            }
        )


async def _json_body(request: web.Request) -> object:
    try:
        return decode_json(await request.read() or b"null")
    except ValueError:
        raise ApiError(400, *INVALID_BODY) from None


def build_app(ctx: SimContext) -> web.Application:
    """The Alpaca simulator: Trading API, Broker API and their streams on one port."""
    open_handlers = OpenHandlers()
    api = AlpacaApi(ctx, open_handlers)
    streams = AlpacaStreams(ctx, api.symbols, api.keys, open_handlers)
    app = web.Application(middlewares=[api.middleware])
    api.add_routes(app)
    streams.add_routes(app)
    app.on_startup.append(streams.on_startup)
    app.on_shutdown.append(open_handlers.end_all)
    app.on_cleanup.append(streams.on_cleanup)
    return app
