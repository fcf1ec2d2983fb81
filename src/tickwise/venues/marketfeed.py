"""Live market-data connections: a venue WebSocket in, `TickBatch`es on an asyncio queue out.

`MarketStream` owns one connection and its reader task: connect through the `Transport`, do the
venue's handshake (Alpaca: auth then subscribe; Binance: live `SUBSCRIBE` on `/stream`), feed
every frame to the venue's parser (`tickwise.venues.marketdata`) stamped with `time.time_ns()`,
and put each non-empty batch on a bounded queue (a full queue drops the batch and counts it,
so a slow consumer never stalls the socket). A closed or failed connection is reopened after an
exponential backoff with full jitter, and the handshake is redone; the parser is kept, so the
gaps across a reconnect are counted as gaps.

`stats()` gives the connection counters (connects, reconnects, disconnects, errors,
auth_failures, batches, ticks, batches_dropped) and the parser's (frames, gaps, duplicates,
malformed, ...). Secrets are revealed only into the auth frame: never logged, never in a repr,
a counter or an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import ClassVar

import msgpack

from tickwise.model.instruments import InstrumentRegistry
from tickwise.model.ticks import TickBatch
from tickwise.venues.binance.wire import wire_pair
from tickwise.venues.credentials import Secret
from tickwise.venues.http import AiohttpTransport, Transport, TransportError, WebSocket
from tickwise.venues.marketdata import AlpacaEncoding, AlpacaStreamParser, BinanceStreamParser
from tickwise.venues.ratelimit import Backoff

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

DEFAULT_QUEUE_SIZE = 10_000
BINANCE_STREAMS_PER_REQUEST = 200  # params per SUBSCRIBE frame (Binance allows 1024 per socket)


class StreamAuthError(Exception):
    """The venue refused the stream's credentials (the answer's code and text, no secret)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"stream authentication refused: code {code}: {text[:200]}")
        self.code = code


class MarketStream:
    """One market-data WebSocket, kept open; see the module doc. Subclasses give the URL, the
    parser and the handshake."""

    venue_name: ClassVar[str] = "market"

    def __init__(
        self,
        url: str,
        parser: AlpacaStreamParser | BinanceStreamParser,
        *,
        transport_factory: Callable[[], Transport] = AiohttpTransport,
        sleep: Sleep = asyncio.sleep,
        backoff: Backoff | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self.url = url
        self.parser = parser
        self.queue: asyncio.Queue[TickBatch] = asyncio.Queue(queue_size)
        self._transport_factory = transport_factory
        self._sleep = sleep
        self._backoff = backoff or Backoff(0.5, 30.0, random.Random())
        self._connect_timeout_s = connect_timeout_s
        self._transport: Transport | None = None
        self._socket: WebSocket | None = None
        self._reader: asyncio.Task[None] | None = None
        self._counters: dict[str, int] = dict.fromkeys(
            (
                "connects",
                "reconnects",
                "disconnects",
                "errors",
                "auth_failures",
                "batches",
                "ticks",
                "batches_dropped",
            ),
            0,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r}, connects={self._counters['connects']})"

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Build the transport in the running loop and start the reader task."""
        if self._reader is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        self._transport = self._transport_factory()
        self._reader = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Stop reading, close the socket and the transport."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        await self._close_socket()
        if self._transport is not None:
            await self._transport.close()
            self._transport = None

    def stats(self) -> dict[str, int]:
        """Connection counters and the parser's own (gaps, duplicates, malformed, ...)."""
        out = dict(self._counters)
        out.update(self.parser.counters)
        out["malformed"] = self.parser.malformed
        return out

    # -- the reader ------------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                healthy = await self._session()
            except asyncio.CancelledError:
                raise
            except StreamAuthError as refused:
                self._counters["auth_failures"] += 1
                self._counters["errors"] += 1
                log.warning("%s stream %s: %s", self.venue_name, self.url, refused)
                healthy = False
            except (TransportError, ConnectionError, TimeoutError) as failure:
                self._counters["errors"] += 1
                log.warning("%s stream %s failed: %s", self.venue_name, self.url, failure)
                healthy = False
            except Exception:  # the reader must outlive any one bad connection
                self._counters["errors"] += 1
                log.exception("%s stream %s: unexpected error", self.venue_name, self.url)
                healthy = False
            finally:
                await self._close_socket()
            attempt = 0 if healthy else attempt + 1
            await self._sleep(self._backoff.delay(attempt))

    async def _session(self) -> bool:
        """One connection, until the venue closes it. True if the handshake went through
        (the next attempt starts the backoff again from its first step)."""
        assert self._transport is not None
        self._socket = await self._transport.websocket(
            self.url, headers=self._headers(), timeout_s=self._connect_timeout_s
        )
        await self._handshake(self._socket)
        self._counters["connects"] += 1
        if self._counters["connects"] > 1:
            self._counters["reconnects"] += 1
        while (frame := await self._socket.receive()) is not None:
            self._deliver(frame)
        self._counters["disconnects"] += 1
        log.info("%s stream %s closed by the venue", self.venue_name, self.url)
        return True

    def _deliver(self, frame: str | bytes) -> None:
        batch = self.parser.feed(frame, time.time_ns())
        if len(batch) == 0:
            return
        try:
            self.queue.put_nowait(batch)
        except asyncio.QueueFull:
            self._counters["batches_dropped"] += 1
            return
        self._counters["batches"] += 1
        self._counters["ticks"] += len(batch)

    async def _close_socket(self) -> None:
        socket, self._socket = self._socket, None
        if socket is not None:
            with contextlib.suppress(TransportError, ConnectionError, TimeoutError):
                await socket.close()

    # -- venue specifics -------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {}

    async def _handshake(self, socket: WebSocket) -> None:
        raise NotImplementedError


class AlpacaMarketStream(MarketStream):
    """Alpaca stock (`/v2/iex`, `/v2/sip`) or crypto (`/v1beta3/crypto/us`) market data:
    `auth`, wait for `authenticated`, then `subscribe` trades and quotes of `symbols`."""

    venue_name = "alpaca"

    def __init__(
        self,
        registry: InstrumentRegistry,
        url: str,
        key_id: str,
        secret: Secret | str,
        symbols: Sequence[str],
        *,
        encoding: AlpacaEncoding = "json",
        transport_factory: Callable[[], Transport] = AiohttpTransport,
        sleep: Sleep = asyncio.sleep,
        backoff: Backoff | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        connect_timeout_s: float = 10.0,
    ) -> None:
        parser = AlpacaStreamParser(registry, encoding)
        super().__init__(
            url,
            parser,
            transport_factory=transport_factory,
            sleep=sleep,
            backoff=backoff,
            queue_size=queue_size,
            connect_timeout_s=connect_timeout_s,
        )
        self._parser = parser
        self.key_id = key_id
        self._secret = secret if isinstance(secret, Secret) else Secret(secret)
        self.symbols = tuple(symbols)
        self.encoding: AlpacaEncoding = encoding

    def _headers(self) -> dict[str, str]:
        return {"Content-Type": "application/msgpack"} if self.encoding == "msgpack" else {}

    async def _send(self, socket: WebSocket, doc: dict[str, object]) -> None:
        if self.encoding == "msgpack":
            await socket.send(msgpack.packb(doc, use_bin_type=True))
        else:
            await socket.send(json.dumps(doc, separators=(",", ":")))

    async def _handshake(self, socket: WebSocket) -> None:
        parser = self._parser
        parser.authenticated = False
        parser.errors.clear()
        await self._send(
            socket, {"action": "auth", "key": self.key_id, "secret": self._secret.reveal()}
        )
        while not parser.authenticated:
            if parser.errors:
                code, text = parser.errors[-1]
                raise StreamAuthError(code, text)
            frame = await socket.receive()
            if frame is None:
                raise ConnectionError("stream closed before authentication")
            self._deliver(frame)
        symbols = list(self.symbols)
        await self._send(socket, {"action": "subscribe", "trades": symbols, "quotes": symbols})


class BinanceMarketStream(MarketStream):
    """Binance combined streams (`<base>/stream`): live `SUBSCRIBE` to `<symbol>@trade` and
    `<symbol>@bookTicker` of each registry pair quoted in USD (`BTC/USD` -> `btcusdt`)."""

    venue_name = "binance"

    def __init__(
        self,
        registry: InstrumentRegistry,
        url: str,
        symbols: Sequence[str],
        *,
        transport_factory: Callable[[], Transport] = AiohttpTransport,
        sleep: Sleep = asyncio.sleep,
        backoff: Backoff | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        connect_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(
            url,
            BinanceStreamParser(registry),
            transport_factory=transport_factory,
            sleep=sleep,
            backoff=backoff,
            queue_size=queue_size,
            connect_timeout_s=connect_timeout_s,
        )
        self.streams = binance_stream_names(symbols)
        self._request_id = 0

    async def _handshake(self, socket: WebSocket) -> None:
        for start in range(0, len(self.streams), BINANCE_STREAMS_PER_REQUEST):
            self._request_id += 1
            params = list(self.streams[start : start + BINANCE_STREAMS_PER_REQUEST])
            await socket.send(
                json.dumps({"method": "SUBSCRIBE", "params": params, "id": self._request_id})
            )


def binance_stream_names(symbols: Sequence[str]) -> tuple[str, ...]:
    """`<pair>@trade` and `<pair>@bookTicker` for each registry USD pair (others raise)."""
    names: list[str] = []
    for symbol in symbols:
        pair = wire_pair(symbol)
        if pair is None:
            raise ValueError(f"{symbol!r} is not a USD pair Binance streams")
        lower = pair[1].lower()
        names += [f"{lower}@trade", f"{lower}@bookTicker"]
    return tuple(names)
