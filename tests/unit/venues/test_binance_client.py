"""The Binance adapter against recorded venue answers: every error path, no network.

Time is faked where the adapter waits (Retry-After, bans, receive windows): `FakeTime.sleep`
advances a clock instead of sleeping, so the waits are checked without taking them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import time
from collections import deque
from collections.abc import Callable
from urllib.parse import urlencode

import pytest
from venue_orders import AAPL, BTC, ETH, orders, small_registry

from tickwise.model.ids import client_order_ids
from tickwise.model.instruments import Venue
from tickwise.model.orders import ExecutionBatch, OrderBatch, OrderState, RejectReason
from tickwise.venues.binance.client import BinanceVenue
from tickwise.venues.binance.rest import as_sent
from tickwise.venues.credentials import demo_credential
from tickwise.venues.http import (
    HttpRequest,
    HttpResponse,
    RecordedTransport,
    TransportError,
    json_response,
)

CLIENT = 7
KEY = demo_credential(CLIENT, Venue.BINANCE)
SECRET = KEY.secret.reveal("secret")
COID = client_order_ids([42], [CLIENT])[0].decode()
Answer = HttpResponse | TransportError | Callable[[HttpRequest], HttpResponse]


class FakeTime:
    """A monotonic clock that only `sleep` moves."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def server_time(offset_ms: int = 0) -> Callable[[HttpRequest], HttpResponse]:
    return lambda _req: json_response(200, {"serverTime": time.time_ns() // 1_000_000 + offset_ms})


def _filters(step: str) -> list[dict[str, object]]:
    return [
        {
            "filterType": "PRICE_FILTER",
            "minPrice": "0.01",
            "maxPrice": "1000000",
            "tickSize": "0.01",
        },
        {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "9000", "stepSize": step},
        {
            "filterType": "NOTIONAL",
            "minNotional": "5",
            "applyMinToMarket": True,
            "maxNotional": "9000000",
            "applyMaxToMarket": False,
            "avgPriceMins": 5,
        },
    ]


EXCHANGE_INFO = {
    "symbols": [
        {"symbol": "BTCUSDT", "status": "TRADING", "filters": _filters("0.00001")},
        {"symbol": "ETHUSDT", "status": "TRADING", "filters": _filters("0.0001")},
    ]
}


def order_json(
    status: str = "FILLED",
    qty: str = "0.01000",
    price: float = 60_015.0,
    commission: str | None = "0.60015",
    coid: str = COID,
) -> dict[str, object]:
    filled = float(qty) if status == "FILLED" else 0.0
    body: dict[str, object] = {
        "symbol": "BTCUSDT",
        "orderId": 11,
        "orderListId": -1,
        "clientOrderId": coid,
        "transactTime": 1,
        "price": "0.00000000",
        "origQty": qty,
        "executedQty": f"{filled:.8f}",
        "cummulativeQuoteQty": f"{filled * price:.8f}",
        "status": status,
        "timeInForce": "GTC",
        "type": "MARKET",
        "side": "BUY",
    }
    if commission is not None:
        body["fills"] = (
            [
                {
                    "price": f"{price:.8f}",
                    "qty": qty,
                    "commission": commission,
                    "commissionAsset": "USDT",
                    "tradeId": 3,
                }
            ]
            if filled
            else []
        )
    return body


def error(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> HttpResponse:
    return json_response(status, {"code": code, "msg": msg}, headers)


def btc_buy(qty: float = 0.01, coid: str = COID) -> OrderBatch:
    return orders(
        [CLIENT], [BTC], [1], [qty], [60_000.0], venue=Venue.BINANCE, coid=[coid.encode()]
    )


def venue_with(
    *answers: Answer, fake: FakeTime | None = None
) -> tuple[BinanceVenue, RecordedTransport]:
    """An adapter whose venue answers `answers` after the start-up requests."""
    transport = RecordedTransport()
    transport.answer(server_time(), server_time(), json_response(200, EXCHANGE_INFO), *answers)
    fake = fake or FakeTime()
    venue = BinanceVenue(
        small_registry(),
        {CLIENT: KEY},
        base_url="https://api.test",
        stream_url="wss://ws-api.test/ws-api/v3",
        transport_factory=lambda: transport,
        user_stream=False,
        sleep=fake.sleep,
        clock=fake.clock,
        rng=random.Random(1),
    )
    return venue, transport


async def settle(venue: BinanceVenue, batch: OrderBatch) -> ExecutionBatch:
    """Start, submit, and collect every outcome (the recorded venue answers at once)."""
    await venue.start()
    await venue.submit(batch)
    collected = []
    for _ in range(10_000):
        collected.append(venue.poll(time.time_ns()))
        if venue.pending() == 0:
            break
        await asyncio.sleep(0)
    await venue.close()
    assert venue.pending() == 0, "orders left unresolved"
    return ExecutionBatch.concat(collected)


def posts(transport: RecordedTransport) -> list[HttpRequest]:
    return [r for r in transport.requests if r.method == "POST"]


def sent(request: HttpRequest) -> dict[str, str]:
    return dict(request.params)


# -- the happy path and what is sent ----------------------------------------------------------


def test_market_order_fills_from_the_full_answer_with_average_price_and_fee() -> None:
    venue, transport = venue_with(json_response(200, order_json()))

    out = asyncio.run(settle(venue, btc_buy()))

    assert out.state.tolist() == [OrderState.FILLED]
    assert out.fill_qty.tolist() == [0.01]
    assert out.fill_price[0] == pytest.approx(60_015.0)
    assert out.fee[0] == pytest.approx(0.60015)
    assert out.client_order_id.tolist() == [COID.encode()]
    (post,) = posts(transport)
    params = sent(post)
    assert post.url == "https://api.test/api/v3/order"
    assert post.headers["X-MBX-APIKEY"] == KEY.key_id
    assert {k: params[k] for k in ("symbol", "side", "type", "quantity", "newOrderRespType")} == {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "MARKET",
        "quantity": "0.01000",
        "newOrderRespType": "FULL",
    }
    assert params["newClientOrderId"] == COID


def test_signature_covers_the_query_exactly_as_sent() -> None:
    venue, transport = venue_with(json_response(200, order_json()))

    asyncio.run(settle(venue, btc_buy()))

    (post,) = posts(transport)
    unsigned = [(k, v) for k, v in post.params if k != "signature"]
    expected = hmac.new(SECRET.encode(), as_sent(urlencode(unsigned)).encode(), hashlib.sha256)
    assert post.params[-1] == ("signature", expected.hexdigest())
    assert [k for k, _ in unsigned][-2:] == ["recvWindow", "timestamp"]


def test_commission_in_the_base_asset_is_converted_at_the_fill_price() -> None:
    body = order_json(commission="0.00001")
    body["fills"] = [
        {"price": "60000", "qty": "0.01", "commission": "0.00001", "commissionAsset": "BTC"}
    ]
    venue, _ = venue_with(json_response(200, body))

    out = asyncio.run(settle(venue, btc_buy()))

    assert out.fee[0] == pytest.approx(0.6)


# -- refusals ---------------------------------------------------------------------------------


def test_bad_api_key_is_rejected_once_and_not_retried() -> None:
    venue, transport = venue_with(
        error(401, -2015, "Invalid API-key, IP, or permissions for action.")
    )

    out = asyncio.run(settle(venue, btc_buy()))

    assert out.state.tolist() == [OrderState.REJECTED]
    assert out.reason.tolist() == [RejectReason.VENUE_ERROR]
    assert len(posts(transport)) == 1
    assert venue.stats["auth_errors"] == 1


def test_bad_signature_is_rejected_once_and_not_retried() -> None:
    venue, transport = venue_with(error(400, -1022, "Signature for this request is not valid."))

    out = asyncio.run(settle(venue, btc_buy()))

    assert out.state.tolist() == [OrderState.REJECTED]
    assert len(posts(transport)) == 1
    assert venue.stats["auth_errors"] == 1


def test_insufficient_balance_is_rejected_with_its_reason() -> None:
    venue, _ = venue_with(
        error(400, -2010, "Account has insufficient balance for requested action.")
    )

    out = asyncio.run(settle(venue, btc_buy()))

    assert out.reason.tolist() == [RejectReason.INSUFFICIENT_BUYING_POWER]


def test_duplicate_client_order_id_answer_is_rejected_as_duplicate() -> None:
    venue, transport = venue_with(error(400, -2010, "Duplicate order sent."))

    out = asyncio.run(settle(venue, btc_buy()))

    assert out.reason.tolist() == [RejectReason.DUPLICATE_CLIENT_ORDER_ID]
    assert len(posts(transport)) == 1


def test_a_repeated_client_order_id_is_refused_here_not_sent_twice() -> None:
    venue, transport = venue_with(json_response(200, order_json()))

    async def twice() -> ExecutionBatch:
        first = await settle(venue, btc_buy())
        transport.answer(server_time(), server_time(), json_response(200, EXCHANGE_INFO))
        second = await settle(venue, btc_buy())
        return ExecutionBatch.concat([first, second])

    out = asyncio.run(twice())

    assert out.state.tolist() == [OrderState.FILLED, OrderState.REJECTED]
    assert out.reason.tolist() == [RejectReason.NONE, RejectReason.DUPLICATE_CLIENT_ORDER_ID]
    assert len(posts(transport)) == 1


def test_orders_failing_a_filter_are_rejected_here_without_a_request() -> None:
    batch = orders(
        [CLIENT] * 4,
        [BTC, BTC, AAPL, ETH],
        [1, 1, 1, -1],
        [0.000015, 0.00001, 1.0, 0.01],
        [60_000.0, 60_000.0, 190.0, 3_000.0],
        signal=[1, 2, 3, 4],
        venue=Venue.BINANCE,
    )
    eth_coid = batch.client_order_id[3].decode()
    venue, transport = venue_with(json_response(200, order_json(qty="0.0100", coid=eth_coid)))

    out = asyncio.run(settle(venue, batch))

    by_id = dict(zip(out.client_order_id.tolist(), out.reason.tolist(), strict=True))
    assert [by_id[c] for c in batch.client_order_id.tolist()[:3]] == [
        RejectReason.INVALID_QUANTITY_INCREMENT,
        RejectReason.BELOW_MIN_NOTIONAL,
        RejectReason.UNKNOWN_SYMBOL,
    ]
    assert [sent(p)["symbol"] for p in posts(transport)] == ["ETHUSDT"]
    assert venue.stats["rejected_locally"] == 3


# -- clock and rate limits --------------------------------------------------------------------


def test_clock_skew_resyncs_the_server_clock_and_the_resend_succeeds() -> None:
    venue, transport = venue_with(
        error(400, -1021, "Timestamp for this request is outside of the recvWindow."),
        server_time(offset_ms=30_000),
        server_time(offset_ms=30_000),
        json_response(200, order_json()),
    )

    out = asyncio.run(settle(venue, btc_buy()))

    assert out.state.tolist() == [OrderState.FILLED]
    first, second = (int(sent(p)["timestamp"]) for p in posts(transport))
    assert second - first > 25_000  # signed on the venue's clock, 30 s ahead
    assert venue.stats["clock_resyncs"] == 1


def test_429_waits_for_retry_after_then_the_order_goes_through() -> None:
    fake = FakeTime()
    sent_at: list[float] = []

    def fill(_req: HttpRequest) -> HttpResponse:
        sent_at.append(fake.now)
        return json_response(200, order_json())

    venue, transport = venue_with(
        error(429, -1003, "Too much request weight used.", {"Retry-After": "7"}), fill, fake=fake
    )

    out = asyncio.run(settle(venue, btc_buy()))

    assert out.state.tolist() == [OrderState.FILLED]
    assert len(posts(transport)) == 2
    assert sent_at[0] >= 7.0
    assert venue.stats["rate_limited"] == 1


def test_418_ban_holds_every_request_for_at_least_two_minutes() -> None:
    fake = FakeTime()
    sent_at: list[float] = []

    def fill(_req: HttpRequest) -> HttpResponse:
        sent_at.append(fake.now)
        return json_response(200, order_json())

    venue, _ = venue_with(
        error(418, -1003, "Way too much request weight used; IP banned.", {"Retry-After": "5"}),
        fill,
        fake=fake,
    )

    out = asyncio.run(settle(venue, btc_buy()))

    assert out.state.tolist() == [OrderState.FILLED]
    assert sent_at[0] >= 120.0


def test_the_venues_weight_header_makes_the_next_request_wait_for_the_window() -> None:
    fake = FakeTime()
    sent_at: list[float] = []

    def fill(_req: HttpRequest) -> HttpResponse:
        sent_at.append(fake.now)
        return json_response(200, order_json())

    transport = RecordedTransport()
    spent = json_response(200, EXCHANGE_INFO, {"X-MBX-USED-WEIGHT-1M": "6000"})
    transport.answer(server_time(), server_time(), spent, fill)
    venue = BinanceVenue(
        small_registry(),
        {CLIENT: KEY},
        base_url="https://api.test",
        stream_url="wss://ws-api.test/ws-api/v3",
        transport_factory=lambda: transport,
        user_stream=False,
        sleep=fake.sleep,
        clock=fake.clock,
    )

    asyncio.run(settle(venue, btc_buy()))

    assert sent_at[0] >= 60.0


# -- unknown outcomes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lost",
    [
        error(500, -1007, "Timeout waiting for response from backend server."),
        TransportError("timeout", "no answer"),
    ],
    ids=["minus-1007", "no-answer"],
)
def test_unknown_outcome_is_resolved_by_client_order_id_and_adopted_not_resent(
    lost: Answer,
) -> None:
    trades = [{"price": "60015", "qty": "0.01", "commission": "0.60015", "commissionAsset": "USDT"}]
    venue, transport = venue_with(
        lost,
        json_response(200, order_json(commission=None)),
        json_response(200, trades),
    )

    out = asyncio.run(settle(venue, btc_buy()))

    assert out.state.tolist() == [OrderState.FILLED]
    assert out.fee[0] == pytest.approx(0.60015)
    assert len(posts(transport)) == 1
    query = next(
        r for r in transport.requests if r.url.endswith("/api/v3/order") and r.method == "GET"
    )
    assert sent(query)["origClientOrderId"] == COID
    assert venue.stats["adopted"] == 1


def test_lost_answer_for_an_order_that_never_landed_is_resent_once_with_the_same_id() -> None:
    fake = FakeTime()
    not_found = error(400, -2013, "Order does not exist.")
    venue, transport = venue_with(
        TransportError("timeout", "no answer"),
        not_found,
        not_found,
        json_response(200, order_json()),
        fake=fake,
    )

    out = asyncio.run(settle(venue, btc_buy()))

    assert out.state.tolist() == [OrderState.FILLED]
    first, second = posts(transport)
    assert sent(first)["newClientOrderId"] == sent(second)["newClientOrderId"] == COID
    assert sum(fake.slept) >= 5.0  # waited out the lost request's receive window first
    assert venue.stats["resent"] == 1


def test_malformed_answer_is_counted_and_resolved_by_query() -> None:
    garbled = HttpResponse(200, {"Content-Type": "text/html"}, b"<html>gateway</html>")
    venue, transport = venue_with(
        garbled,
        json_response(200, order_json(commission=None)),
        json_response(200, []),
    )

    out = asyncio.run(settle(venue, btc_buy()))

    assert out.state.tolist() == [OrderState.FILLED]
    assert venue.stats["malformed"] == 1
    assert len(posts(transport)) == 1


def test_server_error_then_query_failure_keeps_asking_until_answered() -> None:
    venue, transport = venue_with(
        HttpResponse(503, {}, b"Service Unavailable"),
        TransportError("connection", "reset"),
        json_response(200, order_json()),
    )

    out = asyncio.run(settle(venue, btc_buy()))

    assert out.state.tolist() == [OrderState.FILLED]
    assert len(posts(transport)) == 1


# -- user data stream -------------------------------------------------------------------------


class QueueSocket:
    """A WebSocket whose incoming messages the test feeds while the adapter runs."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[str | None] = asyncio.Queue()
        self.sent: list[str] = []

    async def send(self, message: str | bytes) -> None:
        self.sent.append(message if isinstance(message, str) else message.decode())

    async def receive(self) -> str | bytes | None:
        return await self.incoming.get()

    async def close(self) -> None:
        self.incoming.put_nowait(None)


def test_an_acknowledged_order_is_settled_by_the_execution_report() -> None:
    socket = QueueSocket()
    transport = RecordedTransport(sockets=deque([socket]))  # type: ignore[list-item]
    ack = {"symbol": "BTCUSDT", "orderId": 11, "orderListId": -1, "clientOrderId": COID}
    transport.answer(server_time(), server_time(), json_response(200, EXCHANGE_INFO))
    working = json_response(200, order_json(status="NEW"))
    transport.answer(json_response(200, ack), working, working, working)
    fake = FakeTime()
    venue = BinanceVenue(
        small_registry(),
        {CLIENT: KEY},
        base_url="https://api.test",
        stream_url="wss://ws-api.test/ws-api/v3",
        transport_factory=lambda: transport,
        sleep=fake.sleep,
        clock=fake.clock,
    )
    report = {
        "e": "executionReport", "s": "BTCUSDT", "c": COID, "S": "BUY", "x": "TRADE",
        "X": "FILLED", "i": 11, "q": "0.01", "z": "0.01", "Z": "600.15", "L": "60015",
        "n": "0.60015", "N": "USDT", "C": "",
    }  # fmt: skip

    async def scenario() -> ExecutionBatch:
        await venue.start()
        await asyncio.sleep(0)
        (subscribe,) = (json.loads(m) for m in socket.sent)
        socket.incoming.put_nowait(
            json.dumps({"id": subscribe["id"], "status": 200, "result": {"subscriptionId": 0}})
        )
        await venue.submit(btc_buy())
        socket.incoming.put_nowait(json.dumps({"subscriptionId": 0, "event": report}))
        for _ in range(100):
            out = venue.poll(time.time_ns())
            if len(out):
                await venue.close()
                return out
            await asyncio.sleep(0)
        raise AssertionError("the execution report did not settle the order")

    out = asyncio.run(scenario())

    assert out.state.tolist() == [OrderState.FILLED]
    assert out.fee[0] == pytest.approx(0.60015)
    assert venue.stats["stream_outcomes"] == 1
    (subscribe,) = (json.loads(m) for m in socket.sent)
    params = subscribe["params"]
    assert subscribe["method"] == "userDataStream.subscribe.signature"
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")
    assert (
        params["signature"]
        == hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
    )


def test_secrets_never_show_in_the_adapter_or_its_refusals() -> None:
    venue, _ = venue_with(error(401, -2015, "Invalid API-key, IP, or permissions for action."))

    async def refusal_messages() -> dict[str, str]:
        await venue.start()
        await venue.submit(btc_buy())
        for _ in range(100):
            if venue.messages():
                break
            await asyncio.sleep(0)
        messages = venue.messages()
        await venue.close()
        return messages

    messages = asyncio.run(refusal_messages())

    assert "-2015" in messages[COID]
    assert SECRET not in repr(venue)
    assert all(SECRET not in m for m in messages.values())
