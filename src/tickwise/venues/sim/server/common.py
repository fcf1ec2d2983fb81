"""What the three protocol servers share: the market they follow, their accounts and keys, and
how they are started and stopped.

- `MarketHub`: last prices for the exchange (`SimExchange.mark`) and a fan-out of tick batches
  to market-data stream subscribers. Fed by `run_generator` (the calibrated generator, standalone
  `tickwise venue-sim`) or by `publish` (the engine's own feed, `tickwise run --venues http`).
- `SimAccounts`: the simulated clients of one venue and their keys, derived the same way the
  engine derives them (`credentials.demo_credential`), so a server checks real signatures
  without any key file: key id -> client, client -> secret, and each venue's account ids.
- `SimServer`: one aiohttp application on 127.0.0.1, started and stopped inside a running loop,
  with the exchange's clock and the market task running beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from aiohttp import web

from tickwise.data.generator import GeneratorConfig, MarketGenerator
from tickwise.model.instruments import InstrumentRegistry, Venue
from tickwise.model.ticks import TickBatch
from tickwise.venues.credentials import Credential, demo_credential
from tickwise.venues.sim.exchange import SimExchange
from tickwise.venues.sim.faults import FaultInjector

MARKET_QUEUE_LIMIT = 1_000  # batches a slow market-data subscriber may fall behind
BROKER_KEY_ID = "SIM-alpaca-broker-key"  # the firm's Broker API key at the simulator
_BROKER_NAMESPACE = uuid.UUID("5f0c6a52-8d1e-4c39-9d7e-2b8f61a0c0de")


class MarketHub:
    """Last prices into the exchange, tick batches out to market-data subscribers."""

    def __init__(self, exchange: SimExchange) -> None:
        self.exchange = exchange
        self._subscribers: set[asyncio.Queue[TickBatch]] = set()
        self.batches_dropped = 0
        self.ticks_published = 0

    def publish(self, ticks: TickBatch) -> None:
        if len(ticks) == 0:
            return
        self.ticks_published += len(ticks)
        self.exchange.mark(ticks.instrument, ticks.price)
        for queue in self._subscribers:
            try:
                queue.put_nowait(ticks)
            except asyncio.QueueFull:
                self.batches_dropped += 1

    def subscribe(self) -> asyncio.Queue[TickBatch]:
        queue: asyncio.Queue[TickBatch] = asyncio.Queue(MARKET_QUEUE_LIMIT)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[TickBatch]) -> None:
        self._subscribers.discard(queue)

    async def run_generator(
        self, tick_rate: float, seed: int = 7, interval_s: float = 0.05
    ) -> None:
        """Generate the market on the wall clock and publish it, forever (cancel to stop)."""
        gen = MarketGenerator(
            self.exchange.registry, GeneratorConfig(tick_rate=tick_rate), seed=seed
        )
        # Start every instrument at its reference price so orders can fill at once.
        self.exchange.mark(np.arange(len(self.exchange.registry)), gen.mid_prices())
        gen.next_batch(time.time_ns())
        while True:
            await asyncio.sleep(interval_s)
            self.publish(gen.next_batch(time.time_ns()))


@dataclass(frozen=True)
class SimAccounts:
    """The simulated account holders of one venue and their (derived, never real) keys."""

    venue: Venue
    clients: npt.NDArray[np.int32]

    def credential(self, client: int) -> Credential:
        return demo_credential(client, self.venue)

    def client_of_key(self, key_id: str) -> int | None:
        """The client whose key id this is, or None (unknown key: the venue's 401)."""
        client = _number_after(f"SIM-{self.venue.label}-key-", key_id)
        return client if client is not None and self.has(client) else None

    def client_of_account(self, account_id: str) -> int | None:
        """The client of a venue account id (E*Trade accountIdKey, Alpaca Broker account id)."""
        if self.venue is Venue.ALPACA:
            try:
                parsed = uuid.UUID(account_id)
            except ValueError:
                return None
            client = _client_of_broker_uuid(parsed)
        else:
            client = _number_after(f"SIM-{self.venue.label}-acct-", account_id)
        return client if client is not None and self.has(client) else None

    def account_id(self, client: int) -> str:
        """The venue's account id of a client (Alpaca: the Broker API account UUID)."""
        if self.venue is Venue.ALPACA:
            return str(broker_account_uuid(client))
        return f"SIM-{self.venue.label}-acct-{client:08d}"

    def has(self, client: int) -> bool:
        row = int(np.searchsorted(self.clients, client))
        return row < self.clients.size and int(self.clients[row]) == client


def _number_after(prefix: str, text: str) -> int | None:
    """The client number after `prefix` (ASCII digits that fit an int64), or None. `isdigit`
    alone also takes digits `int()` refuses ("²", or thousands of them), which would fail the
    request instead of refusing the key."""
    digits = text.removeprefix(prefix)
    if digits == text or not (digits.isascii() and digits.isdigit() and len(digits) <= 18):
        return None
    return int(digits)


def wire_bytes(text: str) -> bytes:
    """The bytes a request's text stood for. aiohttp decodes a header or path that is not UTF-8
    with surrogate escapes, which give back the bytes sent; a lone surrogate from JSON has no
    such bytes and is kept as is (it then matches nothing) instead of failing to encode."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def same_secret(given: str, expected: str) -> bool:
    """Whether a request presents `expected` (a key, token or signature), in constant time."""
    return hmac.compare_digest(wire_bytes(given), expected.encode())


_BROKER_UUID_PREFIX = uuid.uuid5(_BROKER_NAMESPACE, "tickwise-sim").hex[:20]


def broker_account_uuid(client: int) -> uuid.UUID:
    """The Alpaca Broker API account id of a simulated client: a UUID whose last 12 hex digits
    are the client id, so the server maps it back without a table."""
    return uuid.UUID(_BROKER_UUID_PREFIX + f"{client:012x}")


def _client_of_broker_uuid(value: uuid.UUID) -> int | None:
    if value.hex[:20] != _BROKER_UUID_PREFIX:
        return None
    return int(value.hex[20:], 16)


def broker_secret() -> str:
    """The Broker API secret of the simulator's firm key (derived, never a real secret)."""
    return demo_credential(0, Venue.ALPACA).secret.reveal("secret")


AppFactory = Callable[["SimContext"], web.Application]


@dataclass
class SimContext:
    """Everything a protocol server's handlers need."""

    exchange: SimExchange
    market: MarketHub
    accounts: SimAccounts
    faults: FaultInjector
    delay_ms: float = 0.0  # one-way network delay added before every answer
    rate_limits: bool = True  # apply the venue's request limits (429 etc.)

    async def network_delay(self) -> None:
        if self.delay_ms > 0:
            await asyncio.sleep(self.delay_ms / 1000.0)


class SimServer:
    """One protocol server on a port, with the exchange clock and (optionally) its market."""

    def __init__(
        self,
        context: SimContext,
        app_factory: AppFactory,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tick_rate: float | None = None,
        seed: int = 7,
    ) -> None:
        self.context = context
        self._app = app_factory(context)
        self._host = host
        self._port = port
        self._tick_rate = tick_rate
        self._seed = seed
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self._host}:{self.port}"

    async def start(self) -> SimServer:
        self._runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, reuse_address=True)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._spawn(self.context.exchange.run())
        if self._tick_rate:
            self._spawn(self.context.market.run_generator(self._tick_rate, self._seed))
        return self

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(coro))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SimServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def make_context(
    venue: Venue,
    registry: InstrumentRegistry,
    clients: npt.ArrayLike,
    initial_cash: npt.ArrayLike,
    *,
    ack_delay_ms: float | None = None,
    network_delay_ms: float = 0.0,
    faults: FaultInjector | None = None,
    rate_limits: bool = True,
    seed: int = 0,
) -> SimContext:
    """A venue's exchange, market, accounts and faults, ready for its protocol server."""
    from tickwise.venues.sim.config import SimVenueConfig

    ids = np.asarray(clients, dtype=np.int32).ravel()
    exchange = SimExchange(
        venue, registry, ids, initial_cash, SimVenueConfig(ack_delay_ms=ack_delay_ms), seed
    )
    return SimContext(
        exchange=exchange,
        market=MarketHub(exchange),
        accounts=SimAccounts(venue, np.sort(ids)),
        faults=faults or FaultInjector(seed=seed),
        delay_ms=network_delay_ms,
        rate_limits=rate_limits,
    )


class ServerThread:
    """A `SimServer` on its own event loop in a daemon thread, for callers that are not async
    (the official SDKs are synchronous) or that run their own loop (Ray actors).

    `call(fn)` runs `fn()` on the server's loop and returns its result (use it to touch the
    exchange or the market from outside); `stop()` shuts the server down and joins the thread.
    """

    def __init__(self, server: SimServer) -> None:
        import threading

        self.server = server
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="venue-sim", daemon=True)

    def start(self, timeout_s: float = 10.0) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError("the simulator server did not start")
        if self._error is not None:
            raise RuntimeError(f"the simulator server failed to start: {self._error}")
        return self

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.server.start())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self.server.stop())
        self._loop.close()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def ws_url(self) -> str:
        return self.server.ws_url

    def call(self, fn: Callable[[], Any], timeout_s: float = 10.0) -> Any:
        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout_s)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10.0)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
