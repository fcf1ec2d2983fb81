"""The simulated Binance Spot server: REST `/api/v3`, the WebSocket API and market streams.

`build_app(ctx)` serves, over the `SimContext` exchange and market:

    GET  /api/v3/ping, /api/v3/time, /api/v3/exchangeInfo[?symbol=|symbols=]      (public)
    POST /api/v3/order, /api/v3/order/test; GET|DELETE /api/v3/order              (signed)
    GET|DELETE /api/v3/openOrders; GET /api/v3/account; GET /api/v3/myTrades       (signed)
    /ws-api/v3 (WebSocket API), /ws/<stream>, /stream?streams=a/b (market streams)

Signed parameters may come in the query string (binance-sdk-spot) or a form body
(python-binance), or both; the signature covers both exactly as received. Errors answer
`{"code": -NNNN, "msg": ...}` with the statuses of venues.md §3.4. When `ctx.rate_limits` is set,
request weight and order counts are enforced and reported in `X-MBX-USED-WEIGHT-1M` and
`X-MBX-ORDER-COUNT-10S/-1D`. Each order POST draws a fault from `ctx.faults` (see
`tickwise.venues.sim.faults`), applied as Binance would show it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from aiohttp import web

from tickwise.venues.binance.signing import API_KEY_HEADER
from tickwise.venues.capabilities import BINANCE, LimitRule
from tickwise.venues.sim.faults import Fault
from tickwise.venues.sim.server.binance_desk import ApiError, BinanceDesk, mandatory
from tickwise.venues.sim.server.binance_gate import (
    ApiKeys,
    ServerLimits,
    bad_signature,
    check_timestamp,
    signed_payload,
)
from tickwise.venues.sim.server.binance_streams import MarketStreams
from tickwise.venues.sim.server.binance_ws import UserDataApi
from tickwise.venues.sim.server.common import SimContext

ClockMs = Callable[[], int]


def unknown_outcome() -> ApiError:
    return ApiError(
        500,
        -1007,
        "Timeout waiting for response from backend server. Send status unknown; execution "
        "status unknown.",
    )


def server_busy() -> ApiError:
    return ApiError(
        503,
        -1008,
        "Server is currently overloaded with other requests. Please try again in a few minutes.",
    )


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class BinanceServer:
    """Everything the handlers share; one per application (`app[BINANCE_SERVER]`)."""

    ctx: SimContext
    desk: BinanceDesk
    keys: ApiKeys
    limits: ServerLimits
    clock_ms: ClockMs

    def weight(self, endpoint: str) -> dict[str, float]:
        return {"requests": 1.0, "weight": float(BINANCE.endpoint_weights.get(endpoint, 1))}

    def admit(self, ip: str, endpoint: str) -> None:
        if self.ctx.rate_limits:
            self.limits.admit(ip, self.weight(endpoint))

    def authenticate(
        self,
        api_key: str | None,
        params: Mapping[str, str],
        raw_query: str,
        raw_body: str,
    ) -> int:
        """The client of a signed REST request, or the venue's refusal."""
        key = self.keys.require(api_key)
        payload, signature = signed_payload(raw_query, raw_body)
        if not signature:
            raise mandatory("signature")
        if not key.verify(payload, signature):
            raise bad_signature()
        check_timestamp(params, self.clock_ms())
        return key.client

    def usage_headers(self, ip: str, client: int | None = None) -> dict[str, str]:
        return self.limits.headers(ip, client) if self.ctx.rate_limits else {}


BINANCE_SERVER = web.AppKey("binance_server", BinanceServer)


@dataclass(frozen=True, slots=True)
class Call:
    """One REST request, read: its parameters (query wins over body) and, for a signed
    endpoint, the client whose key signed it (-1 for public endpoints)."""

    request: web.Request
    ip: str
    params: dict[str, str]
    client: int


Action = Callable[[Call], Awaitable[object]]


class _DroppedError(Exception):
    """The connection was closed on purpose (fault `drop`): nothing is answered."""


async def _read(request: web.Request) -> tuple[dict[str, str], str, str]:
    raw_query = request.raw_path.partition("?")[2]
    raw_body = (await request.read()).decode("utf-8", "replace") if request.can_read_body else ""
    params = dict(parse_qsl(raw_body, keep_blank_values=True))
    params.update(parse_qsl(raw_query, keep_blank_values=True))
    return params, raw_query, raw_body


def _endpoint(
    name: str,
    action: Action,
    *,
    signed: bool,
    weight: Callable[[dict[str, str]], str] | None = None,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A handler: weight, then (signed) key, signature and clock, then `action`; every answer
    carries the usage headers, after the network delay."""

    async def handle(request: web.Request) -> web.StreamResponse:
        server = request.app[BINANCE_SERVER]
        ip = request.remote or "unknown"
        client: int | None = None
        headers: dict[str, str] = {}
        try:
            params, raw_query, raw_body = await _read(request)
            server.admit(ip, weight(params) if weight else name)
            if signed:
                client = server.authenticate(
                    request.headers.get(API_KEY_HEADER), params, raw_query, raw_body
                )
            payload = await action(Call(request, ip, params, -1 if client is None else client))
            status = 200
        except ApiError as err:
            status, payload, headers = err.status, err.body(), dict(err.headers)
        except _DroppedError:
            return web.Response(status=204)  # never written: the transport is closed
        await server.ctx.network_delay()
        is_order = name in BINANCE.order_endpoints
        headers.update(server.usage_headers(ip, client if is_order else None))
        return web.json_response(payload, status=status, headers=headers)

    return handle


# -- actions ----------------------------------------------------------------------------------


async def _ping(call: Call) -> object:
    return {}


async def _time(call: Call) -> object:
    return {"serverTime": call.request.app[BINANCE_SERVER].clock_ms()}


async def _exchange_info(call: Call) -> object:
    server = call.request.app[BINANCE_SERVER]
    return server.desk.exchange_info(call.params, server.clock_ms())


async def _new_order(call: Call) -> object:
    server = call.request.app[BINANCE_SERVER]
    desk, ctx = server.desk, server.ctx
    if ctx.rate_limits:
        server.limits.admit_order(call.client)
    spec = desk.parse_new_order(call.params)
    fault = ctx.faults.draw()
    if fault is Fault.ERROR_5XX:
        raise server_busy()
    if fault is Fault.RATE_LIMIT:
        raise ApiError(
            429,
            -1003,
            "Too many requests; please use WebSocket Streams for live updates.",
            {"Retry-After": "1"},
        )
    answer: object = None
    refused: ApiError | None = None
    try:
        answer = await desk.answer_new(desk.place(call.client, spec), spec)
    except ApiError as err:
        refused = err
    if fault is Fault.UNKNOWN:
        raise unknown_outcome()
    if fault is Fault.TIMEOUT:  # held past any client's patience, then answered
        await asyncio.sleep(ctx.faults.plan.stall_s)
    if fault is Fault.DROP:
        transport = call.request.transport
        if transport is not None:
            transport.close()
        raise _DroppedError
    if refused is not None:
        raise refused
    return answer


async def _test_order(call: Call) -> object:
    call.request.app[BINANCE_SERVER].desk.parse_new_order(call.params)
    return {}


async def _query_order(call: Call) -> object:
    return call.request.app[BINANCE_SERVER].desk.query_order(call.client, call.params)


async def _cancel_order(call: Call) -> object:
    return await call.request.app[BINANCE_SERVER].desk.cancel_order(call.client, call.params)


async def _open_orders(call: Call) -> object:
    return call.request.app[BINANCE_SERVER].desk.open_orders(call.client, call.params)


async def _cancel_open_orders(call: Call) -> object:
    desk = call.request.app[BINANCE_SERVER].desk
    return await desk.cancel_open_orders(call.client, call.params)


async def _account(call: Call) -> object:
    server = call.request.app[BINANCE_SERVER]
    return server.desk.account(call.client, call.params, server.clock_ms())


async def _my_trades(call: Call) -> object:
    return call.request.app[BINANCE_SERVER].desk.my_trades(call.client, call.params)


def _open_orders_weight(params: dict[str, str]) -> str:
    return "GET /api/v3/openOrders" + ("" if params.get("symbol") else "?all-symbols")


def _my_trades_weight(params: dict[str, str]) -> str:
    return "GET /api/v3/myTrades" + ("?orderId" if params.get("orderId") else "")


def build_app(
    ctx: SimContext,
    *,
    keys: ApiKeys | None = None,
    limits: tuple[LimitRule, ...] = BINANCE.limits,
    clock_ms: ClockMs = wall_clock_ms,
    limits_clock: Callable[[], float] = time.monotonic,
) -> web.Application:
    """The Binance Spot protocol server over `ctx` (see module doc).

    `keys` adds API keys beyond the simulator's derived ones (Ed25519, test vectors); `limits`
    replaces the documented rate limits; `clock_ms` is the server's time (for `/time` and the
    recvWindow check) and `limits_clock` the monotonic clock its rate windows run on.
    """
    app = web.Application()
    server = BinanceServer(
        ctx=ctx,
        desk=BinanceDesk(ctx, limits),
        keys=(keys or ApiKeys()).bind(ctx.accounts),
        limits=ServerLimits(limits, limits_clock, clock_ms),
        clock_ms=clock_ms,
    )
    app[BINANCE_SERVER] = server
    routes = [
        ("GET", "/api/v3/ping", _endpoint("GET /api/v3/ping", _ping, signed=False)),
        ("GET", "/api/v3/time", _endpoint("GET /api/v3/time", _time, signed=False)),
        (
            "GET",
            "/api/v3/exchangeInfo",
            _endpoint("GET /api/v3/exchangeInfo", _exchange_info, signed=False),
        ),
        ("POST", "/api/v3/order", _endpoint("POST /api/v3/order", _new_order, signed=True)),
        (
            "POST",
            "/api/v3/order/test",
            _endpoint("POST /api/v3/order/test", _test_order, signed=True),
        ),
        ("GET", "/api/v3/order", _endpoint("GET /api/v3/order", _query_order, signed=True)),
        (
            "DELETE",
            "/api/v3/order",
            _endpoint("DELETE /api/v3/order", _cancel_order, signed=True),
        ),
        (
            "GET",
            "/api/v3/openOrders",
            _endpoint(
                "GET /api/v3/openOrders", _open_orders, signed=True, weight=_open_orders_weight
            ),
        ),
        (
            "DELETE",
            "/api/v3/openOrders",
            _endpoint("DELETE /api/v3/openOrders", _cancel_open_orders, signed=True),
        ),
        ("GET", "/api/v3/account", _endpoint("GET /api/v3/account", _account, signed=True)),
        (
            "GET",
            "/api/v3/myTrades",
            _endpoint("GET /api/v3/myTrades", _my_trades, signed=True, weight=_my_trades_weight),
        ),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    UserDataApi(server).install(app)
    MarketStreams(ctx).install(app)
    return app
