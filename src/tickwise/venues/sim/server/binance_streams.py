"""The simulated Binance market streams, fed from the market hub.

`/ws/<stream>[/<stream>...]` sends raw payloads, `/stream?streams=a/b` wraps each as
`{"stream", "data"}`; both take the live `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS` and
`SET_PROPERTY`/`GET_PROPERTY ["combined"]` frames. `<symbol>@trade` and `<symbol>@bookTicker`
are built once per tick batch for every connection listening (one pump task per application);
a connection that falls too far behind loses messages (counted). Connections are closed when
`ctx.faults.disconnect_now` says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import numpy as np
from aiohttp import WSMsgType, web

from tickwise.model.ticks import TickBatch, TickKind
from tickwise.venues.binance.wire import SymbolMap, fmt
from tickwise.venues.http import decode_json
from tickwise.venues.sim.server.binance_ws import HEARTBEAT_S, close_on_fault
from tickwise.venues.sim.server.common import SimContext

STREAM_QUEUE_LIMIT = 10_000  # messages a slow stream client may fall behind before losing some

_CONTROL = ""  # queue tag of a control answer (sent as is)


class _StreamClient:
    """One market stream connection: what it listens to and its outgoing queue."""

    def __init__(self, combined: bool) -> None:
        self.combined = combined
        self.streams: set[str] = set()
        self.queue: asyncio.Queue[tuple[str, object]] = asyncio.Queue(STREAM_QUEUE_LIMIT)
        self.dropped = 0

    def push(self, stream: str, data: object) -> None:
        try:
            self.queue.put_nowait((stream, data))
        except asyncio.QueueFull:
            self.dropped += 1


def stream_key(name: str) -> str:
    """A stream name as it is kept: the symbol in lower case, the event as given."""
    symbol, sep, event = name.partition("@")
    return f"{symbol.lower()}{sep}{event}"


class MarketStreams:
    """The market stream endpoints over the market hub (see module doc)."""

    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx
        registry = ctx.exchange.registry
        self.symbols = SymbolMap.of(registry)
        self._lower = [w.lower() if w else None for w in self.symbols.wire]
        n = len(registry)
        self._trade_ids = np.zeros(n, np.int64)
        self._book_ids = np.zeros(n, np.int64)
        self._book = np.full((n, 4), np.nan)  # bid, bid size, ask, ask size
        self._listeners: dict[str, set[_StreamClient]] = {}
        self._pump: asyncio.Task[None] | None = None

    def install(self, app: web.Application) -> None:
        app.router.add_get("/ws", self._raw)
        app.router.add_get("/ws/{streams:.+}", self._raw)
        app.router.add_get("/stream", self._combined)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)

    async def _start(self, app: web.Application) -> None:
        self._pump = asyncio.create_task(self._run())

    async def _stop(self, app: web.Application) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump

    async def _run(self) -> None:
        queue = self.ctx.market.subscribe()
        try:
            while True:
                self.dispatch(await queue.get())
        finally:
            self.ctx.market.unsubscribe(queue)

    # -- connections -----------------------------------------------------------------------

    async def _raw(self, request: web.Request) -> web.StreamResponse:
        names = [s for s in request.match_info.get("streams", "").split("/") if s]
        return await self._serve(request, names, combined=False)

    async def _combined(self, request: web.Request) -> web.StreamResponse:
        names = [s for s in request.query.get("streams", "").split("/") if s]
        return await self._serve(request, names, combined=True)

    async def _serve(
        self, request: web.Request, names: list[str], *, combined: bool
    ) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S)
        await ws.prepare(request)
        client = _StreamClient(combined)
        for name in names:
            self._listen(client, name)
        writer = asyncio.create_task(self._write(ws, client))
        watchdog = asyncio.create_task(close_on_fault(ws, self.ctx.faults))
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    client.push(_CONTROL, self._control(client, msg.data))
                elif msg.type is WSMsgType.ERROR:
                    break
        finally:
            writer.cancel()
            watchdog.cancel()
            for name in list(client.streams):
                self._forget(client, name)
        return ws

    async def _write(self, ws: web.WebSocketResponse, client: _StreamClient) -> None:
        while not ws.closed:
            stream, data = await client.queue.get()
            if stream == _CONTROL or not client.combined:
                payload = data
            else:
                payload = {"stream": stream, "data": data}
            try:
                await ws.send_str(json.dumps(payload))
            except ConnectionError:
                return

    def _listen(self, client: _StreamClient, name: str) -> None:
        key = stream_key(name)
        client.streams.add(key)
        self._listeners.setdefault(key, set()).add(client)

    def _forget(self, client: _StreamClient, name: str) -> None:
        key = stream_key(name)
        client.streams.discard(key)
        listeners = self._listeners.get(key)
        if listeners is not None:
            listeners.discard(client)
            if not listeners:
                del self._listeners[key]

    def _control(self, client: _StreamClient, text: str) -> dict[str, object]:
        """The answer to one control frame."""
        try:
            frame = decode_json(text)
        except ValueError:
            return {"error": {"code": 3, "msg": "Invalid JSON"}, "id": None}
        if not isinstance(frame, dict):
            return {"error": {"code": 2, "msg": "Invalid request"}, "id": None}
        req_id, method, params = frame.get("id"), frame.get("method"), frame.get("params")
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                return {"error": {"code": 2, "msg": "Invalid request: params"}, "id": req_id}
            for name in params:
                (self._listen if method == "SUBSCRIBE" else self._forget)(client, name)
            return {"result": None, "id": req_id}
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": sorted(client.streams), "id": req_id}
        if method in ("SET_PROPERTY", "GET_PROPERTY"):
            if not isinstance(params, list) or not params or params[0] != "combined":
                return {"error": {"code": 0, "msg": "Unknown property"}, "id": req_id}
            if method == "GET_PROPERTY":
                return {"result": client.combined, "id": req_id}
            if len(params) != 2 or not isinstance(params[1], bool):
                return {
                    "error": {"code": 1, "msg": "Invalid value type: expected Boolean"},
                    "id": req_id,
                }
            client.combined = params[1]
            return {"result": None, "id": req_id}
        return {
            "error": {"code": 2, "msg": f"Invalid request: unknown method {method}"},
            "id": req_id,
        }

    # -- market data -----------------------------------------------------------------------

    def dispatch(self, batch: TickBatch) -> None:
        """Turn one tick batch into stream messages for the connections listening."""
        if len(batch) == 0:
            return
        wanted = self._wanted_instruments()
        listened = np.isin(batch.instrument, wanted) if wanted.size else np.zeros(len(batch), bool)
        self._update_book(batch, ~listened)  # nobody listens: keep the book, send nothing
        now_ms = time.time_ns() // 1_000_000
        for i in np.flatnonzero(listened).tolist():
            inst = int(batch.instrument[i])
            lower = self._lower[inst]
            if lower is None:
                continue
            price, size = float(batch.price[i]), float(batch.size[i])
            if int(batch.kind[i]) == TickKind.TRADE:
                self._trade_ids[inst] += 1
                self._send(f"{lower}@trade", self._trade(inst, price, size, batch, i, now_ms))
                continue
            col = 0 if int(batch.kind[i]) == TickKind.BID else 2
            self._book[inst, col : col + 2] = (price, size)
            self._book_ids[inst] += 1
            bid, bid_size, ask, ask_size = self._book[inst].tolist()
            if np.isfinite([bid, ask]).all():
                self._send(
                    f"{lower}@bookTicker",
                    {
                        "u": int(self._book_ids[inst]),
                        "s": self.symbols.wire[inst],
                        "b": fmt(bid),
                        "B": fmt(bid_size),
                        "a": fmt(ask),
                        "A": fmt(ask_size),
                    },
                )

    def _trade(
        self, inst: int, price: float, size: float, batch: TickBatch, i: int, now_ms: int
    ) -> dict[str, object]:
        bid, ask = self._book[inst, 0], self._book[inst, 2]
        mid = (bid + ask) / 2 if np.isfinite(bid) and np.isfinite(ask) else np.nan
        return {
            "e": "trade",
            "E": now_ms,
            "s": self.symbols.wire[inst],
            "t": int(self._trade_ids[inst]),
            "p": fmt(price),
            "q": fmt(size),
            "T": int(batch.ts_event[i]) // 1_000_000,
            "m": bool(np.isfinite(mid) and price < mid),  # below mid: a seller took the bid
            "M": True,
        }

    def _send(self, stream: str, data: dict[str, object]) -> None:
        for client in self._listeners.get(stream, ()):
            client.push(stream, data)

    def _wanted_instruments(self) -> np.ndarray:
        out = [
            self.symbols.by_wire[key.partition("@")[0].upper()]
            for key in self._listeners
            if key.partition("@")[0].upper() in self.symbols.by_wire
        ]
        return np.unique(np.array(out, np.int64))

    def _update_book(self, batch: TickBatch, mask: np.ndarray) -> None:
        for kind, col in ((TickKind.BID, 0), (TickKind.ASK, 2)):
            rows = mask & (batch.kind == kind)
            if rows.any():
                inst = batch.instrument[rows].astype(np.intp)
                self._book[inst, col] = batch.price[rows]
                self._book[inst, col + 1] = batch.size[rows]
                np.add.at(self._book_ids, inst, 1)
