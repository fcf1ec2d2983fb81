"""alpaca-py, Alpaca's official SDK, against the Alpaca simulator server (venues.md §5).

The SDK's REST clients are synchronous, so the server runs in a background thread
(`ServerThread`); its streams run on their own event loop in another thread. A stream stops at
once when the server goes away, so each stream test has its own server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from alpaca.broker.client import BrokerClient
from alpaca.broker.requests import LimitOrderRequest as BrokerLimitOrder
from alpaca.broker.requests import MarketOrderRequest as BrokerMarketOrder
from alpaca.common.exceptions import APIError
from alpaca.data.live import StockDataStream
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest
from alpaca.trading.stream import TradingStream

from tickwise.model.instruments import AssetClass, Instrument, InstrumentRegistry, Venue
from tickwise.model.ticks import TickBatch, TickKind
from tickwise.venues.sim.server.alpaca import build_app
from tickwise.venues.sim.server.common import (
    BROKER_KEY_ID,
    ServerThread,
    SimContext,
    SimServer,
    broker_secret,
    make_context,
)

AAPL, BTC = 0, 1
CASH = 100_000.0


def registry() -> InstrumentRegistry:
    return InstrumentRegistry(
        [
            Instrument(AAPL, "AAPL", AssetClass.EQUITY, 0.01, 1e-6, 0.0, fractionable=True),
            Instrument(BTC, "BTC/USD", AssetClass.CRYPTO, 0.01, 1e-5, 0.0, fractionable=True),
        ]
    )


def serve() -> tuple[SimContext, ServerThread]:
    ctx = make_context(Venue.ALPACA, registry(), [1, 2], [CASH, CASH], ack_delay_ms=2.0)
    server = ServerThread(SimServer(ctx, build_app)).start()
    server.call(lambda: ctx.exchange.mark([AAPL, BTC], [190.0, 50_000.0]))
    return ctx, server


@pytest.fixture()
def sim() -> Iterator[tuple[SimContext, ServerThread]]:
    ctx, server = serve()
    yield ctx, server
    server.stop()


def keys(ctx: SimContext, client: int) -> tuple[str, str]:
    cred = ctx.accounts.credential(client)
    return cred.key_id, cred.secret.reveal("secret")


def eventually(check: Callable[[], Any], timeout_s: float = 5.0) -> Any:
    """`check()` once it is truthy; fails after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
    return result


def in_thread(target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


@pytest.mark.conformance
def test_trading_client_submits_gets_cancels_and_reads_the_account(
    sim: tuple[SimContext, ServerThread],
) -> None:
    ctx, server = sim
    client = TradingClient(*keys(ctx, 1), url_override=server.url)

    market = client.submit_order(
        MarketOrderRequest(
            symbol="AAPL",
            qty=2,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            client_order_id="sdk-market-1",
        )
    )
    limit = client.submit_order(
        LimitOrderRequest(
            symbol="AAPL",
            qty=1,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            limit_price=150.0,
            client_order_id="sdk-limit-1",
        )
    )
    assert market.client_order_id == "sdk-market-1" and market.symbol == "AAPL"
    assert limit.status is OrderStatus.NEW
    done = eventually(
        lambda: (
            (o := client.get_order_by_client_id("sdk-market-1")).status is OrderStatus.FILLED and o
        )
    )
    assert done.id == market.id and float(done.filled_qty) == 2.0

    client.cancel_order_by_id(limit.id)
    canceled = eventually(
        lambda: client.get_order_by_client_id("sdk-limit-1").status is OrderStatus.CANCELED
    )
    assert canceled

    (position,) = client.get_all_positions()
    assert (position.symbol, float(position.qty)) == ("AAPL", 2.0)
    account = client.get_account()
    assert float(account.cash) == pytest.approx(ctx.exchange.cash(1))
    assert float(account.cash) == pytest.approx(CASH - 2 * float(done.filled_avg_price))


@pytest.mark.conformance
def test_trading_client_raises_alpacas_errors(sim: tuple[SimContext, ServerThread]) -> None:
    ctx, server = sim
    client = TradingClient(*keys(ctx, 1), url_override=server.url)
    order = MarketOrderRequest(
        symbol="BTC/USD", qty=0.01, side=OrderSide.BUY, time_in_force=TimeInForce.GTC
    )
    order.client_order_id = "sdk-once"
    client.submit_order(order)

    with pytest.raises(APIError) as duplicate:
        client.submit_order(order)
    assert (duplicate.value.status_code, duplicate.value.code) == (422, 40010001)
    assert duplicate.value.message == "client_order_id must be unique"

    stranger = TradingClient(keys(ctx, 1)[0], "not-the-secret", url_override=server.url)
    with pytest.raises(APIError) as refused:
        stranger.get_account()
    assert (refused.value.status_code, refused.value.code) == (401, 40110000)


@pytest.mark.conformance
def test_broker_client_trades_one_account_of_many(sim: tuple[SimContext, ServerThread]) -> None:
    ctx, server = sim
    broker = BrokerClient(BROKER_KEY_ID, broker_secret(), sandbox=True, url_override=server.url)
    account = ctx.accounts.account_id(2)

    market = broker.submit_order_for_account(
        account,
        BrokerMarketOrder(
            symbol="BTC/USD",
            qty=0.02,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            client_order_id="acct2-0001",
        ),
    )
    limit = broker.submit_order_for_account(
        account,
        BrokerLimitOrder(
            symbol="AAPL",
            qty=1,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            limit_price=100.0,
            client_order_id="acct2-0002",
        ),
    )
    filled = eventually(
        lambda: (
            (o := broker.get_order_for_account_by_client_id(account, "acct2-0001")).status
            is OrderStatus.FILLED
            and o
        )
    )
    assert filled.id == market.id
    broker.cancel_order_for_account_by_id(account, limit.id)
    eventually(
        lambda: broker.get_order_for_account_by_id(account, limit.id).status is OrderStatus.CANCELED
    )

    (position,) = broker.get_all_positions_for_account(account)
    assert (position.symbol, float(position.qty)) == ("BTCUSD", 0.02)
    trade_account = broker.get_trade_account_by_id(account)
    assert float(trade_account.cash) == pytest.approx(ctx.exchange.cash(2))
    assert str(broker.get_account_by_id(account).id) == account
    assert ctx.exchange.orders_of(1) == []  # the other account saw nothing


@pytest.mark.conformance
def test_trading_stream_receives_the_new_and_fill_events_of_an_order() -> None:
    ctx, server = serve()
    key, secret = keys(ctx, 1)
    updates: list[tuple[str, str, OrderStatus]] = []

    async def on_update(update: Any) -> None:
        updates.append((str(update.event), update.order.client_order_id, update.order.status))

    stream = TradingStream(key, secret, url_override=server.ws_url + "/stream")
    stream.subscribe_trade_updates(on_update)
    thread = in_thread(stream.run)
    client = TradingClient(key, secret, url_override=server.url)

    def events_of(coid: str) -> list[tuple[str, OrderStatus]]:
        return [(event, status) for event, c, status in updates if c == coid]

    def streamed(attempt: int) -> str:
        """Send an order; its client order id once its fill was streamed, else ""."""
        coid = f"sdk-streamed-{attempt}"
        client.submit_order(
            MarketOrderRequest(
                symbol="AAPL",
                qty=1,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.DAY,
                client_order_id=coid,
            )
        )
        try:
            return eventually(lambda: len(events_of(coid)) >= 2 and coid, timeout_s=0.5)
        except AssertionError:
            return ""  # sent before the stream was listening: try again

    try:
        coid = next(c for attempt in range(20) if (c := streamed(attempt)))
        stream.stop()
    finally:
        server.stop()  # closes the socket: the stream's loop ends without waiting out its poll
        thread.join(10.0)
    assert not thread.is_alive()
    assert events_of(coid)[:2] == [("new", OrderStatus.NEW), ("fill", OrderStatus.FILLED)]


@pytest.mark.conformance
def test_stock_data_stream_receives_a_trade_of_a_subscribed_symbol() -> None:
    ctx, server = serve()
    key, secret = keys(ctx, 1)
    trades: list[Any] = []

    async def on_trade(trade: Any) -> None:
        trades.append(trade)

    stream = StockDataStream(key, secret, url_override=server.ws_url + "/v2/iex")
    stream.subscribe_trades(on_trade, "AAPL")
    thread = in_thread(stream.run)
    stamp = 1_767_625_200_123_456_789  # 2026-01-05T15:00:00.123456789Z

    def publish() -> None:
        ticks = TickBatch.from_arrays(
            [BTC, AAPL],
            np.array([stamp, stamp]),
            [50_100.0, 191.5],
            [0.5, 7.0],
            [TickKind.TRADE] * 2,
        )
        ctx.market.publish(ticks)

    try:
        eventually(lambda: server.call(publish) or trades)  # until subscribed and delivered
        stream.stop()
    finally:
        server.stop()
        thread.join(10.0)
    assert not thread.is_alive()
    trade = trades[0]
    assert (trade.symbol, trade.price, trade.size, trade.exchange) == ("AAPL", 191.5, 7.0, "V")
    assert trade.timestamp.timestamp() == pytest.approx(stamp / 1e9)
    assert {t.symbol for t in trades} == {"AAPL"}  # BTC/USD was not subscribed (nor a stock)
