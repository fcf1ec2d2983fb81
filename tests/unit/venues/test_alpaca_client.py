"""The Alpaca adapter against recorded answers: every error path of an order, no server."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pytest
from venue_orders import AAPL, BTC, OrderFactory

from tickwise.model.ids import ClientOrderId
from tickwise.model.instruments import InstrumentRegistry
from tickwise.model.orders import ExecutionBatch, OrderBatch, OrderState, RejectReason
from tickwise.venues.alpaca.auth import BrokerCredentials, TradingCredentials
from tickwise.venues.alpaca.client import AlpacaVenue
from tickwise.venues.http import (
    HttpRequest,
    HttpResponse,
    RecordedTransport,
    TransportError,
    json_response,
)

BASE = "https://paper-api.alpaca.test"
CLIENT = 7
KEY = TradingCredentials("PKTEST7", "test-secret-7")
ACCOUNT = "4db36989-0a1b-4c2d-8e3f-000000000007"


class LiveSocket:
    """A stream socket that stays open: answers the trade_updates handshake (when `handshake`)
    and then delivers what the test pushes; `drop()` closes it as a server would."""

    def __init__(self, *, handshake: bool = True) -> None:
        self.sent: list[str | bytes] = []
        self._incoming: asyncio.Queue[str | None] = asyncio.Queue()
        self._handshake = handshake

    async def send(self, message: str | bytes) -> None:
        self.sent.append(message)
        action = json.loads(message).get("action")
        if self._handshake and action == "authenticate":
            self.push({"stream": "authorization", "data": {"status": "authorized"}})
        elif self._handshake and action == "listen":
            self.push({"stream": "listening", "data": {"streams": ["trade_updates"]}})

    async def receive(self) -> str | bytes | None:
        return await self._incoming.get()

    async def close(self) -> None:
        self.drop()

    def push(self, doc: object) -> None:
        self._incoming.put_nowait(doc if isinstance(doc, str) else json.dumps(doc))

    def drop(self) -> None:
        self._incoming.put_nowait(None)


def alpaca_order(
    coid: str,
    status: str = "accepted",
    *,
    symbol: str = "AAPL",
    qty: str = "2",
    filled_qty: str = "0",
    avg: str | None = None,
    commission: str | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "61e69015-8549-4bfd-b9c3-01e75843f47d",
        "client_order_id": coid,
        "created_at": "2026-01-05T15:00:00.000000001Z",
        "symbol": symbol,
        "qty": qty,
        "filled_qty": filled_qty,
        "filled_avg_price": avg,
        "side": "buy",
        "type": "market",
        "time_in_force": "day",
        "status": status,
    }
    if commission is not None:
        doc["commission"] = commission
    return doc


def filled(coid: str, **fields: Any) -> dict[str, Any]:
    return alpaca_order(coid, "filled", filled_qty="2", avg="190.25", **fields)


def fill_event(coid: str) -> dict[str, Any]:
    return {"stream": "trade_updates", "data": {"event": "fill", "order": filled(coid)}}


def error(status: int, code: int, message: str, **headers: str) -> HttpResponse:
    return json_response(status, {"code": code, "message": message}, headers)


async def settle() -> None:
    """Let every task that is ready run to its next wait."""
    for _ in range(10):
        await asyncio.sleep(0)


def posts(transport: RecordedTransport) -> list[HttpRequest]:
    return [r for r in transport.requests if r.method == "POST"]


class Harness:
    """An adapter on a recorded transport, with its stream sockets."""

    def __init__(self, registry: InstrumentRegistry, **options: Any) -> None:
        self.transport = RecordedTransport()
        self.socket = LiveSocket()
        self.spare = LiveSocket()
        self.transport.sockets.extend([self.socket, self.spare])
        options.setdefault("outcome_timeout_s", 60.0)
        self.venue = AlpacaVenue.trading(
            registry,
            {CLIENT: KEY},
            base_url=BASE,
            transport_factory=lambda: self.transport,
            **options,
        )

    async def outcomes(self, n: int, timeout_s: float = 3.0) -> ExecutionBatch:
        """Poll until `n` outcomes arrived (and then once more, to catch any extra)."""
        got: list[ExecutionBatch] = []
        deadline = time.monotonic() + timeout_s
        while sum(len(b) for b in got) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
            got.append(self.venue.poll(time.time_ns()))
        await asyncio.sleep(0.02)
        got.append(self.venue.poll(time.time_ns()))
        return ExecutionBatch.concat(got)


def run(
    registry: InstrumentRegistry,
    scenario: Callable[[Harness], Awaitable[None]],
    **options: Any,
) -> Harness:
    async def main() -> Harness:
        harness = Harness(registry, **options)
        await harness.venue.start()
        try:
            await scenario(harness)
        finally:
            await harness.venue.close()
        return harness

    return asyncio.run(main())


def one_order(make_orders: OrderFactory, inst: int = AAPL, qty: float = 2.0) -> OrderBatch:
    return make_orders([CLIENT], [inst], [1], [qty], [190.0])


def coid_of(batch: OrderBatch) -> str:
    return bytes(batch.client_order_id[0]).decode()


def test_market_order_is_posted_in_alpacas_shape_and_filled_from_the_stream(
    registry: InstrumentRegistry, make_orders: OrderFactory
) -> None:
    batch = make_orders(
        [CLIENT, CLIENT], [AAPL, BTC], [1, -1], [2.0, 0.0015], [190.0, 5e4], signal=[1, 2]
    )
    stock, coin = (bytes(c).decode() for c in batch.client_order_id)
    out: list[ExecutionBatch] = []

    async def scenario(h: Harness) -> None:
        h.transport.answer(
            json_response(200, alpaca_order(stock)),
            json_response(200, alpaca_order(coin, symbol="BTC/USD", qty="0.0015")),
        )
        await h.venue.submit(batch)
        assert h.venue.pending() == 2
        while len(posts(h.transport)) < 2:
            await asyncio.sleep(0.001)
        h.socket.push(fill_event(stock))
        out.append(await h.outcomes(1))
        assert h.venue.pending() == 1

    h = run(registry, scenario)
    first, second = (json.loads(r.body) for r in posts(h.transport))
    assert first == {
        "symbol": "AAPL",
        "qty": "2",
        "side": "buy",
        "type": "market",
        "time_in_force": "day",
        "client_order_id": stock,
    }
    assert (second["symbol"], second["qty"], second["side"]) == ("BTC/USD", "0.0015", "sell")
    assert second["time_in_force"] == "gtc"  # crypto takes gtc or ioc only
    request = posts(h.transport)[0]
    assert request.url == BASE + "/v2/orders"
    assert request.headers["APCA-API-KEY-ID"] == KEY.key_id
    assert json.loads(h.socket.sent[0])["data"]["key_id"] == KEY.key_id
    assert json.loads(h.socket.sent[1]) == {
        "action": "listen",
        "data": {"streams": ["trade_updates"]},
    }
    done = out[0]
    assert done.client_order_id.tolist() == [stock.encode()]
    assert done.state.tolist() == [OrderState.FILLED]
    assert done.fill_qty.tolist() == [2.0] and done.fill_price.tolist() == [190.25]
    assert done.ts_sent.tolist() == batch.ts_sent[:1].tolist() and done.ts_ack[0] > 0


@pytest.mark.parametrize(
    "answer",
    [
        error(401, 40110000, "request is not authorized"),
        json_response(403, {"message": "forbidden."}),
    ],
    ids=["401", "403-forbidden"],
)
def test_refused_keys_reject_the_order_without_resending(
    registry: InstrumentRegistry, make_orders: OrderFactory, answer: HttpResponse
) -> None:
    out: list[ExecutionBatch] = []

    async def scenario(h: Harness) -> None:
        h.transport.answer(answer)
        await h.venue.submit(one_order(make_orders))
        out.append(await h.outcomes(1))

    h = run(registry, scenario)
    assert out[0].state.tolist() == [OrderState.REJECTED]
    assert out[0].reason.tolist() == [RejectReason.VENUE_ERROR]
    assert len(h.transport.requests) == 1
    assert h.venue.stats["auth_errors"] == 1


def test_insufficient_buying_power_is_rejected_with_its_reason(
    registry: InstrumentRegistry, make_orders: OrderFactory
) -> None:
    out: list[ExecutionBatch] = []

    async def scenario(h: Harness) -> None:
        h.transport.answer(error(403, 40310000, "insufficient buying power"))
        await h.venue.submit(one_order(make_orders))
        out.append(await h.outcomes(1))

    h = run(registry, scenario)
    assert out[0].state.tolist() == [OrderState.REJECTED]
    assert out[0].reason.tolist() == [RejectReason.INSUFFICIENT_BUYING_POWER]
    assert (h.venue.stats["rejected"], h.venue.stats["auth_errors"]) == (1, 0)


def test_rate_limited_post_is_repeated_after_retry_after_and_then_fills(
    registry: InstrumentRegistry, make_orders: OrderFactory
) -> None:
    batch = one_order(make_orders)
    coid = coid_of(batch)
    out: list[ExecutionBatch] = []

    async def scenario(h: Harness) -> None:
        limited = error(429, 42910000, "rate limit exceeded", **{"Retry-After": "0"})
        h.transport.answer(limited, json_response(200, alpaca_order(coid)))
        await h.venue.submit(batch)
        while len(posts(h.transport)) < 2:
            await asyncio.sleep(0.001)
        h.socket.push(fill_event(coid))
        out.append(await h.outcomes(1))

    h = run(registry, scenario)
    first, second = posts(h.transport)
    assert first.body == second.body  # the same order, the same client order id
    assert out[0].state.tolist() == [OrderState.FILLED]
    assert h.venue.stats["rate_limited"] == 1


def test_duplicate_client_order_id_is_looked_up_and_adopted_not_resent(
    registry: InstrumentRegistry, make_orders: OrderFactory
) -> None:
    batch = one_order(make_orders)
    coid = coid_of(batch)
    out: list[ExecutionBatch] = []

    async def scenario(h: Harness) -> None:
        h.transport.answer(
            error(422, 40010001, "client_order_id must be unique"),
            json_response(200, filled(coid)),
        )
        await h.venue.submit(batch)
        out.append(await h.outcomes(1))

    h = run(registry, scenario)
    assert [r.method for r in h.transport.requests] == ["POST", "GET"]
    assert h.transport.requests[1].url == (
        f"{BASE}/v2/orders:by_client_order_id?client_order_id={coid}"
    )
    assert out[0].state.tolist() == [OrderState.FILLED]
    assert out[0].fill_price.tolist() == [190.25]
    assert (h.venue.stats["duplicates"], h.venue.stats["unknown_resolved"]) == (1, 1)


UNKNOWN_OUTCOMES = [
    TransportError("timeout", "POST /v2/orders: no answer in 10 s"),
    error(500, 50010000, "internal server error"),
]


@pytest.mark.parametrize("unknown", UNKNOWN_OUTCOMES, ids=["timeout", "500"])
def test_unknown_outcome_is_resolved_by_client_order_id_not_resent(
    registry: InstrumentRegistry,
    make_orders: OrderFactory,
    unknown: HttpResponse | TransportError,
) -> None:
    batch = one_order(make_orders)
    coid = coid_of(batch)
    out: list[ExecutionBatch] = []

    async def scenario(h: Harness) -> None:
        h.transport.answer(unknown, json_response(200, alpaca_order(coid, "new")))
        await h.venue.submit(batch)
        while len(h.transport.requests) < 2 or h.venue.stats["unknown_resolved"] < 1:
            await asyncio.sleep(0.001)
        h.socket.push(fill_event(coid))
        out.append(await h.outcomes(1))

    h = run(registry, scenario)
    assert [r.method for r in h.transport.requests] == ["POST", "GET"]  # adopted, not resent
    assert out[0].state.tolist() == [OrderState.FILLED]
    assert h.venue.stats["unknown_outcomes"] == 1
    assert h.venue.stats["resent"] == 0


@pytest.mark.parametrize("unknown", UNKNOWN_OUTCOMES, ids=["timeout", "500"])
def test_unknown_outcome_of_an_order_that_did_not_land_is_resent_once_with_the_same_id(
    registry: InstrumentRegistry,
    make_orders: OrderFactory,
    unknown: HttpResponse | TransportError,
) -> None:
    batch = one_order(make_orders)
    coid = coid_of(batch)
    out: list[ExecutionBatch] = []

    async def scenario(h: Harness) -> None:
        h.transport.answer(
            unknown,
            error(404, 40410000, "order not found"),
            json_response(200, alpaca_order(coid)),
        )
        await h.venue.submit(batch)
        while len(posts(h.transport)) < 2:
            await asyncio.sleep(0.001)
        h.socket.push(fill_event(coid))
        out.append(await h.outcomes(1))

    h = run(registry, scenario)
    assert [r.method for r in h.transport.requests] == ["POST", "GET", "POST"]
    first, second = posts(h.transport)
    assert json.loads(second.body)["client_order_id"] == coid and first.body == second.body
    assert out[0].state.tolist() == [OrderState.FILLED]
    assert len(out[0]) == 1
    assert h.venue.stats["resent"] == 1


def test_malformed_answer_is_counted_and_resolved_without_crashing(
    registry: InstrumentRegistry, make_orders: OrderFactory
) -> None:
    batch = one_order(make_orders)
    coid = coid_of(batch)
    out: list[ExecutionBatch] = []

    async def scenario(h: Harness) -> None:
        garbage = HttpResponse(200, {"Content-Type": "text/html"}, b"<html>upstream</html>")
        h.transport.answer(garbage, json_response(200, filled(coid)))
        await h.venue.submit(batch)
        out.append(await h.outcomes(1))

    h = run(registry, scenario)
    assert [r.method for r in h.transport.requests] == ["POST", "GET"]
    assert out[0].state.tolist() == [OrderState.FILLED]
    assert h.venue.stats["malformed"] == 1


def test_malformed_stream_messages_are_counted_and_the_stream_keeps_going(
    registry: InstrumentRegistry, make_orders: OrderFactory
) -> None:
    batch = one_order(make_orders)
    coid = coid_of(batch)
    out: list[ExecutionBatch] = []

    async def scenario(h: Harness) -> None:
        h.transport.answer(json_response(200, alpaca_order(coid)))
        await h.venue.submit(batch)
        while not h.transport.requests:
            await asyncio.sleep(0.001)
        h.socket.push("{not json")
        h.socket.push({"stream": "trade_updates", "data": {"event": "fill", "order": {"id": 1}}})
        h.socket.push({"stream": "trade_updates", "data": "fill"})
        h.socket.push(fill_event(coid))
        out.append(await h.outcomes(1))

    h = run(registry, scenario)
    assert out[0].state.tolist() == [OrderState.FILLED]
    assert h.venue.stats["malformed_events"] == 3
    assert h.venue.stats["stream_reconnects"] == 0


def test_order_without_a_terminal_event_is_looked_up_after_the_outcome_timeout(
    registry: InstrumentRegistry, make_orders: OrderFactory
) -> None:
    batch = one_order(make_orders)
    coid = coid_of(batch)
    out: list[ExecutionBatch] = []

    async def scenario(h: Harness) -> None:
        h.transport.answer(json_response(200, alpaca_order(coid)), json_response(200, filled(coid)))
        await h.venue.submit(batch)
        out.append(await h.outcomes(1))

    h = run(registry, scenario, outcome_timeout_s=0.05)
    assert [r.method for r in h.transport.requests] == ["POST", "GET"]
    assert out[0].state.tolist() == [OrderState.FILLED]
    assert h.venue.stats["outcomes_by_query"] == 1


def test_stream_reconnect_looks_up_every_open_order(
    registry: InstrumentRegistry, make_orders: OrderFactory
) -> None:
    batch = one_order(make_orders)
    coid = coid_of(batch)
    out: list[ExecutionBatch] = []

    async def scenario(h: Harness) -> None:
        h.transport.answer(json_response(200, alpaca_order(coid)))
        await h.venue.submit(batch)
        while not h.transport.requests:
            await asyncio.sleep(0.001)
        await settle()  # the POST answer is applied: the order is working
        h.transport.answer(json_response(200, filled(coid)))  # the fill was missed
        h.socket.drop()
        out.append(await h.outcomes(1))

    h = run(registry, scenario)
    assert [r.method for r in h.transport.requests] == ["POST", "GET"]
    assert out[0].state.tolist() == [OrderState.FILLED]
    assert h.venue.stats["stream_reconnects"] == 1
    assert h.spare.sent  # the second socket authenticated and listened


def test_client_order_id_submitted_twice_is_refused_without_sending(
    registry: InstrumentRegistry, make_orders: OrderFactory
) -> None:
    batch = one_order(make_orders)
    coid = coid_of(batch)
    out: list[ExecutionBatch] = []

    async def scenario(h: Harness) -> None:
        h.transport.answer(json_response(200, alpaca_order(coid)))
        await h.venue.submit(batch)
        await h.venue.submit(batch)
        out.append(await h.outcomes(1))

    h = run(registry, scenario)
    assert len(posts(h.transport)) == 1
    assert out[0].reason.tolist() == [RejectReason.DUPLICATE_CLIENT_ORDER_ID]


def test_query_and_cancel_address_the_order_by_client_order_id(
    registry: InstrumentRegistry,
) -> None:
    coid = ClientOrderId("T00000000000010007")
    results: list[Any] = []

    async def scenario(h: Harness) -> None:
        h.transport.answer(
            error(404, 40410000, "order not found"),
            json_response(200, alpaca_order(coid, "new", symbol="BTCUSD")),
            json_response(200, alpaca_order(coid, "new")),
            HttpResponse(204, {}, b""),
        )
        results.append(await h.venue.query(coid))
        results.append(await h.venue.query(coid))
        await h.venue.cancel(coid)

    h = run(registry, scenario)
    missing, working = results
    assert missing is None
    assert (working.state, working.instrument, working.client) == (OrderState.ACKED, BTC, CLIENT)
    delete = h.transport.requests[-1]
    assert (delete.method, delete.url) == ("DELETE", f"{BASE}/v2/orders/{alpaca_order(coid)['id']}")


class EventSource:
    """The Broker API event stream, recorded: one `LiveSocket` per connection."""

    def __init__(self) -> None:
        self.socket = LiveSocket(handshake=False)
        self.calls: list[tuple[str, Mapping[str, str], Sequence[tuple[str, str]]]] = []

    async def __call__(
        self, url: str, headers: Mapping[str, str], params: Sequence[tuple[str, str]], t: float
    ) -> LiveSocket:
        self.calls.append((url, headers, params))
        return self.socket


def test_broker_mode_trades_each_account_under_its_path_and_reads_the_event_stream(
    registry: InstrumentRegistry, make_orders: OrderFactory
) -> None:
    batch = one_order(make_orders)
    coid = coid_of(batch)
    transport = RecordedTransport()
    events = EventSource()
    out: list[ExecutionBatch] = []
    firm = BrokerCredentials("CKFIRM", "firm-secret")

    async def main() -> None:
        venue = AlpacaVenue.broker(
            registry,
            firm,
            {CLIENT: ACCOUNT},
            base_url=BASE,
            transport_factory=lambda: transport,
            event_source=events,
            outcome_timeout_s=60.0,
        )
        await venue.start()
        transport.answer(json_response(200, alpaca_order(coid)))
        await venue.submit(batch)
        while not transport.requests:
            await asyncio.sleep(0.001)
        order = filled(coid, commission="0.5")
        events.socket.push({"account_id": "someone-else", "event_id": 1, "event": "fill"})
        events.socket.push({"account_id": ACCOUNT, "event_id": 2, "event": "fill", "order": order})
        deadline = time.monotonic() + 3.0
        while not out and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
            if len(got := venue.poll(time.time_ns())):
                out.append(got)
        await venue.close()

    asyncio.run(main())
    request = transport.requests[0]
    assert request.url == f"{BASE}/v1/trading/accounts/{ACCOUNT}/orders"
    expected = "Basic " + base64.b64encode(b"CKFIRM:firm-secret").decode()
    assert request.headers["Authorization"] == expected
    assert events.calls[0][0] == f"{BASE}/v1/events/trades"
    assert out[0].state.tolist() == [OrderState.FILLED]
    assert out[0].fee.tolist() == [0.5]
    assert np.array_equal(out[0].client, [CLIENT])
