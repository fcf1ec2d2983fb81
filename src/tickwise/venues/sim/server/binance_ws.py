"""The simulated Binance WebSocket API (`/ws-api/v3`).

Requests `{"id", "method", "params"}` are answered `{"id", "status", "result" | "error",
"rateLimits"}`. Methods: `ping`, `time`, `exchangeInfo`, `userDataStream.subscribe.signature`
(any number of accounts on one connection, each its own `subscriptionId`; events arrive as
`{"subscriptionId": n, "event": {...}}`: `executionReport`, then `outboundAccountPosition`),
`userDataStream.unsubscribe`, `session.subscriptions`, `order.place`, `order.status`,
`order.cancel`, `openOrders.status`, `account.status`. Signed methods carry `apiKey`,
`timestamp` and `signature` over the other params sorted by name. A connection is closed when
`ctx.faults.disconnect_now` says so (checked every second).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from tickwise.venues.http import decode_json
from tickwise.venues.sim.exchange import OrderEvent
from tickwise.venues.sim.faults import FaultInjector
from tickwise.venues.sim.server.binance_desk import ApiError, mandatory
from tickwise.venues.sim.server.binance_gate import bad_signature, check_timestamp, ws_payloads

if TYPE_CHECKING:
    from tickwise.venues.sim.server.binance import BinanceServer

log = logging.getLogger(__name__)

HEARTBEAT_S = 20.0  # Binance pings every 20 s
FAULT_CHECK_S = 1.0
WS_WEIGHTS = {
    "userDataStream.subscribe.signature": 2,
    "userDataStream.unsubscribe": 2,
    "exchangeInfo": 20,
    "order.status": 4,
    "openOrders.status": 6,
    "account.status": 20,
}


async def close_on_fault(ws: web.WebSocketResponse, faults: FaultInjector) -> None:
    """Close `ws` when the fault plan drops the connection (runs until cancelled)."""
    last = time.monotonic()
    while not ws.closed:
        await asyncio.sleep(FAULT_CHECK_S)
        now = time.monotonic()
        if faults.disconnect_now(now - last):
            await ws.close(code=1001, message=b"simulated disconnect")
            return
        last = now


def _texts(params: Mapping[str, Any]) -> dict[str, str]:
    """WS params as the REST desk reads them (lists as JSON, booleans lower case)."""
    out: dict[str, str] = {}
    for k, v in params.items():
        if isinstance(v, bool):
            out[k] = "true" if v else "false"
        elif isinstance(v, list | dict):
            out[k] = json.dumps(v, separators=(",", ":"))
        else:
            out[k] = str(v)
    return out


class UserDataApi:
    """The WebSocket API endpoint (see module doc)."""

    def __init__(self, server: BinanceServer) -> None:
        self.server = server

    def install(self, app: web.Application) -> None:
        app.router.add_get("/ws-api/v3", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ip = request.remote or "unknown"
        try:
            self.server.admit(ip, "WS /ws-api/v3")
        except ApiError as err:
            return web.json_response(err.body(), status=err.status, headers=err.headers)
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S)
        await ws.prepare(request)
        await _ApiSession(self.server, ws, ip).run()
        return ws


class _ApiSession:
    """One WebSocket API connection: its requests and its user data subscriptions."""

    def __init__(self, server: BinanceServer, ws: web.WebSocketResponse, ip: str) -> None:
        self.server = server
        self.ws = ws
        self.ip = ip
        self._send_lock = asyncio.Lock()
        self._ids = itertools.count(0)
        self._subscriptions: dict[int, tuple[asyncio.Queue[OrderEvent], asyncio.Task[None]]] = {}
        self._requests: set[asyncio.Task[None]] = set()
        self._methods: dict[str, Callable[[dict[str, Any]], Awaitable[object]]] = {
            "ping": self._ping,
            "time": self._time,
            "exchangeInfo": self._exchange_info,
            "userDataStream.subscribe.signature": self._subscribe,
            "userDataStream.unsubscribe": self._unsubscribe,
            "session.subscriptions": self._list_subscriptions,
            "order.place": self._order_place,
            "order.status": self._order_status,
            "order.cancel": self._order_cancel,
            "openOrders.status": self._open_orders,
            "account.status": self._account,
        }

    async def run(self) -> None:
        watchdog = asyncio.create_task(close_on_fault(self.ws, self.server.ctx.faults))
        try:
            async for msg in self.ws:
                if msg.type is WSMsgType.TEXT:
                    task = asyncio.create_task(self._answer(msg.data))
                    self._requests.add(task)
                    task.add_done_callback(self._requests.discard)
                elif msg.type is WSMsgType.ERROR:
                    break
        finally:
            watchdog.cancel()
            for task in list(self._requests):
                task.cancel()
            for sid in list(self._subscriptions):
                self._stop(sid)

    async def send(self, payload: object) -> None:
        async with self._send_lock:
            if not self.ws.closed:
                with contextlib.suppress(ConnectionError):
                    await self.ws.send_str(json.dumps(payload))

    async def _answer(self, text: str) -> None:
        req_id: object = None
        limits_wanted = True
        try:
            try:
                request = decode_json(text)
            except ValueError:
                raise ApiError(400, -1100, "Malformed request: not JSON.") from None
            if not isinstance(request, dict):
                raise ApiError(400, -1100, "Malformed request: not a JSON object.")
            req_id = request.get("id")
            method, params = request.get("method"), request.get("params") or {}
            if not isinstance(params, dict):
                raise ApiError(400, -1100, "Malformed request: params must be an object.")
            limits_wanted = params.get("returnRateLimits", True) not in (False, "false")
            if self.server.ctx.rate_limits:
                weight = float(WS_WEIGHTS.get(str(method), 1))
                self.server.limits.admit(self.ip, {"requests": 1.0, "weight": weight})
            handler = self._methods.get(str(method))
            if handler is None:
                raise ApiError(400, -1100, f"Unknown method '{method}'.")
            response: dict[str, object] = {
                "id": req_id,
                "status": 200,
                "result": await handler(params),
            }
        except ApiError as err:
            response = {"id": req_id, "status": err.status, "error": err.body()}
        except Exception:  # a bug here must not end the connection silently
            log.exception("Binance WebSocket API request %r failed", req_id)
            unknown = {"code": -1000, "msg": "An unknown error occurred while processing."}
            response = {"id": req_id, "status": 500, "error": unknown}
        if limits_wanted:
            response["rateLimits"] = self._rate_limits()
        await self.server.ctx.network_delay()
        await self.send(response)

    def _rate_limits(self) -> list[dict[str, object]]:
        rule = next((r for r in self.server.limits.rules if r.unit == "weight"), None)
        if rule is None:
            return []
        return [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": max(1, int(rule.window_s // 60)),
                "limit": int(rule.capacity),
                "count": self.server.limits.used_weight(self.ip),
            }
        ]

    def _authenticate(self, params: Mapping[str, Any]) -> int:
        api_key = params.get("apiKey")
        key = self.server.keys.require(api_key if isinstance(api_key, str) else None)
        signature = params.get("signature")
        if not signature:
            raise mandatory("signature")
        if not any(key.verify(p, str(signature)) for p in ws_payloads(params)):
            raise bad_signature()
        check_timestamp(params, self.server.clock_ms())
        return key.client

    # -- methods ---------------------------------------------------------------------------

    async def _ping(self, params: dict[str, Any]) -> object:
        return {}

    async def _time(self, params: dict[str, Any]) -> object:
        return {"serverTime": self.server.clock_ms()}

    async def _exchange_info(self, params: dict[str, Any]) -> object:
        return self.server.desk.exchange_info(_texts(params), self.server.clock_ms())

    async def _subscribe(self, params: dict[str, Any]) -> object:
        client = self._authenticate(params)
        sid = next(self._ids)
        queue = self.server.ctx.exchange.subscribe(client)
        task = asyncio.create_task(self._forward(sid, client, queue))
        self._subscriptions[sid] = (queue, task)
        return {"subscriptionId": sid}

    async def _unsubscribe(self, params: dict[str, Any]) -> object:
        raw = params.get("subscriptionId")
        if raw is None:
            for sid in list(self._subscriptions):
                self._stop(sid)
            return {}
        try:
            sid = int(raw)
        except (TypeError, ValueError, OverflowError):  # OverflowError: an infinite float
            raise mandatory("subscriptionId") from None
        if sid not in self._subscriptions:
            raise ApiError(400, -1102, f"Subscription {sid} is not active on this connection.")
        self._stop(sid)
        return {}

    async def _list_subscriptions(self, params: dict[str, Any]) -> object:
        return [{"subscriptionId": sid} for sid in sorted(self._subscriptions)]

    async def _order_place(self, params: dict[str, Any]) -> object:
        client = self._authenticate(params)
        desk = self.server.desk
        if self.server.ctx.rate_limits:
            self.server.limits.admit_order(client)
        spec = desk.parse_new_order(_texts(params))
        return await desk.answer_new(desk.place(client, spec), spec)

    async def _order_status(self, params: dict[str, Any]) -> object:
        return self.server.desk.query_order(self._authenticate(params), _texts(params))

    async def _order_cancel(self, params: dict[str, Any]) -> object:
        return await self.server.desk.cancel_order(self._authenticate(params), _texts(params))

    async def _open_orders(self, params: dict[str, Any]) -> object:
        return self.server.desk.open_orders(self._authenticate(params), _texts(params))

    async def _account(self, params: dict[str, Any]) -> object:
        client = self._authenticate(params)
        return self.server.desk.account(client, _texts(params), self.server.clock_ms())

    # -- subscriptions ---------------------------------------------------------------------

    async def _forward(self, sid: int, client: int, queue: asyncio.Queue[OrderEvent]) -> None:
        desk = self.server.desk
        while True:
            event = await queue.get()
            await self.send({"subscriptionId": sid, "event": desk.json.execution_report(event)})
            if event.kind != "rejected":
                now_ms = self.server.clock_ms()
                position = desk.account_position(client, event.order.instrument, now_ms)
                await self.send({"subscriptionId": sid, "event": position})

    def _stop(self, sid: int) -> None:
        queue, task = self._subscriptions.pop(sid)
        task.cancel()
        self.server.ctx.exchange.unsubscribe(queue)
