"""Fuzzing the Alpaca adapter's decoders: orders, errors, rate-limit headers, REST reads and
the trade-event streams.

Documented failures: an unreadable order is `MalformedOrderError`, a read that cannot be
answered is `AlpacaError`; error bodies and headers never raise; stream frames that cannot be
read are counted in `malformed_events`. Run deeper with `TICKWISE_FUZZ_EXAMPLES=5000`.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections import Counter, deque
from collections.abc import Mapping
from typing import Any

from fuzzing import (
    DEEP_ARRAY,
    DEEP_OBJECT,
    ODD_TEXTS,
    assert_amounts,
    budget,
    documents,
    json_values,
    raw_bytes,
    registry,
    wire_or_raw,
)
from hypothesis import example, given
from hypothesis import strategies as st

from tickwise.model.orders import OrderState, RejectReason
from tickwise.venues.alpaca.auth import BrokerCredentials, TradingCredentials, TradingPaths
from tickwise.venues.alpaca.errors import (
    AlpacaError,
    AlpacaErrorKind,
    error_from_response,
    rate_limit_from_headers,
)
from tickwise.venues.alpaca.orders import (
    STATUS_STATES,
    AlpacaOrder,
    MalformedOrderError,
    SymbolIndex,
    parse_order,
)
from tickwise.venues.alpaca.rest import AccountRoute, AlpacaRequests, retry_after_s
from tickwise.venues.alpaca.sending import OrderFlow
from tickwise.venues.alpaca.streams import BrokerEventStream, TradeUpdatesStream, decode_frame
from tickwise.venues.alpaca.tracking import OrderTracker, TrackedOrder
from tickwise.venues.capabilities import ALPACA
from tickwise.venues.http import HttpRequest, HttpResponse, RecordedTransport, RecordedWebSocket

BASE = "https://paper-api.alpaca.test"
CLIENT = 7
COID = "fuzz-order-1"
ORDER: dict[str, Any] = {
    "id": "61e69015-8549-4bfd-b9c3-01e75843f47d",
    "client_order_id": COID,
    "created_at": "2026-01-05T15:00:00.000000001Z",
    "symbol": "AAPL",
    "qty": "2",
    "filled_qty": "2",
    "filled_avg_price": "190.25",
    "commission": "0.01",
    "side": "buy",
    "type": "market",
    "time_in_force": "day",
    "status": "filled",
}
ERROR = {"code": 40310000, "message": "insufficient buying power"}
POSITION = {"symbol": "BTCUSD", "qty": "0.5", "side": "long", "market_value": "30000"}
ACCOUNT = {"id": "acct", "cash": "100000.25", "buying_power": "200000"}
TRADE_UPDATE = {"stream": "trade_updates", "data": {"event": "fill", "order": ORDER}}
BROKER_EVENT = {"event_id": 11, "account_id": "acct-7", "event": "fill", "order": ORDER}
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After")
ERROR_STATUSES = st.sampled_from((400, 401, 403, 404, 422, 429, 500, 502, 503, 504))
header_values = st.one_of(st.text(max_size=12), st.sampled_from(ODD_TEXTS))


def assert_order(order: AlpacaOrder) -> None:
    assert order.order_id and order.client_order_id and order.symbol
    assert order.state is STATUS_STATES[order.status]
    assert_amounts(
        qty=order.qty, filled_qty=order.filled_qty, price=order.filled_avg_price, fee=order.fee
    )


# -- orders ------------------------------------------------------------------------------------


@budget()
@given(documents(ORDER))
@example({**ORDER, "qty": 10**400})
@example({**ORDER, "filled_qty": "-2"})
@example({**ORDER, "commission": -(10**400)})
def test_an_order_object_parses_to_valid_amounts_or_is_malformed(doc: object) -> None:
    try:
        order = parse_order(doc)
    except MalformedOrderError:
        return
    assert_order(order)


@budget()
@given(wire_or_raw(ORDER))
@example(DEEP_ARRAY)
@example(DEEP_OBJECT)
def test_an_order_answer_on_the_wire_is_an_order_or_malformed(body: bytes) -> None:
    """`find_order` reads a 200 answer into an order, `MalformedOrderError`, or nothing else."""
    transport = RecordedTransport().answer(HttpResponse(200, {}, body))
    try:
        order = asyncio.run(requests(transport).find_order(route(), COID))
    except (MalformedOrderError, AlpacaError):
        return
    assert order is not None
    assert_order(order)


# -- errors and headers ---------------------------------------------------------------------------


@budget()
@given(ERROR_STATUSES, wire_or_raw(ERROR))
@example(500, DEEP_OBJECT)
def test_any_error_answer_maps_to_an_alpaca_error(status: int, body: bytes) -> None:
    error = error_from_response(status, body)
    assert isinstance(error, AlpacaError) and error.http_status == status
    assert isinstance(error.message, str) and error.message
    assert error.retryable == (error.kind in (AlpacaErrorKind.SERVER, AlpacaErrorKind.RATE_LIMITED))
    reason = error.reject_reason
    assert reason is None or isinstance(reason, RejectReason)


@budget()
@given(st.dictionaries(st.sampled_from(RATE_HEADERS), header_values))
@example({"Retry-After": "inf"})
@example({"Retry-After": "1e400"})
def test_rate_limit_headers_give_a_finite_wait_or_none(headers: dict[str, str]) -> None:
    wait = retry_after_s(headers)
    assert wait is None or (math.isfinite(wait) and wait >= 0.0)
    limit = rate_limit_from_headers(headers)
    if limit is not None:
        assert all(isinstance(v, int) for v in (limit.limit, limit.remaining, limit.reset_epoch_s))


# -- REST reads ---------------------------------------------------------------------------------


def route() -> AccountRoute:
    return AccountRoute(CLIENT, {}, TradingPaths(), {"key": "fuzz"}, {"requests": 1.0})


def requests(transport: RecordedTransport, stats: Counter[str] | None = None) -> AlpacaRequests:
    return AlpacaRequests(
        transport,
        BASE,
        ALPACA,
        stats if stats is not None else Counter(),
        max_in_flight=1,
        timeout_s=1.0,
        rate_limits=False,
    )


def always(response: HttpResponse) -> RecordedTransport:
    """A venue that gives the same answer to every request."""

    def answer(request: HttpRequest) -> HttpResponse:
        return response

    return RecordedTransport(deque([answer] * 8))


@budget()
@given(st.one_of(wire_or_raw([POSITION]), st.builds(json.dumps, documents([POSITION]))))
@example(b'[{"symbol": "AAPL", "qty": 1' + b"0" * 400 + b"}]")
def test_positions_are_finite_or_counted_as_malformed(body: bytes | str) -> None:
    stats: Counter[str] = Counter()
    transport = always(HttpResponse(200, {}, body if isinstance(body, bytes) else body.encode()))
    try:
        held = asyncio.run(requests(transport, stats).positions(route(), SymbolIndex(registry())))
    except AlpacaError as error:
        assert error.kind is AlpacaErrorKind.SERVER and stats["malformed"] == 1
        return
    for instrument, qty in held:
        assert 0 <= instrument < len(registry()) and math.isfinite(qty)


@budget()
@given(st.one_of(wire_or_raw(ACCOUNT), st.builds(json.dumps, documents(ACCOUNT))))
@example(b'{"cash": 1' + b"0" * 400 + b"}")
@example(b'{"cash": "inf"}')
@example(b'{"cash": NaN}')
def test_cash_is_a_number_or_nan_counted_as_malformed(body: bytes | str) -> None:
    stats: Counter[str] = Counter()
    transport = always(HttpResponse(200, {}, body if isinstance(body, bytes) else body.encode()))
    try:
        cash = asyncio.run(requests(transport, stats).cash(route()))
    except AlpacaError:
        assert stats["malformed"] == 1
        return
    assert math.isfinite(cash) or stats["malformed"] == 1


@budget(0.5)
@given(st.one_of(wire_or_raw([ORDER]), st.builds(json.dumps, documents([ORDER]))))
def test_open_orders_are_objects_or_the_read_fails_clearly(body: bytes | str) -> None:
    transport = always(HttpResponse(200, {}, body if isinstance(body, bytes) else body.encode()))
    try:
        rows = asyncio.run(requests(transport).get_all_open_orders(route()))
    except AlpacaError:
        return
    assert all(isinstance(row, Mapping) for row in rows)


# -- streams and events ---------------------------------------------------------------------------


def frames(doc: object) -> st.SearchStrategy[list[str | bytes]]:
    text = st.builds(json.dumps, documents(doc))
    return st.lists(st.one_of(wire_or_raw(doc), text, st.text(max_size=40)), max_size=6)


def read_all(stream: TradeUpdatesStream | BrokerEventStream, incoming: list[str | bytes]) -> None:
    socket = RecordedWebSocket(deque(incoming))
    asyncio.run(stream._read(socket))


@budget()
@given(frames(TRADE_UPDATE))
@example([DEEP_ARRAY, b"\x92\x93", json.dumps(TRADE_UPDATE)])
def test_trade_updates_frames_are_events_or_counted(incoming: list[str | bytes]) -> None:
    seen: list[Mapping[str, Any]] = []
    stats: dict[str, int] = {}
    stream = TradeUpdatesStream(
        RecordedTransport(),
        "wss://paper-api.alpaca.test/stream",
        TradingCredentials("PKFUZZ", "fuzz-secret"),
        CLIENT,
        lambda client, data: seen.append(data),
        lambda: None,
        stats,
        1.0,
        random.Random(1),
    )
    read_all(stream, incoming)
    assert all(isinstance(data, Mapping) for data in seen)
    assert len(seen) + stats.get("malformed_events", 0) <= len(incoming)


@budget()
@given(frames(BROKER_EVENT))
@example([json.dumps(BROKER_EVENT), json.dumps({**BROKER_EVENT, "event_id": 11})])
def test_broker_events_are_handed_over_once_per_event_id(incoming: list[str | bytes]) -> None:
    ids: list[int] = []

    def on_event(client: int, doc: Mapping[str, Any]) -> None:
        assert client == CLIENT
        event_id = doc.get("event_id")
        if isinstance(event_id, int) and not isinstance(event_id, bool):
            ids.append(event_id)

    stats: dict[str, int] = {}
    stream = BrokerEventStream(
        connector=lambda *args: asyncio.sleep(0, RecordedWebSocket()),
        url=f"{BASE}/v1/events/trades",
        credentials=BrokerCredentials("CKFUZZ", "fuzz-secret"),
        client_of_account={"acct-7": CLIENT},
        on_event=on_event,
        on_reconnect=lambda: None,
        stats=stats,
        timeout_s=1.0,
        rng=random.Random(1),
    )
    read_all(stream, incoming)
    assert ids == sorted(set(ids)), "an event id was handed over twice or out of order"


@budget()
@given(st.one_of(wire_or_raw(TRADE_UPDATE), st.text(max_size=60)))
def test_decode_frame_never_raises(frame: bytes | str) -> None:
    decode_frame(frame)


@budget()
@given(st.lists(documents(TRADE_UPDATE["data"]), min_size=1, max_size=4))
def test_order_events_finish_an_order_at_most_once_with_valid_amounts(
    events: list[Any],
) -> None:
    stats: Counter[str] = Counter()
    tracker = OrderTracker(outcome_timeout_s=60.0)
    flow = OrderFlow(requests(RecordedTransport()), tracker, stats, max_attempts=3, timeout_s=1.0)
    tracker.add(TrackedOrder(route(), COID, 1, CLIENT, 0, 1, 0, 0, 0))
    for data in [*events, TRADE_UPDATE["data"]]:
        if isinstance(data, Mapping):
            flow.on_event(CLIENT, data)
    batch = tracker.take()
    assert len(batch) == 1, "the order must end exactly once"
    assert OrderState(int(batch.state[0])).terminal
    assert_amounts(
        fill_qty=float(batch.fill_qty[0]),
        fill_price=float(batch.fill_price[0]),
        fee=float(batch.fee[0]),
    )
    assert stats["events"] == sum(isinstance(d, Mapping) for d in events) + 1


@budget(0.5)
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=4), raw_bytes)
def test_stream_handlers_take_any_object(data: dict[str, Any], junk: bytes) -> None:
    """A decoded frame of any shape is handed over or counted, never raised."""
    stats: dict[str, int] = {}
    seen: list[object] = []
    stream = TradeUpdatesStream(
        RecordedTransport(),
        "wss://paper-api.alpaca.test/stream",
        TradingCredentials("PKFUZZ", "fuzz-secret"),
        CLIENT,
        lambda client, doc: seen.append(doc),
        lambda: None,
        stats,
        1.0,
        random.Random(1),
    )
    read_all(stream, [json.dumps({"stream": "trade_updates", "data": data}), junk])
    assert seen and isinstance(seen[0], Mapping) and set(seen[0]) == set(data)
