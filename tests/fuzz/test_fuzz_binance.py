"""Fuzzing the Binance adapter's decoders: order answers, executionReports, myTrades, error
answers, exchangeInfo, the server time, REST answers and the user data stream.

Documented failures: an order, trade or event answer that lacks what the adapter needs is
`ValueError`; exchangeInfo is `ExchangeInfoError`; a 2xx answer that is not JSON is
`MalformedAnswerError` (a `BinanceError`); error answers never raise; user data frames that
cannot be read are counted (`stream_malformed`, `stream_unrouted`). Run deeper with
`TICKWISE_FUZZ_EXAMPLES=5000`.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections import Counter, deque
from collections.abc import Mapping
from typing import Any

import numpy as np
from fuzzing import (
    DEEP_ARRAY,
    DEEP_OBJECT,
    ODD_TEXTS,
    assert_amounts,
    budget,
    documents,
    raw_bytes,
    registry,
    wire_or_raw,
)
from hypothesis import example, given
from hypothesis import strategies as st

from tickwise.model.instruments import Venue
from tickwise.model.orders import OrderState, RejectReason, Side
from tickwise.venues.binance.errors import BinanceError, error_from_response
from tickwise.venues.binance.filters import ExchangeInfoError, SymbolRules, parse_exchange_info
from tickwise.venues.binance.reports import (
    ExecutionEvent,
    OrderReport,
    read_execution,
    read_order,
    read_trades_fee,
)
from tickwise.venues.binance.rest import BinanceRest, MalformedAnswerError
from tickwise.venues.binance.sending import LiveOrder, OrderFlow
from tickwise.venues.binance.signing import ServerClock
from tickwise.venues.binance.user_stream import UserDataStream
from tickwise.venues.binance.wire import ORDER_STATES
from tickwise.venues.http import HttpRequest, HttpResponse, RecordedTransport
from tickwise.venues.ratelimit import RateLimiter
from tickwise.venues.sim.server.binance_desk import BinanceDesk
from tickwise.venues.sim.server.common import make_context

CLIENT = 7
COID = "fuzz-order-1"
FULL_ANSWER: dict[str, Any] = {
    "symbol": "BTCUSDT",
    "orderId": 11,
    "orderListId": -1,
    "clientOrderId": COID,
    "transactTime": 1,
    "price": "0.00000000",
    "origQty": "0.01000000",
    "executedQty": "0.01000000",
    "cummulativeQuoteQty": "600.15000000",
    "status": "FILLED",
    "timeInForce": "GTC",
    "type": "MARKET",
    "side": "BUY",
    "fills": [
        {
            "price": "60015.00000000",
            "qty": "0.01000000",
            "commission": "0.00001000",
            "commissionAsset": "BTC",
            "tradeId": 3,
        }
    ],
}
ACK_ANSWER = {"symbol": "BTCUSDT", "orderId": 11, "clientOrderId": COID, "transactTime": 1}
EXECUTION: dict[str, Any] = {
    "e": "executionReport",
    "E": 1_700_000_000_000,
    "s": "BTCUSDT",
    "c": COID,
    "S": "BUY",
    "o": "MARKET",
    "q": "0.01000000",
    "C": "",
    "x": "TRADE",
    "X": "FILLED",
    "r": "NONE",
    "i": 11,
    "l": "0.01000000",
    "z": "0.01000000",
    "L": "60015.00000000",
    "n": "0.60015000",
    "N": "USDT",
    "Z": "600.15000000",
}
TRADES = [{"price": "60015.0", "qty": "0.01", "commission": "0.6", "commissionAsset": "USDT"}]
ERROR = {"code": -2010, "msg": "Account has insufficient balance for requested action."}
STATUSES = st.sampled_from((400, 401, 403, 404, 409, 418, 429, 500, 503))
BASE_OF = {"BTCUSDT": "BTC", "ETHUSDT": "ETH"}


def exchange_info() -> dict[str, object]:
    """The simulator's own exchangeInfo document for the fuzz universe."""
    ctx = make_context(Venue.BINANCE, registry(), [CLIENT], [1_000.0])
    return BinanceDesk(ctx).exchange_info({}, 1_700_000_000_000)


def assert_report(report: OrderReport | ExecutionEvent) -> None:
    assert report.client_order_id and report.symbol
    assert report.side in (Side.BUY, Side.SELL) and report.state in ORDER_STATES.values()
    assert_amounts(qty=report.qty, filled_qty=report.filled_qty, avg_price=report.avg_price)
    if report.fee is not None:
        assert_amounts(fee=report.fee)


# -- order answers and events -------------------------------------------------------------------


@budget()
@given(st.one_of(documents(FULL_ANSWER), documents(ACK_ANSWER)))
@example({**FULL_ANSWER, "executedQty": 10**400})
@example({**FULL_ANSWER, "executedQty": "1e-300", "cummulativeQuoteQty": "1e300"})
@example({**FULL_ANSWER, "origQty": "-1"})
def test_an_order_answer_is_a_valid_report_or_a_value_error(body: object) -> None:
    try:
        report = read_order(body, "BTC")
    except ValueError:
        return
    assert_report(report)


@budget()
@given(documents(EXECUTION).filter(lambda doc: isinstance(doc, Mapping)))
@example({**EXECUTION, "z": 10**400})
@example({**EXECUTION, "n": "-5"})
@example({**EXECUTION, "n": "1e300", "N": "BTC", "L": "1e300"})
def test_an_execution_report_is_a_valid_event_or_a_value_error(event: Mapping[str, object]) -> None:
    try:
        ev = read_execution(event, BASE_OF)
    except ValueError:
        return
    assert_report(ev)
    assert isinstance(ev.reason, RejectReason) and isinstance(ev.exec_type, str)


@budget()
@given(documents(TRADES))
@example([{**TRADES[0], "commission": 10**400}])
@example([{**TRADES[0], "commission": "1e300", "commissionAsset": "BTC", "price": "1e300"}])
def test_my_trades_give_a_valid_fee_or_a_value_error(body: object) -> None:
    try:
        fee = read_trades_fee(body, "BTC")
    except ValueError:
        return
    if fee is not None:
        assert_amounts(fee=fee)


@budget()
@given(st.lists(documents(EXECUTION).filter(lambda doc: isinstance(doc, Mapping)), max_size=4))
@example([{**EXECUTION, "X": "PARTIALLY_FILLED", "n": "1e308"}] * 2)
def test_execution_reports_settle_an_order_at_most_once(events: list[Mapping[str, object]]) -> None:
    flow = OrderFlow(rest(), Counter(), sleep=no_sleep, recv_window_ms=5_000, max_in_flight=1)
    order = LiveOrder(COID, 1, CLIENT, 2, Side.BUY, 0.01, 60_000.0, 0, 0, 0, "BTCUSDT", "BTC")
    flow.live[COID] = order
    for event in [*events, EXECUTION]:
        try:
            flow.apply(CLIENT, read_execution(event, BASE_OF))
        except ValueError:
            continue
    outcomes = flow.take(2**62)
    assert len(outcomes) == 1, "the order must end exactly once"
    outcome = outcomes[0]
    assert outcome.state.terminal
    assert_amounts(fill_qty=outcome.fill_qty, fill_price=outcome.fill_price, fee=outcome.fee)


# -- errors -------------------------------------------------------------------------------------


@budget()
@given(
    STATUSES,
    st.one_of(wire_or_raw(ERROR), documents(ERROR).filter(lambda doc: isinstance(doc, Mapping))),
    st.dictionaries(st.sampled_from(("Retry-After", "retry-after")), st.sampled_from(ODD_TEXTS)),
)
@example(429, b"", {"Retry-After": "inf"})
@example(500, DEEP_ARRAY, {})
def test_any_error_answer_maps_to_a_binance_error(
    status: int, body: bytes | Mapping[str, object], headers: dict[str, str]
) -> None:
    error = error_from_response(status, body, headers)
    assert isinstance(error, BinanceError) and error.http_status == status and error.message
    wait = error.retry_after_s
    assert wait is None or (math.isfinite(wait) and wait >= 0.0)
    assert error.reason is None or isinstance(error.reason, RejectReason)


# -- exchangeInfo --------------------------------------------------------------------------------


def assert_rules(rules: SymbolRules) -> None:
    n = len(rules)
    for grid in (rules.price, rules.lot, rules.market_lot):
        for column in (grid.lo, grid.hi, grid.step):
            assert column.shape == (n,) and np.isfinite(column).all() and (column >= 0).all()
        assert (grid.num >= 0).all() and (grid.den >= 1).all()
    for column in (rules.min_notional, rules.max_notional):
        assert column.shape == (n,) and np.isfinite(column).all() and (column >= 0).all()


def _one_filter(kind: str, **fields: str) -> dict[str, object]:
    return {"symbols": [{"symbol": "BTCUSDT", "filters": [{"filterType": kind, **fields}]}]}


@budget()
@given(st.one_of(wire_or_raw(exchange_info()), documents(exchange_info())))
@example(_one_filter("LOT_SIZE", minQty="0", maxQty="0", stepSize="1e1000000"))
@example(_one_filter("LOT_SIZE", minQty="1e400", maxQty="0", stepSize="0"))
@example(_one_filter("NOTIONAL", minNotional="1e999", maxNotional="0"))
@example(DEEP_OBJECT)
def test_exchange_info_gives_finite_rules_or_an_exchange_info_error(document: object) -> None:
    if not isinstance(document, bytes | Mapping):
        document = json.dumps(document)
    try:
        rules = parse_exchange_info(document)
    except ExchangeInfoError:
        return
    assert_rules(rules)


# -- REST answers and the server time ---------------------------------------------------------


async def no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


def rest(answer: HttpResponse | None = None) -> BinanceRest:
    client = BinanceRest(
        "https://api.binance.test",
        {},
        limiter=RateLimiter(()),
        local_ms=lambda: 1_700_000_000_000,
        stats=Counter(),
        sleep=no_sleep,
        rng=random.Random(1),
    )
    if answer is not None:

        def same(request: HttpRequest) -> HttpResponse:
            return answer

        client.transport = RecordedTransport(deque([same] * 32))
    return client


@budget()
@given(st.sampled_from((200, 400, 404, 500, 503)), wire_or_raw({"serverTime": 1_700_000_000_000}))
@example(200, DEEP_ARRAY)
@example(400, b'{"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."}')
def test_a_rest_answer_is_json_or_a_binance_error(status: int, body: bytes) -> None:
    client = rest(HttpResponse(status, {}, body))
    try:
        asyncio.run(client.sync_clock(samples=1))
    except MalformedAnswerError:
        assert client.stats["malformed"] >= 1
    except BinanceError:
        assert status != 200 or client.stats["malformed"] >= 1


@budget()
@given(documents({"serverTime": 1_700_000_000_000}).filter(lambda d: isinstance(d, Mapping)))
def test_the_server_time_is_an_integer_or_a_value_error(body: Mapping[str, object]) -> None:
    clock = ServerClock(lambda: 1_700_000_000_000)
    try:
        offset = clock.update_from_body(body, 1_700_000_000_000, 1_700_000_000_010)
    except ValueError:
        return
    assert isinstance(offset, int)


# -- the user data stream ----------------------------------------------------------------------


def user_stream(
    seen: list[tuple[int, Mapping[str, object]]], stats: Counter[str]
) -> UserDataStream:
    stream = UserDataStream(
        "wss://ws-api.binance.test/ws-api/v3",
        {},
        transport=RecordedTransport,
        clock=ServerClock(lambda: 0),
        recv_window_ms=5_000,
        on_event=lambda client, event: seen.append((client, event)),
        stats=stats,
        sleep=no_sleep,
        rng=random.Random(1),
    )
    stream.subscribed[3] = CLIENT
    return stream


SUBSCRIBED = {"id": "sub-7", "status": 200, "result": {"subscriptionId": 4}}
EVENT_FRAME = {"subscriptionId": 3, "event": EXECUTION}


@budget()
@given(
    st.lists(
        st.one_of(wire_or_raw(EVENT_FRAME), wire_or_raw(SUBSCRIBED), st.text(max_size=30)),
        max_size=6,
    )
)
@example([b'{"subscriptionId": [], "event": {}}', b'{"subscriptionId": {"a": 1}, "event": {}}'])
@example([DEEP_ARRAY])
def test_user_data_frames_are_events_or_counted(frames: list[bytes | str]) -> None:
    seen: list[tuple[int, Mapping[str, object]]] = []
    stats: Counter[str] = Counter()
    stream = user_stream(seen, stats)
    pending = {"sub-7": CLIENT}
    for frame in frames:
        stream._read(frame, pending)
    assert all(client == CLIENT and isinstance(event, Mapping) for client, event in seen)
    assert all(client == CLIENT for client in stream.subscribed.values())
    counted = sum(
        stats[name]
        for name in (
            "stream_malformed",
            "stream_unrouted",
            "stream_events",
            "stream_subscriptions",
            "stream_subscribe_errors",
        )
    )
    assert counted <= len(frames) and stats["stream_events"] == len(seen)


@budget(0.5)
@given(raw_bytes)
def test_user_data_raw_bytes_never_raise(frame: bytes) -> None:
    stats: Counter[str] = Counter()
    user_stream([], stats)._read(frame, {})


def test_a_filled_order_settles_from_a_valid_report() -> None:
    """The fixed part of the property above: the unmutated event ends the order as FILLED."""
    flow = OrderFlow(rest(), Counter(), sleep=no_sleep, recv_window_ms=5_000, max_in_flight=1)
    order = LiveOrder(COID, 1, CLIENT, 2, Side.BUY, 0.01, 60_000.0, 0, 0, 0, "BTCUSDT", "BTC")
    flow.live[COID] = order
    assert flow.apply(CLIENT, read_execution(EXECUTION, BASE_OF))
    (outcome,) = flow.take(2**62)
    assert outcome.state is OrderState.FILLED and outcome.fill_qty == 0.01
