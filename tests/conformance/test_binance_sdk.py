"""binance-sdk-spot, Binance's official SDK, against the Binance simulator server (venues.md §5).

The SDK's REST client is synchronous (requests) and sends every signed parameter in the query
string, so the server runs in a background thread (`ServerThread`). Its WebSocket Streams and
WebSocket API clients are asyncio: each test runs them in its own event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from binance_common.errors import BadRequestError, UnauthorizedError
from binance_sdk_spot.rest_api import SpotRestAPI
from binance_sdk_spot.rest_api.models import (
    NewOrderSideEnum,
    NewOrderTimeInForceEnum,
    NewOrderTypeEnum,
)
from binance_sdk_spot.spot import (
    ConfigurationRestAPI,
    ConfigurationWebSocketAPI,
    ConfigurationWebSocketStreams,
    Spot,
)

from tickwise.model.instruments import AssetClass, Instrument, InstrumentRegistry, Venue
from tickwise.model.orders import OrderState
from tickwise.model.ticks import TickBatch, TickKind
from tickwise.venues.sim.server.binance import build_app
from tickwise.venues.sim.server.common import ServerThread, SimContext, SimServer, make_context

pytestmark = pytest.mark.conformance

AAPL, BTC, ETH = 0, 1, 2
CASH = 100_000.0
Sim = tuple[SimContext, ServerThread]


def registry() -> InstrumentRegistry:
    return InstrumentRegistry(
        [
            Instrument(AAPL, "AAPL", AssetClass.EQUITY, 0.01, 1e-6, 0.0, fractionable=True),
            Instrument(BTC, "BTC/USD", AssetClass.CRYPTO, 0.01, 1e-5, 0.0, fractionable=True),
            Instrument(ETH, "ETH/USD", AssetClass.CRYPTO, 0.01, 1e-4, 0.0, fractionable=True),
        ]
    )


@pytest.fixture()
def sim() -> Iterator[Sim]:
    ctx = make_context(Venue.BINANCE, registry(), [1, 2], [CASH, CASH], ack_delay_ms=1.0)
    server = ServerThread(SimServer(ctx, build_app)).start()
    server.call(lambda: ctx.exchange.mark([BTC, ETH], [60_000.0, 3_000.0]))
    yield ctx, server
    server.stop()


def secrets_of(ctx: SimContext, client: int) -> tuple[str, str]:
    cred = ctx.accounts.credential(client)
    return cred.key_id, cred.secret.reveal("secret")


def rest(sim: Sim, client: int = 1, secret: str | None = None) -> SpotRestAPI:
    ctx, server = sim
    key, real_secret = secrets_of(ctx, client)
    config = ConfigurationRestAPI(
        api_key=key, api_secret=secret or real_secret, base_path=server.url, timeout=5000
    )
    return Spot(config_rest_api=config).rest_api


async def eventually(check: Callable[[], Any], timeout_s: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)
    return result


def test_market_order_answers_filled_with_its_fills(sim: Sim) -> None:
    ctx, server = sim

    answer = rest(sim).new_order(
        symbol="BTCUSDT",
        side=NewOrderSideEnum.BUY,
        type=NewOrderTypeEnum.MARKET,
        quantity=0.01,
        new_client_order_id="sdk-market-1",
    )

    order = answer.data()
    assert order.status == "FILLED" and order.client_order_id == "sdk-market-1"
    assert order.executed_qty == "0.01000000"
    (fill,) = order.fills
    assert fill.commission_asset == "USDT" and float(fill.commission) > 0
    assert {r.rateLimitType for r in answer.rate_limits} == {"REQUEST_WEIGHT", "ORDERS"}
    assert server.call(lambda: ctx.exchange.positions(1)) == pytest.approx({BTC: 0.01})


def test_limit_order_rests_is_found_by_client_order_id_and_canceled(sim: Sim) -> None:
    ctx, server = sim
    api = rest(sim)

    placed = api.new_order(
        symbol="ETHUSDT",
        side=NewOrderSideEnum.BUY,
        type=NewOrderTypeEnum.LIMIT,
        time_in_force=NewOrderTimeInForceEnum.GTC,
        quantity=1.0,
        price=2_500.0,
        new_client_order_id="sdk-limit-1",
    ).data()
    locked = server.call(lambda: ctx.exchange.locked(1))
    found = api.get_order(symbol="ETHUSDT", orig_client_order_id="sdk-limit-1").data()
    canceled = api.delete_order(symbol="ETHUSDT", orig_client_order_id="sdk-limit-1").data()

    assert placed.status == "NEW"
    assert locked == pytest.approx(2_500.0)
    assert found.status == "NEW" and found.order_id == placed.order_id
    assert canceled.status == "CANCELED" and canceled.orig_client_order_id == "sdk-limit-1"
    order = server.call(lambda: ctx.exchange.find(1, client_order_id="sdk-limit-1"))
    assert order.state is OrderState.CANCELED
    assert server.call(lambda: ctx.exchange.locked(1)) == 0.0


def test_account_and_exchange_info_read_as_the_sdk_models(sim: Sim) -> None:
    api = rest(sim, client=2)

    account = api.get_account(omit_zero_balances=True).data()
    one = api.exchange_info(symbol="BTCUSDT").data()
    both = api.exchange_info(symbols=["BTCUSDT", "ETHUSDT"]).data()

    assert [(b.asset, b.free, b.locked) for b in account.balances] == [
        ("USDT", "100000.00000000", "0.00000000")
    ]
    assert account.can_trade and account.account_type == "SPOT"
    (btc,) = one.symbols
    filters: dict[str, Any] = {
        f.actual_instance.filter_type: f.actual_instance for f in btc.filters
    }
    assert btc.base_asset == "BTC" and btc.quote_asset == "USDT"
    assert filters["LOT_SIZE"].step_size == "0.00001000"
    assert filters["PRICE_FILTER"].tick_size == "0.01000000"
    assert [s.symbol for s in both.symbols] == ["BTCUSDT", "ETHUSDT"]


def test_refusals_reach_the_sdk_as_its_errors(sim: Sim) -> None:
    _, server = sim

    def buy(api: SpotRestAPI, quantity: float) -> None:
        api.new_order(
            symbol="BTCUSDT",
            side=NewOrderSideEnum.BUY,
            type=NewOrderTypeEnum.MARKET,
            quantity=quantity,
        )

    with pytest.raises(BadRequestError, match="Signature for this request is not valid"):
        buy(rest(sim, secret="not-the-secret"), 0.01)
    with pytest.raises(BadRequestError, match="Filter failure: LOT_SIZE"):
        buy(rest(sim), 0.000015)
    stranger = ConfigurationRestAPI(api_key="nobody", api_secret="x", base_path=server.url)
    with pytest.raises(UnauthorizedError, match="Invalid API-key"):
        Spot(config_rest_api=stranger).rest_api.get_account()


def test_websocket_streams_client_receives_trades(sim: Sim) -> None:
    ctx, server = sim
    ticks = TickBatch.from_arrays(
        [BTC, BTC],
        np.full(2, time.time_ns()),
        [60_001.0, 60_002.0],
        [0.5, 0.25],
        [TickKind.TRADE] * 2,
    )

    async def scenario() -> list[Any]:
        received: list[Any] = []
        config = ConfigurationWebSocketStreams(stream_url=server.ws_url)
        connection = await Spot(config_ws_streams=config).websocket_streams.create_connection()
        try:
            stream = await connection.trade(symbol="BTCUSDT")
            stream.on("message", received.append)
            await asyncio.sleep(0.3)  # the SDK waits before it sends SUBSCRIBE
            server.call(lambda: ctx.market.publish(ticks))
            await eventually(lambda: len(received) >= 2)
        finally:
            await connection.close_connection(close_session=True)
        return received

    first, second = asyncio.run(scenario())[:2]

    assert (first.e, first.s, first.p, first.q) == (
        "trade",
        "BTCUSDT",
        "60001.00000000",
        "0.50000000",
    )
    assert second.t == first.t + 1


def test_websocket_api_user_data_subscription_receives_the_execution_report(sim: Sim) -> None:
    ctx, server = sim
    key, secret = secrets_of(ctx, 1)
    api = rest(sim)

    async def scenario() -> list[Any]:
        events: list[Any] = []
        config = ConfigurationWebSocketAPI(
            api_key=key, api_secret=secret, stream_url=f"{server.ws_url}/ws-api/v3"
        )
        connection = await Spot(config_ws_api=config).websocket_api.create_connection()
        try:
            subscription = await connection.user_data_stream_subscribe_signature()
            subscription.stream.on("message", lambda e: events.append(e.actual_instance))
            await asyncio.to_thread(
                api.new_order,
                symbol="ETHUSDT",
                side=NewOrderSideEnum.BUY,
                type=NewOrderTypeEnum.MARKET,
                quantity=0.1,
                new_client_order_id="sdk-stream-1",
            )
            await eventually(lambda: any(getattr(e, "X", None) == "FILLED" for e in events))
        finally:
            await connection.close_connection(close_session=True)
        return events

    events = asyncio.run(scenario())

    reports = [e for e in events if type(e).__name__ == "ExecutionReport"]
    assert [(r.c, r.x, r.X) for r in reports] == [
        ("sdk-stream-1", "NEW", "NEW"),
        ("sdk-stream-1", "TRADE", "FILLED"),
    ]
    assert reports[-1].N == "USDT" and float(reports[-1].n) > 0
    assert any(type(e).__name__ == "OutboundAccountPosition" for e in events)
