"""Alpaca's order event streams for the adapter, kept open across disconnects.

    TradeUpdatesStream   Trading API: the `trade_updates` WebSocket of one key (venues.md
                         §1.5): `authenticate`, `listen`, then one message per order event
    BrokerEventStream    Broker API: `GET /v1/events/trades`, Server-Sent Events of every
                         account (§2), resumed from the last `event_id` after a reconnect

Both hand each event's `data` object to `on_event(client, data)` and call `on_reconnect()`
each time a connection is re-established (events may have been missed: the adapter then asks
for the orders still open). Reconnects back off exponentially with jitter. Frames that cannot
be read are counted in `stats["malformed_events"]`, never raised.

The WebSocket comes from the adapter's `Transport`; the event stream, a long-lived streamed
HTTP response that the transport's request/response calls cannot carry, from an
`EventSourceConnector` (by default `connect_event_source`, on aiohttp), which yields the
same `WebSocket` shape: `receive()` returns each event's data, None once closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import Any

import aiohttp
import msgpack

from tickwise.venues.alpaca.auth import BrokerCredentials, TradingCredentials
from tickwise.venues.alpaca.errors import error_from_response
from tickwise.venues.http import Transport, TransportError, WebSocket, decode_json
from tickwise.venues.ratelimit import Backoff

log = logging.getLogger(__name__)

EventHandler = Callable[[int, Mapping[str, Any]], None]
EventSourceConnector = Callable[
    [str, Mapping[str, str], Sequence[tuple[str, str]], float], Awaitable[WebSocket]
]
SSE_IDLE_S = 45.0  # no byte (not even a heartbeat) for this long: the stream is dead
_BACKOFF_BASE_S = 0.2
_BACKOFF_CAP_S = 15.0
_STABLE_S = 10.0  # a connection that lasted this long resets the backoff
_MALFORMED = (KeyError, TypeError, ValueError, AttributeError)  # a message of the wrong shape


class StreamRefusedError(Exception):
    """The venue refused the stream (bad keys); retried after a backoff like a disconnect."""


class _EventSource:
    """A Server-Sent Events response read as messages: `receive()` gives each event's data."""

    def __init__(self, session: aiohttp.ClientSession, response: aiohttp.ClientResponse) -> None:
        self._session = session
        self._response = response

    async def send(self, message: str | bytes) -> None:
        raise TypeError("an event stream is read-only")

    async def receive(self) -> str | bytes | None:
        data: list[str] = []
        while True:
            try:
                raw = await self._response.content.readline()
            except (aiohttp.ClientError, TimeoutError, ValueError):
                return None
            if not raw:
                return None
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not line:
                if data:
                    return "\n".join(data)
                continue
            name, _, value = line.partition(":")
            if name == "data":
                data.append(value[1:] if value.startswith(" ") else value)

    async def close(self) -> None:
        self._response.close()
        await self._session.close()


async def connect_event_source(
    url: str, headers: Mapping[str, str], params: Sequence[tuple[str, str]], timeout_s: float
) -> WebSocket:
    """Open a Server-Sent Events stream (its own connection, read until it ends)."""
    session = aiohttp.ClientSession()
    request_headers = {**headers, "Accept": "text/event-stream", "Cache-Control": "no-cache"}
    try:
        response = await session.get(
            url,
            headers=request_headers,
            params=list(params),
            timeout=aiohttp.ClientTimeout(total=None, connect=timeout_s, sock_read=SSE_IDLE_S),
            allow_redirects=False,
        )
    except TimeoutError as exc:
        await session.close()
        raise TransportError("timeout", f"GET {url}: no answer in {timeout_s:g} s") from exc
    except aiohttp.ClientError as exc:
        await session.close()
        raise TransportError("connection", f"GET {url}: {exc}") from exc
    if response.status != 200:
        body = await response.read()
        response.close()
        await session.close()
        raise error_from_response(response.status, body)
    return _EventSource(session, response)


def decode_frame(frame: str | bytes) -> Any:
    """A stream frame as JSON (text or binary), or msgpack binary; None if neither."""
    try:
        return decode_json(frame)
    except ValueError:
        pass
    if isinstance(frame, bytes):
        try:
            return msgpack.unpackb(frame, raw=False)
        except Exception:  # msgpack raises assorted errors on garbage
            return None
    return None


class _ReconnectingStream:
    """Connect, read until closed, back off, reconnect; forever (cancel to stop)."""

    name = "stream"

    def __init__(
        self,
        on_event: EventHandler,
        on_reconnect: Callable[[], None],
        stats: MutableMapping[str, int],
        timeout_s: float,
        rng: random.Random,
    ) -> None:
        self._on_event = on_event
        self._on_reconnect = on_reconnect
        self._stats = stats
        self._timeout_s = timeout_s
        self._backoff = Backoff(_BACKOFF_BASE_S, _BACKOFF_CAP_S, rng)
        self.connected = asyncio.Event()

    async def _connect(self) -> WebSocket:
        raise NotImplementedError

    def _handle(self, doc: Any) -> None:
        raise NotImplementedError

    def _count(self, name: str) -> None:
        self._stats[name] = self._stats.get(name, 0) + 1

    async def run(self) -> None:
        failures = 0
        connects = 0
        while True:
            try:
                socket = await self._connect()
            except Exception as exc:  # whatever failed, the stream must come back: retry
                self._count("stream_errors")
                log.warning("Alpaca %s: cannot connect (%s); retrying", self.name, exc)
                await asyncio.sleep(self._backoff.delay(failures))
                failures += 1
                continue
            connects += 1
            self._count("stream_connects")
            if connects > 1:
                self._count("stream_reconnects")
                self._on_reconnect()
            self.connected.set()
            opened = time.monotonic()
            try:
                await self._read(socket)
            except Exception as exc:  # a broken connection is a disconnect
                self._count("stream_errors")
                log.warning("Alpaca %s: connection failed (%s); reconnecting", self.name, exc)
            finally:
                self.connected.clear()
                with contextlib.suppress(Exception):
                    await socket.close()
            # A connection that keeps dropping at once backs off like one that cannot open.
            failures = 0 if time.monotonic() - opened >= _STABLE_S else failures + 1
            await asyncio.sleep(self._backoff.delay(failures))

    async def _read(self, socket: WebSocket) -> None:
        while (frame := await socket.receive()) is not None:
            doc = decode_frame(frame)
            if doc is None:
                self._count("malformed_events")
                continue
            try:
                self._handle(doc)
            except _MALFORMED:
                self._count("malformed_events")

    async def _expect(self, socket: WebSocket, stream: str) -> Mapping[str, Any]:
        """The next control message of `stream` (others before it are handled as events)."""
        while True:
            frame = await asyncio.wait_for(socket.receive(), self._timeout_s)
            if frame is None:
                raise StreamRefusedError(f"closed while waiting for {stream!r}")
            doc = decode_frame(frame)
            if isinstance(doc, Mapping) and doc.get("stream") == stream:
                data = doc.get("data")
                return data if isinstance(data, Mapping) else {}
            if doc is None:
                self._count("malformed_events")
                continue
            try:
                self._handle(doc)
            except _MALFORMED:
                self._count("malformed_events")


class TradeUpdatesStream(_ReconnectingStream):
    """The `trade_updates` WebSocket of one Trading API key (one account: `client`)."""

    name = "trade_updates"

    def __init__(
        self,
        transport: Transport,
        url: str,
        credentials: TradingCredentials,
        client: int,
        on_event: EventHandler,
        on_reconnect: Callable[[], None],
        stats: MutableMapping[str, int],
        timeout_s: float,
        rng: random.Random,
    ) -> None:
        super().__init__(on_event, on_reconnect, stats, timeout_s, rng)
        self._transport = transport
        self._url = url
        self._credentials = credentials
        self.client = client

    async def _connect(self) -> WebSocket:
        socket = await self._transport.websocket(self._url, timeout_s=self._timeout_s)
        try:
            auth = {
                "action": "authenticate",
                "data": {
                    "key_id": self._credentials.key_id,
                    "secret_key": self._credentials.secret_key,
                },
            }
            await socket.send(json.dumps(auth))
            answer = await self._expect(socket, "authorization")
            if answer.get("status") != "authorized":
                raise StreamRefusedError(f"key {self._credentials.key_id} is not authorized")
            await socket.send(
                json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}})
            )
            await self._expect(socket, "listening")
        except BaseException:
            with contextlib.suppress(Exception):
                await socket.close()
            raise
        return socket

    def _handle(self, doc: Any) -> None:
        if not isinstance(doc, Mapping):
            raise TypeError("a trade_updates message must be an object")
        if doc.get("stream") != "trade_updates":
            return
        data = doc["data"]
        if not isinstance(data, Mapping):
            raise TypeError("trade_updates data must be an object")
        self._on_event(self.client, data)


class BrokerEventStream(_ReconnectingStream):
    """The Broker API's trade events of every account (SSE), resumed by `event_id`."""

    name = "trade events"

    def __init__(
        self,
        connector: EventSourceConnector,
        url: str,
        credentials: BrokerCredentials,
        client_of_account: Mapping[str, int],
        on_event: EventHandler,
        on_reconnect: Callable[[], None],
        stats: MutableMapping[str, int],
        timeout_s: float,
        rng: random.Random,
    ) -> None:
        super().__init__(on_event, on_reconnect, stats, timeout_s, rng)
        self._connector = connector
        self._url = url
        self._credentials = credentials
        self._client_of_account = client_of_account
        self.last_event_id: int | None = None

    async def _connect(self) -> WebSocket:
        params = [] if self.last_event_id is None else [("since_id", str(self.last_event_id + 1))]
        return await self._connector(
            self._url, self._credentials.headers(), params, self._timeout_s
        )

    def _handle(self, doc: Any) -> None:
        if not isinstance(doc, Mapping):
            raise TypeError("a trade event must be an object")
        event_id = doc.get("event_id")
        if isinstance(event_id, int) and not isinstance(event_id, bool):
            if self.last_event_id is not None and event_id <= self.last_event_id:
                return  # replayed after a reconnect: already seen
            self.last_event_id = event_id
        client = self._client_of_account.get(str(doc.get("account_id")))
        if client is None:
            self._count("events_other_accounts")  # the stream carries every account's events
            return
        self._on_event(client, doc)
