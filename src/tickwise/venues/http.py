"""The transport seam of the venue adapters: HTTP requests and WebSockets, real or recorded.

Adapters never touch a network library directly: they call a `Transport`. `AiohttpTransport` is
the real one (one keep-alive connection pool per adapter, many requests in flight at once);
`RecordedTransport` answers from a script of recorded responses, so every error path of a venue
(auth, clock skew, rate limit, duplicate id, unknown outcome) is tested without a server.

Errors: `TransportError` for anything that left the outcome of a request unknown — a timeout,
a refused or dropped connection — with `kind` "timeout" or "connection". An HTTP error status is
not an exception here: it is a response, which the venue's own error module interprets.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode

import aiohttp


class TransportError(Exception):
    """No answer: the request may or may not have reached the venue."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind  # "timeout" | "connection"


def decode_json(data: str | bytes) -> Any:
    """JSON text (or UTF-8 bytes) as Python values. Anything that is not JSON raises
    `ValueError`, including nesting too deep to decode, which `json` raises as RecursionError:
    a hostile or broken answer must read as malformed, never crash its reader."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply to decode") from None


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON (None when empty); `ValueError` when it is not JSON."""
        return decode_json(self.body) if self.body else None


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """What an adapter asked for (kept by `RecordedTransport` for assertions)."""

    method: str
    url: str
    headers: Mapping[str, str]
    params: Sequence[tuple[str, str]]
    body: bytes

    @property
    def full_url(self) -> str:
        return f"{self.url}?{urlencode(list(self.params))}" if self.params else self.url


class WebSocket(Protocol):
    """A connected WebSocket: text or binary messages, None once closed."""

    async def send(self, message: str | bytes) -> None: ...

    async def receive(self) -> str | bytes | None: ...

    async def close(self) -> None: ...


class Transport(Protocol):
    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Sequence[tuple[str, str]] = (),
        body: bytes | str = b"",
        timeout_s: float = 10.0,
    ) -> HttpResponse: ...

    async def websocket(
        self, url: str, *, headers: Mapping[str, str] | None = None, timeout_s: float = 10.0
    ) -> WebSocket: ...

    async def close(self) -> None: ...


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body


class _AiohttpWebSocket:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws

    async def send(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            await self._ws.send_bytes(message)
        else:
            await self._ws.send_str(message)

    async def receive(self) -> str | bytes | None:
        msg = await self._ws.receive()
        if msg.type is aiohttp.WSMsgType.TEXT:
            return str(msg.data)
        if msg.type is aiohttp.WSMsgType.BINARY:
            return bytes(msg.data)
        return None  # CLOSE, CLOSING, CLOSED, ERROR

    async def close(self) -> None:
        await self._ws.close()


class AiohttpTransport:
    """HTTP/1.1 keep-alive pool (`limit` connections) and WebSockets on aiohttp.

    Create it inside the event loop that will use it (aiohttp binds a session to its loop)."""

    def __init__(self, limit: int = 256, verify_ssl: bool = True) -> None:
        connector = aiohttp.TCPConnector(limit=limit, ssl=verify_ssl)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True)

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Sequence[tuple[str, str]] = (),
        body: bytes | str = b"",
        timeout_s: float = 10.0,
    ) -> HttpResponse:
        target = f"{url}?{urlencode(list(params))}" if params else url
        try:
            async with self._session.request(
                method,
                target,
                headers=dict(headers or {}),
                data=_as_bytes(body) or None,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                allow_redirects=False,
            ) as resp:
                payload = await resp.read()
                return HttpResponse(resp.status, dict(resp.headers), payload)
        except TimeoutError as exc:
            raise TransportError(
                "timeout", f"{method} {url}: no answer in {timeout_s:g} s"
            ) from exc
        except aiohttp.ClientError as exc:
            raise TransportError("connection", f"{method} {url}: {exc}") from exc

    async def websocket(
        self, url: str, *, headers: Mapping[str, str] | None = None, timeout_s: float = 10.0
    ) -> WebSocket:
        try:
            ws = await self._session.ws_connect(
                url,
                headers=dict(headers or {}),
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=timeout_s),
                heartbeat=20.0,
                max_msg_size=0,
            )
        except TimeoutError as exc:
            raise TransportError("timeout", f"WebSocket {url}: no answer") from exc
        except aiohttp.ClientError as exc:
            raise TransportError("connection", f"WebSocket {url}: {exc}") from exc
        return _AiohttpWebSocket(ws)

    async def close(self) -> None:
        await self._session.close()


Responder = Callable[[HttpRequest], Awaitable[HttpResponse] | HttpResponse]


@dataclass
class RecordedTransport:
    """Answers requests from a script, in order; records every request it saw.

    Each scripted item is an `HttpResponse`, a `TransportError` to raise, or a function of the
    request returning a response (for answers that depend on what was sent). A request beyond
    the script is an `AssertionError`: a test must say what the venue answers."""

    script: deque[HttpResponse | TransportError | Responder] = field(default_factory=deque)
    requests: list[HttpRequest] = field(default_factory=list)
    sockets: deque[RecordedWebSocket] = field(default_factory=deque)

    def answer(self, *items: HttpResponse | TransportError | Responder) -> RecordedTransport:
        self.script.extend(items)
        return self

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Sequence[tuple[str, str]] = (),
        body: bytes | str = b"",
        timeout_s: float = 10.0,
    ) -> HttpResponse:
        req = HttpRequest(method, url, dict(headers or {}), list(params), _as_bytes(body))
        self.requests.append(req)
        if not self.script:
            raise AssertionError(f"unexpected request {method} {req.full_url}")
        item = self.script.popleft()
        if isinstance(item, TransportError):
            raise item
        if isinstance(item, HttpResponse):
            return item
        result = item(req)
        return await result if asyncio.iscoroutine(result) else result  # type: ignore[return-value]

    async def websocket(
        self, url: str, *, headers: Mapping[str, str] | None = None, timeout_s: float = 10.0
    ) -> WebSocket:
        if not self.sockets:
            raise TransportError("connection", f"WebSocket {url}: no recorded socket")
        return self.sockets.popleft()

    async def close(self) -> None:
        return None


def json_response(
    status: int, payload: Any, headers: Mapping[str, str] | None = None
) -> HttpResponse:
    """A recorded JSON answer."""
    return HttpResponse(
        status,
        {"Content-Type": "application/json", **(headers or {})},
        json.dumps(payload).encode(),
    )


@dataclass
class RecordedWebSocket:
    """A scripted WebSocket: yields `incoming` messages, then reports closed; keeps what was
    sent."""

    incoming: deque[str | bytes] = field(default_factory=deque)
    sent: list[str | bytes] = field(default_factory=list)
    closed: bool = False

    async def send(self, message: str | bytes) -> None:
        self.sent.append(message)

    async def receive(self) -> str | bytes | None:
        if self.closed or not self.incoming:
            self.closed = True
            return None
        return self.incoming.popleft()

    async def close(self) -> None:
        self.closed = True
