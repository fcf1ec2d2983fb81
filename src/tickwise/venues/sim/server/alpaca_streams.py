"""Alpaca's streams over the simulator (venues.md §1.5, §1.6, §2).

    /stream                       trade_updates WebSocket of one account (Trading API keys):
                                  `authenticate`, `listen`, then events new/fill/canceled/
                                  rejected/expired with the full order, JSON text (msgpack binary
                                  when the upgrade says `Content-Type: application/msgpack`)
    /v1/events/trades             Broker API trade events of every account (Server-Sent
                                  Events), numbered by `event_id`, replayed from `since_id`
    /v2/iex, /v2/sip              stock market data; `/v1beta3/crypto/us` crypto: `auth`,
                                  `subscribe` trades/quotes, arrays of messages, JSON or msgpack
                                  (times as msgpack Timestamps, which alpaca-py expects)

Market data comes from `ctx.market` tick batches: a TRADE tick is a trade (`T:"t"`), a BID or
ASK tick a quote (`T:"q"`) carrying the instrument's current bid and ask. Every stream is
dropped now and then when the fault plan has `disconnect`. Open streams are ended when the
server shuts down, so that it stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt
from aiohttp import WSMsgType, web

from tickwise.model.instruments import AssetClass
from tickwise.model.ticks import TickBatch, TickKind
from tickwise.venues.alpaca.auth import KEY_ID_HEADER, SECRET_KEY_HEADER
from tickwise.venues.sim.exchange import OrderEvent
from tickwise.venues.sim.server.alpaca_wire import (
    UNAUTHORIZED,
    AlpacaKeys,
    OpenHandlers,
    SymbolBook,
    error_body,
    rfc3339,
    trade_update_json,
)
from tickwise.venues.sim.server.common import SimContext

EVENT_HISTORY = 100_000  # Broker API events kept for replay (since_id)
LISTENER_QUEUE = 50_000  # events an SSE listener may fall behind before it is dropped
_CHECK_S = 1.0  # how often an open stream draws its disconnect fault
_HEARTBEAT_S = 10.0  # SSE comment line when nothing else was sent
_FRAME_MESSAGES = 1_000  # market-data messages per frame
_MSGPACK = "application/msgpack"
_STOCK_CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")
_CRYPTO_CHANNELS = ("trades", "quotes", "orderbooks", "bars", "updatedBars", "dailyBars")


@dataclass(eq=False)
class _Listener:
    queue: asyncio.Queue[tuple[int, str]] = field(
        default_factory=lambda: asyncio.Queue(LISTENER_QUEUE)
    )
    overflowed: bool = False


class TradeEventLog:
    """Every order event of every account, numbered, kept for replay and fanned out to the
    Broker API event streams."""

    def __init__(self, ctx: SimContext, keep: int = EVENT_HISTORY) -> None:
        self.ctx = ctx
        self._history: deque[tuple[int, str]] = deque(maxlen=keep)
        self._listeners: set[_Listener] = set()
        self._last_id = 0

    async def run(self) -> None:
        queue = self.ctx.exchange.subscribe(None)
        try:
            while True:
                self.append(await queue.get())
        finally:
            self.ctx.exchange.unsubscribe(queue)

    def append(self, event: OrderEvent) -> None:
        self._last_id += 1
        doc = {
            "account_id": self.ctx.accounts.account_id(event.order.client),
            "at": rfc3339(event.ts_ns),
            "event_id": self._last_id,
            **trade_update_json(event, self.ctx.exchange, broker=True),
        }
        item = (self._last_id, json.dumps(doc, separators=(",", ":")))
        self._history.append(item)
        for listener in self._listeners:
            try:
                listener.queue.put_nowait(item)
            except asyncio.QueueFull:
                listener.overflowed = True

    def listen(self, since_id: int | None) -> tuple[list[tuple[int, str]], _Listener]:
        """The kept events from `since_id` on (none when None), and a listener for the rest."""
        backlog = [] if since_id is None else [e for e in self._history if e[0] >= since_id]
        listener = _Listener()
        self._listeners.add(listener)
        return backlog, listener

    def unlisten(self, listener: _Listener) -> None:
        self._listeners.discard(listener)


def _decode(data: str | bytes, packed: bool) -> Any:
    """A client message: JSON text, or msgpack binary on a msgpack connection."""
    try:
        if isinstance(data, bytes) and packed:
            return msgpack.unpackb(data, raw=False)
        return json.loads(data)
    except Exception:  # the decoders raise assorted errors on garbage
        return None


class _Disconnects:
    """Draws the disconnect fault for one stream once per `_CHECK_S` of its life."""

    def __init__(self, ctx: SimContext) -> None:
        self._ctx = ctx
        self._last = time.monotonic()

    def now(self) -> bool:
        elapsed = time.monotonic() - self._last
        if elapsed < _CHECK_S:
            return False
        self._last += elapsed
        return self._ctx.faults.disconnect_now(elapsed)


class AlpacaStreams:
    """The stream handlers of the Alpaca simulator."""

    def __init__(
        self, ctx: SimContext, symbols: SymbolBook, keys: AlpacaKeys, open_handlers: OpenHandlers
    ) -> None:
        self.ctx = ctx
        self.symbols = symbols
        self.keys = keys
        self.registry = ctx.exchange.registry
        self.events = TradeEventLog(ctx)
        self.open = open_handlers
        self._pump: asyncio.Task[None] | None = None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/stream", self.trade_updates)
        app.router.add_get("/v1/events/trades", self.trade_events)
        for path in ("/v2/iex", "/v2/sip", "/v2/test", "/v2/delayed_sip"):
            app.router.add_get(path, self._market_data(AssetClass.EQUITY))
        for path in ("/v1beta3/crypto/us", "/v1beta2/crypto"):
            app.router.add_get(path, self._market_data(AssetClass.CRYPTO))

    async def on_startup(self, app: web.Application) -> None:
        self._pump = asyncio.get_running_loop().create_task(self.events.run())

    async def on_cleanup(self, app: web.Application) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None

    async def watch_disconnects(self, ws: web.WebSocketResponse) -> None:
        """Close `ws` when the fault plan says so."""
        disconnects = _Disconnects(self.ctx)
        while not ws.closed:
            await asyncio.sleep(_CHECK_S)
            if disconnects.now():
                await ws.close(code=1011, message=b"simulated disconnect")

    # -- trade_updates (Trading API) -------------------------------------------------------

    async def trade_updates(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        packed = request.headers.get("Content-Type", "").startswith(_MSGPACK)
        client: int | None = None
        forward: asyncio.Task[None] | None = None
        watch = asyncio.get_running_loop().create_task(self.watch_disconnects(ws))
        with self.open.track(ws):
            try:
                async for msg in ws:
                    if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                        continue
                    doc = _decode(msg.data, packed)
                    if not isinstance(doc, dict):
                        continue
                    action, data = doc.get("action"), doc.get("data") or {}
                    if action in ("authenticate", "auth") and isinstance(data, dict):
                        client = self.keys.client_of(
                            str(data.get("key_id", "")), str(data.get("secret_key", ""))
                        )
                        status = "unauthorized" if client is None else "authorized"
                        await _send(ws, _authorization("authenticate", status), packed)
                        if client is None:
                            break
                    elif action == "listen":
                        if client is None:
                            await _send(ws, _authorization("listen", "unauthorized"), packed)
                            continue
                        streams = data.get("streams") if isinstance(data, dict) else None
                        wanted = isinstance(streams, list) and "trade_updates" in streams
                        if wanted and forward is None:
                            # Subscribed before "listening" goes out: no event can slip by.
                            queue = self.ctx.exchange.subscribe(client)
                            forward = asyncio.get_running_loop().create_task(
                                self._forward_orders(ws, queue, packed)
                            )
                        elif not wanted and forward is not None:
                            forward.cancel()
                            forward = None
                        listening = ["trade_updates"] if wanted else []
                        await _send(
                            ws, {"stream": "listening", "data": {"streams": listening}}, packed
                        )
            finally:
                for task in (forward, watch):
                    if task is not None:
                        task.cancel()
                await ws.close()
        return ws

    async def _forward_orders(
        self, ws: web.WebSocketResponse, queue: asyncio.Queue[OrderEvent], packed: bool
    ) -> None:
        try:
            while not ws.closed:
                event = await queue.get()
                data = trade_update_json(event, self.ctx.exchange, broker=False)
                await _send(ws, {"stream": "trade_updates", "data": data}, packed)
        except ConnectionError:
            return
        finally:
            self.ctx.exchange.unsubscribe(queue)

    # -- Broker API trade events (SSE) -----------------------------------------------------

    async def trade_events(self, request: web.Request) -> web.StreamResponse:
        if not self.keys.is_broker_basic(request.headers.get("Authorization", "")):
            return web.json_response(error_body(*UNAUTHORIZED), status=401)
        try:
            since_id = _optional_int(request.query.get("since_id"))
            until_id = _optional_int(request.query.get("until_id"))
        except ValueError:
            return web.json_response(error_body(40010001, "invalid event id"), status=400)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        backlog, listener = self.events.listen(since_id)  # before the client sees the answer
        disconnects = _Disconnects(self.ctx)
        with self.open.track():
            try:
                await response.prepare(request)
                for event_id, text in backlog:
                    if until_id is not None and event_id > until_id:
                        return response
                    await response.write(f"data: {text}\n\n".encode())
                quiet_since = time.monotonic()
                while not (listener.overflowed or disconnects.now()):
                    try:
                        event_id, text = await asyncio.wait_for(listener.queue.get(), _CHECK_S)
                    except TimeoutError:
                        if time.monotonic() - quiet_since >= _HEARTBEAT_S:
                            await response.write(b": heartbeat\n\n")
                            quiet_since = time.monotonic()
                        continue
                    # Everything already queued goes out in one write: one event per loop
                    # turn would let a busy server's other tasks starve the stream.
                    chunk = [(event_id, text)]
                    while not listener.queue.empty():
                        chunk.append(listener.queue.get_nowait())
                    ended = until_id is not None and chunk[-1][0] > until_id
                    if until_id is not None:
                        chunk = [item for item in chunk if item[0] <= until_id]
                    if chunk:
                        await response.write("".join(f"data: {t}\n\n" for _, t in chunk).encode())
                    if ended:
                        break
                    quiet_since = time.monotonic()
            except ConnectionError:
                pass
            finally:
                self.events.unlisten(listener)
        return response

    # -- market data -----------------------------------------------------------------------

    def _market_data(self, asset_class: AssetClass) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.StreamResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            session = _DataSession(
                self, ws, asset_class, request.headers.get("Content-Type", "").startswith(_MSGPACK)
            )
            with self.open.track(ws):
                await session.run(request)
            return ws

        return handler


class _DataSession:
    """One market-data connection: its auth, its subscriptions and its feed of ticks."""

    def __init__(
        self,
        streams: AlpacaStreams,
        ws: web.WebSocketResponse,
        asset_class: AssetClass,
        packed: bool,
    ) -> None:
        self.streams = streams
        self.ctx = streams.ctx
        self.ws = ws
        self.packed = packed
        self.crypto = asset_class is AssetClass.CRYPTO
        registry = streams.registry
        self.allowed: npt.NDArray[np.bool_] = registry.asset_class == asset_class
        self.channels = _CRYPTO_CHANNELS if self.crypto else _STOCK_CHANNELS
        self.subscribed: dict[str, list[str]] = {name: [] for name in self.channels}
        self.trades = np.zeros(len(registry), np.bool_)
        self.quotes = np.zeros(len(registry), np.bool_)
        n = len(registry)
        self.book = np.full((n, 4), np.nan)  # bid price, bid size, ask price, ask size
        self.authenticated = False
        self.trade_ids = 0
        self.feed: asyncio.Task[None] | None = None

    async def run(self, request: web.Request) -> None:
        watch = asyncio.get_running_loop().create_task(self.streams.watch_disconnects(self.ws))
        try:
            await self.send([{"T": "success", "msg": "connected"}])
            if self._header_auth(request):
                self.authenticated = True
                await self.send([{"T": "success", "msg": "authenticated"}])
            async for msg in self.ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    continue
                await self.handle(_decode(msg.data, self.packed))
        except ConnectionError:
            pass
        finally:
            for task in (self.feed, watch):
                if task is not None:
                    task.cancel()
            await self.ws.close()

    def _header_auth(self, request: web.Request) -> bool:
        keys = self.streams.keys
        key_id = request.headers.get(KEY_ID_HEADER)
        if key_id is not None:
            secret = request.headers.get(SECRET_KEY_HEADER, "")
            return keys.client_of(key_id, secret) is not None or keys.is_broker(key_id, secret)
        return keys.is_broker_basic(request.headers.get("Authorization", ""))

    async def handle(self, doc: Any) -> None:
        action = doc.get("action") if isinstance(doc, dict) else None
        if action == "auth":
            if self.authenticated:
                await self.error(403, "already authenticated")
                return
            key_id, secret = str(doc.get("key", "")), str(doc.get("secret", ""))
            keys = self.streams.keys
            if keys.client_of(key_id, secret) is None and not keys.is_broker(key_id, secret):
                await self.error(402, "auth failed")
                return
            self.authenticated = True
            await self.send([{"T": "success", "msg": "authenticated"}])
        elif action in ("subscribe", "unsubscribe"):
            if not self.authenticated:
                await self.error(401, "not authenticated")
                return
            self.subscribe(doc, add=action == "subscribe")
            await self.send([{"T": "subscription", **self.subscribed}])
            if self.feed is None:
                self.feed = asyncio.get_running_loop().create_task(self.run_feed())
        else:
            await self.error(400, "invalid syntax")

    def subscribe(self, doc: dict[str, Any], *, add: bool) -> None:
        for channel in self.channels:
            symbols = doc.get(channel)
            if not isinstance(symbols, list):
                continue
            names = [s for s in symbols if isinstance(s, str)]
            current = self.subscribed[channel]
            if add:
                current.extend(s for s in names if s not in current)
            else:
                self.subscribed[channel] = [s for s in current if s not in names]
        self.trades = self._mask(self.subscribed["trades"])
        self.quotes = self._mask(self.subscribed["quotes"])

    def _mask(self, symbols: list[str]) -> npt.NDArray[np.bool_]:
        if "*" in symbols:
            return self.allowed.copy()
        mask = np.zeros(self.allowed.size, np.bool_)
        for symbol in symbols:
            index = self.streams.symbols.index(symbol)
            if index is not None:
                mask[index] = True
        return mask & self.allowed

    async def run_feed(self) -> None:
        queue = self.ctx.market.subscribe()
        try:
            while not self.ws.closed:
                messages = self.messages(await queue.get())
                for start in range(0, len(messages), _FRAME_MESSAGES):
                    await self.send(messages[start : start + _FRAME_MESSAGES])
        except ConnectionError:
            return
        finally:
            self.ctx.market.unsubscribe(queue)

    def messages(self, ticks: TickBatch) -> list[dict[str, Any]]:
        """The trade and quote messages this connection is subscribed to, in tick order."""
        inst = ticks.instrument.astype(np.intp)
        is_trade = ticks.kind == TickKind.TRADE
        rows = np.flatnonzero(np.where(is_trade, self.trades[inst], self.quotes[inst]))
        out: list[dict[str, Any]] = []
        registry = self.streams.registry
        for row in rows.tolist():
            index = int(inst[row])
            price, size = float(ticks.price[row]), float(ticks.size[row])
            stamp = self._time(int(ticks.ts_event[row]))
            symbol = registry[index].symbol
            if is_trade[row]:
                self.trade_ids += 1
                out.append(self._trade(symbol, price, size, stamp))
                continue
            book = self.book[index]
            side = 0 if int(ticks.kind[row]) == TickKind.BID else 2
            book[side], book[side + 1] = price, size
            other = 2 - side
            if np.isnan(book[other]):
                book[other], book[other + 1] = price, 0.0
            out.append(self._quote(symbol, book, stamp))
        return out

    def _time(self, ns: int) -> Any:
        return msgpack.Timestamp.from_unix_nano(ns) if self.packed else rfc3339(ns)

    def _trade(self, symbol: str, price: float, size: float, stamp: Any) -> dict[str, Any]:
        doc = {"T": "t", "S": symbol, "i": self.trade_ids, "p": price, "s": size, "t": stamp}
        if self.crypto:
            doc["tks"] = "B"
        else:
            doc.update({"x": "V", "c": ["@"], "z": "C"})
        return doc

    def _quote(self, symbol: str, book: npt.NDArray[np.float64], stamp: Any) -> dict[str, Any]:
        bid, bid_size, ask, ask_size = (float(v) for v in book)
        doc: dict[str, Any] = {"T": "q", "S": symbol}
        if not self.crypto:
            doc.update({"bx": "V", "ax": "V", "c": ["R"], "z": "C"})
        doc.update({"bp": bid, "bs": bid_size, "ap": ask, "as": ask_size, "t": stamp})
        return doc

    async def error(self, code: int, message: str) -> None:
        await self.send([{"T": "error", "code": code, "msg": message}])

    async def send(self, messages: list[dict[str, Any]]) -> None:
        await _send(self.ws, messages, self.packed)


def _authorization(action: str, status: str) -> dict[str, Any]:
    return {"stream": "authorization", "data": {"action": action, "status": status}}


async def _send(ws: web.WebSocketResponse, doc: Any, packed: bool) -> None:
    if ws.closed:
        raise ConnectionResetError("the stream is closed")
    if packed:
        await ws.send_bytes(msgpack.packb(doc, use_bin_type=True))
    else:
        await ws.send_str(json.dumps(doc, separators=(",", ":")))


def _optional_int(text: str | None) -> int | None:
    return int(text) if text else None
