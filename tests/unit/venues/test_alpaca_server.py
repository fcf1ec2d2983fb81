"""The Alpaca adapter against the Alpaca simulator server, in process, over real HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import msgpack
import numpy as np
import pytest
from venue_orders import AAPL, BTC, ETH, OrderFactory

from tickwise.model.ids import ClientOrderId, client_order_id
from tickwise.model.instruments import InstrumentRegistry, Venue
from tickwise.model.orders import ExecutionBatch, OrderState, RejectReason, Side
from tickwise.model.ticks import TickBatch, TickKind
from tickwise.venues.alpaca.auth import BrokerCredentials, TradingCredentials
from tickwise.venues.alpaca.client import AlpacaVenue
from tickwise.venues.capabilities import OrderType, TimeInForce
from tickwise.venues.http import AiohttpTransport
from tickwise.venues.marketdata import AlpacaStreamParser
from tickwise.venues.sim.faults import Fault, FaultInjector, FaultPlan
from tickwise.venues.sim.server.alpaca import build_app
from tickwise.venues.sim.server.common import (
    BROKER_KEY_ID,
    SimContext,
    SimServer,
    broker_secret,
    make_context,
)

CLIENTS = [1, 2, 3, 4, 5, 6]
PRICES = [190.0, 400.0, 50_000.0, 3_000.0]


def context(
    registry: InstrumentRegistry,
    faults: dict[Fault, float] | None = None,
    cash: float = 100_000.0,
    rate_limits: bool = True,
) -> SimContext:
    injector = FaultInjector(FaultPlan(faults or {}, stall_s=1.0), seed=11)
    ctx = make_context(
        Venue.ALPACA,
        registry,
        CLIENTS,
        [cash] * len(CLIENTS),
        ack_delay_ms=2.0,
        faults=injector,
        rate_limits=rate_limits,
    )
    ctx.exchange.mark(np.arange(len(PRICES)), PRICES)
    return ctx


def adapter(
    mode: str, registry: InstrumentRegistry, ctx: SimContext, server: SimServer
) -> AlpacaVenue:
    options: dict[str, Any] = {"request_timeout_s": 0.5, "outcome_timeout_s": 0.5}
    if mode == "broker":
        firm = BrokerCredentials(BROKER_KEY_ID, broker_secret())
        accounts = {c: ctx.accounts.account_id(c) for c in CLIENTS}
        return AlpacaVenue.broker(registry, firm, accounts, base_url=server.url, **options)
    keys = {}
    for c in CLIENTS:
        cred = ctx.accounts.credential(c)
        keys[c] = TradingCredentials(cred.key_id, cred.secret.reveal("secret"))
    return AlpacaVenue.trading(registry, keys, base_url=server.url, **options)


def run(
    ctx: SimContext,
    mode: str,
    registry: InstrumentRegistry,
    scenario: Callable[[AlpacaVenue, SimServer], Awaitable[None]],
) -> None:
    async def main() -> None:
        async with SimServer(ctx, build_app) as server:
            venue = adapter(mode, registry, ctx, server)
            await venue.start()
            try:
                await scenario(venue, server)
            finally:
                await venue.close()

    asyncio.run(main())


async def outcomes(venue: AlpacaVenue, n: int, timeout_s: float = 10.0) -> ExecutionBatch:
    got: list[ExecutionBatch] = []
    deadline = time.monotonic() + timeout_s
    while sum(len(b) for b in got) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
        got.append(venue.poll(time.time_ns()))
    return ExecutionBatch.concat(got)


def buys(make_orders: OrderFactory, per_client: int, signal0: int = 1) -> Any:
    """`per_client` market buys per client over AAPL, BTC and ETH."""
    rows = [(c, k) for c in CLIENTS for k in range(per_client)]
    inst = [(AAPL, BTC, ETH)[k % 3] for _, k in rows]
    qty = [{AAPL: 3.0, BTC: 0.01, ETH: 0.1}[i] for i in inst]
    return make_orders(
        [c for c, _ in rows],
        inst,
        [1] * len(rows),
        qty,
        [PRICES[i] for i in inst],
        signal=[signal0 + k for _, k in rows],
    )


async def assert_books_match(venue: AlpacaVenue, ctx: SimContext) -> None:
    book, cash = await venue.positions(), await venue.balances()
    for client in CLIENTS:
        held = ctx.exchange.positions(client)
        assert book.of_client(client) == pytest.approx(held)
        assert cash.of(client) == pytest.approx(ctx.exchange.cash(client))


@pytest.mark.parametrize("mode", ["broker", "trading"])
def test_market_orders_fill_and_positions_and_cash_match_the_exchange(
    registry: InstrumentRegistry, make_orders: OrderFactory, mode: str
) -> None:
    ctx = context(registry)
    batch = buys(make_orders, per_client=3)
    out: list[ExecutionBatch] = []

    async def scenario(venue: AlpacaVenue, server: SimServer) -> None:
        await venue.submit(batch)
        out.append(await outcomes(venue, len(batch)))
        assert venue.pending() == 0
        await assert_books_match(venue, ctx)

    run(ctx, mode, registry, scenario)
    done = out[0]
    assert sorted(done.client_order_id.tolist()) == sorted(batch.client_order_id.tolist())
    assert set(done.state.tolist()) == {OrderState.FILLED}
    for row in range(len(done)):
        coid = done.client_order_id[row].decode()
        order = ctx.exchange.find(int(done.client[row]), client_order_id=coid)
        assert order is not None
        assert done.fill_price[row] == pytest.approx(order.avg_fill_price)
        assert done.fill_qty[row] == pytest.approx(order.filled_qty)


def test_orders_the_exchange_refuses_are_rejected_with_alpacas_reasons(
    registry: InstrumentRegistry, make_orders: OrderFactory
) -> None:
    ctx = context(registry, cash=1_000.0)
    batch = make_orders([1, 2], [AAPL, BTC], [1, -1], [100.0, 0.5], [190.0, 5e4])
    out: list[ExecutionBatch] = []

    async def scenario(venue: AlpacaVenue, server: SimServer) -> None:
        await venue.submit(batch)
        out.append(await outcomes(venue, 2))

    run(ctx, "broker", registry, scenario)
    reasons = dict(zip(out[0].client.tolist(), out[0].reason.tolist(), strict=True))
    assert reasons == {
        1: RejectReason.INSUFFICIENT_BUYING_POWER,  # 403 40310000 on receipt
        2: RejectReason.INSUFFICIENT_POSITION,  # 403 "insufficient qty available for order"
    }
    assert set(out[0].state.tolist()) == {OrderState.REJECTED}
    assert ctx.exchange.orders_of(1) == [] and ctx.exchange.orders_of(2) == []


@pytest.mark.parametrize("mode", ["broker", "trading"])
def test_resting_limit_order_is_listed_open_then_canceled(
    registry: InstrumentRegistry, mode: str
) -> None:
    ctx = context(registry)
    coid = ClientOrderId(client_order_id(99, 3))
    ctx.exchange.submit(3, AAPL, Side.BUY, 1.0, coid, OrderType.LIMIT, TimeInForce.DAY, 150.0)
    states: list[Any] = []

    async def scenario(venue: AlpacaVenue, server: SimServer) -> None:
        states.append([o.client_order_id for o in await venue.open_orders(3)])
        await venue.cancel(coid)
        deadline = time.monotonic() + 5.0
        while (status := await venue.query(coid)) is not None and status.open:
            assert time.monotonic() < deadline, "the cancel never took effect"
            await asyncio.sleep(0.01)
        states.append(status)
        states.append(await venue.open_orders(3))
        await venue.cancel(coid)  # a no-op once canceled

    run(ctx, mode, registry, scenario)
    listed, final, after = states
    assert listed == [coid]
    assert final.state is OrderState.CANCELED and final.instrument == AAPL
    assert after == []
    assert ctx.exchange.locked(3) == 0.0


@pytest.mark.parametrize(
    "faults",
    [
        {Fault.UNKNOWN: 0.3, Fault.DROP: 0.3},
        {Fault.ERROR_5XX: 0.2, Fault.RATE_LIMIT: 0.2, Fault.TIMEOUT: 0.1, Fault.UNKNOWN: 0.2},
    ],
    ids=["unknown-drop", "5xx-429-timeout"],
)
def test_faults_neither_lose_nor_double_an_order(
    registry: InstrumentRegistry, make_orders: OrderFactory, faults: dict[Fault, float]
) -> None:
    ctx = context(registry, faults)
    batch = buys(make_orders, per_client=4)
    out: list[ExecutionBatch] = []
    stats: dict[str, int] = {}

    async def scenario(venue: AlpacaVenue, server: SimServer) -> None:
        await venue.submit(batch)
        out.append(await outcomes(venue, len(batch)))
        await asyncio.sleep(0.05)
        out.append(venue.poll(time.time_ns()))  # nothing more may come
        stats.update(venue.stats)
        await assert_books_match(venue, ctx)

    run(ctx, "broker", registry, scenario)
    done = ExecutionBatch.concat(out)
    counts = Counter(done.client_order_id.tolist())
    assert sorted(counts) == sorted(batch.client_order_id.tolist())
    assert set(counts.values()) == {1}  # every order exactly one outcome
    at_exchange = Counter(
        (c, o.client_order_id) for c in CLIENTS for o in ctx.exchange.orders_of(c)
    )
    assert set(at_exchange.values()) == {1}  # no client order id landed twice
    filled = {
        (int(c), k.decode())
        for c, k, s in zip(done.client, done.client_order_id, done.state, strict=True)
        if s == OrderState.FILLED
    }
    assert filled == set(at_exchange)
    # The faults reached the client as what they are. A POST without any answer (dropped, or
    # held past the client's timeout) is always an unknown outcome; one answered with a 5xx is
    # too, unless the order's stream event got there first. The seeded plan puts a drop or a
    # timeout among the first batch's POSTs, whichever order they arrive in.
    injected = ctx.faults.injected
    unanswered = injected[Fault.DROP.value] + injected[Fault.TIMEOUT.value]
    answered_5xx = injected[Fault.UNKNOWN.value] + injected[Fault.ERROR_5XX.value]
    assert unanswered > 0, injected
    assert unanswered <= stats["unknown_outcomes"] <= unanswered + answered_5xx, (stats, injected)


def test_server_counts_requests_per_key_and_refuses_the_excess_with_429(
    registry: InstrumentRegistry,
) -> None:
    ctx = context(registry)
    answers: list[Any] = []

    async def main() -> None:
        async with SimServer(ctx, build_app) as server:
            transport = AiohttpTransport()
            cred = ctx.accounts.credential(1)
            good = {"APCA-API-KEY-ID": cred.key_id, "APCA-API-SECRET-KEY": "wrong"}
            answers.append(await transport.request("GET", server.url + "/v2/account", headers=good))
            good["APCA-API-SECRET-KEY"] = cred.secret.reveal("secret")
            for _ in range(201):
                resp = await transport.request("GET", server.url + "/v2/account", headers=good)
            answers.append(resp)
            await transport.close()

    asyncio.run(main())
    refused, limited = answers
    assert refused.status == 401
    assert refused.json() == {"code": 40110000, "message": "request is not authorized"}
    assert limited.status == 429
    assert json.loads(limited.body)["code"] == 42910000
    headers = {k.lower(): v for k, v in limited.headers.items()}
    assert headers["x-ratelimit-limit"] == "200" and headers["x-ratelimit-remaining"] == "0"
    assert int(headers["x-ratelimit-reset"]) >= int(time.time())


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
def test_market_data_stream_speaks_what_the_alpaca_parser_reads(
    registry: InstrumentRegistry, encoding: str
) -> None:
    ctx = context(registry)
    parser = AlpacaStreamParser(registry, "msgpack" if encoding == "msgpack" else "json")
    ticks: list[TickBatch] = []
    stamp = 1_767_625_200_123_456_789

    async def main() -> None:
        async with SimServer(ctx, build_app) as server:
            transport = AiohttpTransport()
            headers = {"Content-Type": "application/msgpack"} if encoding == "msgpack" else {}
            ws = await transport.websocket(server.ws_url + "/v1beta3/crypto/us", headers=headers)
            cred = ctx.accounts.credential(1)
            requests = [
                {"action": "auth", "key": cred.key_id, "secret": cred.secret.reveal("secret")},
                {"action": "subscribe", "trades": ["BTC/USD"], "quotes": ["*"]},
            ]
            for request in requests:
                await ws.send(
                    msgpack.packb(request) if encoding == "msgpack" else json.dumps(request)
                )
            while "trades" not in parser.subscriptions:
                frame = await ws.receive()
                assert frame is not None
                parser.feed(frame, time.time_ns())
            ctx.market.publish(
                TickBatch.from_arrays(
                    [AAPL, BTC, ETH, BTC],
                    np.full(4, stamp),
                    [190.5, 50_010.0, 2_999.0, 50_020.0],
                    [10.0, 0.2, 1.5, 0.3],
                    [TickKind.TRADE, TickKind.TRADE, TickKind.BID, TickKind.ASK],
                )
            )
            while sum(len(t) for t in ticks) < 5:
                frame = await ws.receive()
                assert frame is not None
                ticks.append(parser.feed(frame, time.time_ns()))
            await ws.close()
            await transport.close()

    asyncio.run(main())
    got = TickBatch.concat(ticks)
    assert parser.authenticated and parser.malformed == 0
    assert parser.subscriptions["trades"] == ("BTC/USD",)
    rows = sorted(zip(got.instrument.tolist(), got.kind.tolist(), got.price.tolist(), strict=True))
    assert rows == [  # AAPL is no crypto pair; a first quote of a symbol carries both sides
        (BTC, TickKind.TRADE, 50_010.0),
        (BTC, TickKind.BID, 50_020.0),
        (BTC, TickKind.ASK, 50_020.0),
        (ETH, TickKind.BID, 2_999.0),
        (ETH, TickKind.ASK, 2_999.0),
    ]
    assert set(got.ts_event.tolist()) == {stamp}  # nanoseconds survive both encodings


def test_trade_updates_refuse_a_wrong_secret_and_speak_msgpack_when_asked(
    registry: InstrumentRegistry,
) -> None:
    ctx = context(registry)
    cred = ctx.accounts.credential(4)
    received: list[Any] = []

    def auth(secret: str) -> bytes:
        return msgpack.packb(
            {"action": "authenticate", "data": {"key_id": cred.key_id, "secret_key": secret}}
        )

    async def main() -> None:
        async with SimServer(ctx, build_app) as server:
            transport = AiohttpTransport()
            url = server.ws_url + "/stream"
            packed = {"Content-Type": "application/msgpack"}
            stranger = await transport.websocket(url, headers=packed)
            await stranger.send(auth("wrong"))
            received.append(msgpack.unpackb(await stranger.receive()))
            received.append(await stranger.receive())  # then the server hangs up
            ws = await transport.websocket(url, headers=packed)
            await ws.send(auth(cred.secret.reveal("secret")))
            await ws.send(
                msgpack.packb({"action": "listen", "data": {"streams": ["trade_updates"]}})
            )
            received.extend([msgpack.unpackb(await ws.receive()) for _ in range(2)])
            ctx.exchange.submit(4, BTC, Side.BUY, 0.01, "mp-1")
            received.extend([msgpack.unpackb(await ws.receive()) for _ in range(2)])
            await ws.close()
            await transport.close()

    asyncio.run(main())
    refused, closed, authorized, listening, new, fill = received
    assert refused == {
        "stream": "authorization",
        "data": {"action": "authenticate", "status": "unauthorized"},
    }
    assert closed is None
    assert authorized["data"]["status"] == "authorized"
    assert listening == {"stream": "listening", "data": {"streams": ["trade_updates"]}}
    assert [new["data"]["event"], fill["data"]["event"]] == ["new", "fill"]
    order = fill["data"]["order"]
    assert (order["client_order_id"], order["symbol"], order["status"]) == (
        "mp-1",
        "BTC/USD",
        "filled",
    )
    assert fill["data"]["position_qty"] == "0.01" and fill["data"]["qty"] == "0.01"
