"""The live market-data streams: against the simulator servers in process, and scripted sockets
for reconnects, bad frames and refused keys."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable

import numpy as np
import pytest
from venue_orders import BTC, ETH

from tickwise.model.instruments import InstrumentRegistry, Venue
from tickwise.model.ticks import TickBatch, TickKind
from tickwise.venues.http import RecordedTransport, RecordedWebSocket
from tickwise.venues.marketfeed import AlpacaMarketStream, BinanceMarketStream, MarketStream
from tickwise.venues.ratelimit import Backoff
from tickwise.venues.sim.server import alpaca as alpaca_server
from tickwise.venues.sim.server import binance as binance_server
from tickwise.venues.sim.server.common import SimServer, make_context

STAMP = 1_767_625_200_123_456_789
WAIT_S = 5.0  # upper bound on any wait below; a passing run takes milliseconds
SECRET = "s3cr3t-never-shown"
CONNECTED = json.dumps([{"T": "success", "msg": "connected"}])
AUTHENTICATED = json.dumps([{"T": "success", "msg": "authenticated"}])
AUTH_FAILED = json.dumps([{"T": "error", "code": 402, "msg": "auth failed"}])
SUBSCRIBED = json.dumps([{"T": "subscription", "trades": ["BTC/USD"], "quotes": ["BTC/USD"]}])


def alpaca_trade(price: float, trade_id: int) -> str:
    return json.dumps(
        [
            {
                "T": "t",
                "S": "BTC/USD",
                "i": trade_id,
                "p": price,
                "s": 0.1,
                "t": "2026-01-05T15:00:00.123456789Z",
            }
        ]
    )


def binance_trade(price: str, trade_id: int) -> str:
    data = {"e": "trade", "s": "BTCUSDT", "t": trade_id, "p": price, "q": "0.5", "T": 1_700_000}
    return json.dumps({"stream": "btcusdt@trade", "data": data})


class Sleeps:
    """The stream's sleep: records each delay and parks the reader on the `park_at`-th one."""

    def __init__(self, park_at: int) -> None:
        self.delays: list[float] = []
        self.park_at = park_at
        self.parked = asyncio.Event()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if len(self.delays) >= self.park_at:
            self.parked.set()
            await asyncio.Event().wait()  # until the stream is closed


def run_until_parked(
    build: Callable[[RecordedTransport, Sleeps], MarketStream],
    sockets: list[RecordedWebSocket],
    park_at: int,
) -> tuple[MarketStream, Sleeps]:
    transport = RecordedTransport(sockets=deque(sockets))

    async def main() -> tuple[MarketStream, Sleeps]:
        sleeps = Sleeps(park_at)
        stream = build(transport, sleeps)
        await stream.start()
        await asyncio.wait_for(sleeps.parked.wait(), WAIT_S)
        await stream.close()
        return stream, sleeps

    return asyncio.run(main())


def alpaca_stream(
    registry: InstrumentRegistry, transport: RecordedTransport, sleeps: Sleeps, **options: object
) -> AlpacaMarketStream:
    return AlpacaMarketStream(
        registry,
        "ws://alpaca.test/v1beta3/crypto/us",
        "PKTEST",
        SECRET,
        ["BTC/USD"],
        transport_factory=lambda: transport,
        sleep=sleeps,
        **options,  # type: ignore[arg-type]
    )


def drained(stream: MarketStream) -> TickBatch:
    batches = []
    while not stream.queue.empty():
        batches.append(stream.queue.get_nowait())
    return TickBatch.concat(batches) if batches else TickBatch.empty()


async def collect(stream: MarketStream, n_ticks: int) -> TickBatch:
    batches: list[TickBatch] = []
    while sum(len(b) for b in batches) < n_ticks:
        batches.append(await asyncio.wait_for(stream.queue.get(), WAIT_S))
    return TickBatch.concat(batches)


async def until(condition: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), WAIT_S)


def serve(
    venue: Venue,
    registry: InstrumentRegistry,
    build_app: Callable[..., object],
    scenario: Callable[[SimServer], Awaitable[TickBatch]],
) -> TickBatch:
    ctx = make_context(venue, registry, [1, 2], [100_000.0] * 2, ack_delay_ms=1.0)

    async def main() -> TickBatch:
        async with SimServer(ctx, build_app) as server:  # type: ignore[arg-type]
            return await scenario(server)

    return asyncio.run(main())


def published(server: SimServer) -> None:
    server.context.market.publish(
        TickBatch.from_arrays(
            [BTC, ETH, BTC, BTC],
            np.full(4, STAMP),
            [59_990.0, 2_999.0, 60_010.0, 60_000.5],
            [1.0, 1.5, 2.0, 0.25],
            [TickKind.BID, TickKind.TRADE, TickKind.ASK, TickKind.TRADE],
        )
    )


# -- against the simulator servers -----------------------------------------------------------


def test_alpaca_stream_authenticates_subscribes_and_delivers_the_published_ticks(
    registry: InstrumentRegistry,
) -> None:
    async def scenario(server: SimServer) -> TickBatch:
        cred = server.context.accounts.credential(1)
        stream = AlpacaMarketStream(
            registry,
            server.ws_url + "/v1beta3/crypto/us",
            cred.key_id,
            cred.secret,
            ["BTC/USD"],
        )
        await stream.start()
        try:
            await until(lambda: "trades" in stream.parser.subscriptions)  # type: ignore[union-attr]
            published(server)
            got = await collect(stream, 4)
        finally:
            await stream.close()
        assert stream.stats()["connects"] == 1 and stream.stats()["malformed"] == 0
        return got

    got = serve(Venue.ALPACA, registry, alpaca_server.build_app, scenario)

    rows = sorted(zip(got.instrument.tolist(), got.kind.tolist(), got.price.tolist(), strict=True))
    assert rows == sorted(  # ETH is not subscribed; a first quote carries both sides
        [
            (BTC, TickKind.BID, 59_990.0),
            (BTC, TickKind.ASK, 59_990.0),  # the server's book had no ask yet
            (BTC, TickKind.ASK, 60_010.0),
            (BTC, TickKind.TRADE, 60_000.5),
        ]
    )
    assert set(got.ts_event.tolist()) == {STAMP}


def test_binance_stream_subscribes_trade_and_book_ticker_and_delivers_the_published_ticks(
    registry: InstrumentRegistry,
) -> None:
    async def scenario(server: SimServer) -> TickBatch:
        stream = BinanceMarketStream(registry, server.ws_url + "/stream", ["BTC/USD"])
        await stream.start()
        try:
            await until(lambda: len(stream.parser.results) == 1)  # type: ignore[union-attr]
            published(server)
            got = await collect(stream, 3)  # one bookTicker (bid and ask) and one trade
        finally:
            await stream.close()
        return got

    got = serve(Venue.BINANCE, registry, binance_server.build_app, scenario)

    assert set(got.instrument.tolist()) == {BTC}
    by_kind = dict(zip(got.kind.tolist(), got.price.tolist(), strict=True))
    assert by_kind == {TickKind.BID: 59_990.0, TickKind.ASK: 60_010.0, TickKind.TRADE: 60_000.5}


# -- scripted sockets ------------------------------------------------------------------------


def test_a_socket_closed_mid_stream_is_reopened_reauthenticated_and_resubscribed(
    registry: InstrumentRegistry,
) -> None:
    first = RecordedWebSocket(
        deque([CONNECTED, AUTHENTICATED, SUBSCRIBED, alpaca_trade(60_000.0, 1)])
    )
    second = RecordedWebSocket(
        deque([CONNECTED, AUTHENTICATED, SUBSCRIBED, alpaca_trade(60_001.0, 2)])
    )

    stream, _ = run_until_parked(
        lambda t, s: alpaca_stream(registry, t, s), [first, second], park_at=2
    )

    auth = {"action": "auth", "key": "PKTEST", "secret": SECRET}
    subscribe = {"action": "subscribe", "trades": ["BTC/USD"], "quotes": ["BTC/USD"]}
    assert [json.loads(m) for m in second.sent] == [auth, subscribe]
    assert first.closed and second.closed
    stats = stream.stats()
    assert (stats["connects"], stats["reconnects"], stats["errors"]) == (2, 1, 0)
    assert drained(stream).price.tolist() == [60_000.0, 60_001.0]


def test_a_malformed_frame_is_counted_and_the_stream_goes_on(
    registry: InstrumentRegistry,
) -> None:
    socket = RecordedWebSocket(
        deque(
            [
                json.dumps({"result": None, "id": 1}),
                "{not json",
                binance_trade("60000.5", 7),
                binance_trade("60001.5", 9),  # trade 8 never came
            ]
        )
    )

    stream, _ = run_until_parked(
        lambda t, s: BinanceMarketStream(
            registry, "ws://binance.test/stream", ["BTC/USD"], transport_factory=lambda: t, sleep=s
        ),
        [socket],
        park_at=1,
    )

    assert json.loads(socket.sent[0]) == {
        "method": "SUBSCRIBE",
        "params": ["btcusdt@trade", "btcusdt@bookTicker"],
        "id": 1,
    }
    stats = stream.stats()
    assert (stats["malformed"], stats["gaps"], stats["errors"]) == (1, 1, 0)
    assert drained(stream).price.tolist() == [60_000.5, 60_001.5]


def test_a_full_queue_drops_the_batch_and_counts_it(registry: InstrumentRegistry) -> None:
    socket = RecordedWebSocket(
        deque([CONNECTED, AUTHENTICATED, alpaca_trade(60_000.0, 1), alpaca_trade(60_001.0, 2)])
    )

    stream, _ = run_until_parked(
        lambda t, s: alpaca_stream(registry, t, s, queue_size=1), [socket], park_at=1
    )

    assert (stream.stats()["batches"], stream.stats()["batches_dropped"]) == (1, 1)
    assert drained(stream).price.tolist() == [60_000.0]  # the oldest batch is kept


def test_a_refused_key_is_counted_and_retried_with_growing_backoff_never_showing_the_secret(
    registry: InstrumentRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    sockets = [RecordedWebSocket(deque([CONNECTED, AUTH_FAILED])) for _ in range(3)]
    caplog.set_level(logging.DEBUG, logger="tickwise.venues.marketfeed")

    stream, sleeps = run_until_parked(
        lambda t, s: alpaca_stream(registry, t, s, backoff=Backoff(0.5, 30.0, random.Random(5))),
        sockets,
        park_at=3,
    )

    reference = Backoff(0.5, 30.0, random.Random(5))
    assert sleeps.delays == [reference.delay(k) for k in (1, 2, 3)]
    stats = stream.stats()
    assert (stats["auth_failures"], stats["errors"], stats["connects"]) == (3, 3, 0)
    assert all(SECRET in s.sent[0] for s in sockets)  # sent to the venue, and only there
    assert all(len(s.sent) == 1 for s in sockets)  # no subscribe on a refused connection
    assert "402" in caplog.text
    for text in (caplog.text, str(stats), repr(stream), repr(stream.__dict__)):
        assert SECRET not in text
