"""The E*Trade adapter against recorded answers: every error path of preview -> place -> poll."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import unquote

import numpy as np
from venue_orders import AAPL, BRK, BTC, T0, orders, small_registry

from tickwise.model.ids import ClientOrderId
from tickwise.model.instruments import Venue
from tickwise.model.orders import ExecutionBatch, OrderBatch, OrderState, RejectReason
from tickwise.venues.base import OrderStatus
from tickwise.venues.capabilities import ETRADE
from tickwise.venues.credentials import Credential, demo_credential
from tickwise.venues.etrade.client import EtradeVenue
from tickwise.venues.etrade.errors import EtradeError
from tickwise.venues.etrade.oauth import hmac_sha1_signature, signature_base_string
from tickwise.venues.http import (
    HttpRequest,
    HttpResponse,
    RecordedTransport,
    TransportError,
    json_response,
)
from tickwise.venues.ratelimit import RateLimiter

WALL = 1_750_000_000.0  # the fake clock's epoch seconds at the start of each test
RATE_LIMIT_PAGE = b"<html><body>Number of requests exceeded the rate limit set</body></html>"


class FakeClock:
    """Wall and monotonic time that only `sleep` moves; every pause is recorded."""

    def __init__(self) -> None:
        self.wall = WALL
        self.mono = 0.0
        self.slept: list[float] = []

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


def credentials(*clients: int) -> dict[int, Credential]:
    return {c: demo_credential(c, Venue.ETRADE) for c in clients}


def make_venue(
    transport: RecordedTransport, clock: FakeClock, clients: tuple[int, ...] = (1,)
) -> EtradeVenue:
    return EtradeVenue(
        small_registry(),
        credentials(*clients),
        base_url="https://api.test",
        transport_factory=lambda: transport,
        poll_interval_s=None,
        clock=clock.time,
        sleep=clock.sleep,
        limiter=RateLimiter(ETRADE.limits, clock=clock.monotonic),
    )


def buy(client: int = 1, qty: float = 3.0, instrument: int = AAPL, signal: int = 1) -> Any:
    return orders([client], [instrument], [1], [qty], [190.0], signal=signal, venue=Venue.ETRADE)


async def next_round(venue: EtradeVenue, clock: FakeClock) -> None:
    """A polling round a second later (polls never wait for the account's 2/s order budget:
    they skip a round that has no room)."""
    clock.advance(1.0)
    await venue.refresh()


def coid_of(batch: Any) -> str:
    return bytes(batch.client_order_id[0]).decode()


# --- recorded answers ------------------------------------------------------------------------


def preview_ok(preview_id: int = 501) -> HttpResponse:
    return json_response(200, {"PreviewOrderResponse": {"PreviewIds": [{"previewId": preview_id}]}})


def place_ok(order_id: int) -> HttpResponse:
    return json_response(200, {"PlaceOrderResponse": {"OrderIds": [{"orderId": order_id}]}})


def entry(
    order_id: int,
    status: str,
    *,
    qty: float = 3,
    symbol: str = "AAPL",
    action: str = "BUY",
    price: float = 190.02,
    placed_s: float = WALL,
) -> dict[str, Any]:
    filled = qty if status == "EXECUTED" else 0
    return {
        "orderId": order_id,
        "OrderDetail": {  # a single object where JSON usually has an array: read either
            "placedTime": int(placed_s * 1000),
            "status": status,
            "priceType": "MARKET",
            "Instrument": [
                {
                    "Product": {"symbol": symbol, "securityType": "EQ"},
                    "orderAction": action,
                    "orderedQuantity": qty,
                    "filledQuantity": filled,
                    "averageExecutionPrice": price if filled else 0,
                    "estimatedCommission": 0.0,
                }
            ],
        },
    }


def listing(*entries: dict[str, Any]) -> HttpResponse:
    if not entries:
        return HttpResponse(204, {}, b"")  # E*Trade answers an empty list with no content
    return json_response(200, {"OrdersResponse": {"Order": list(entries)}})


def refused(code: int, message: str) -> HttpResponse:
    return json_response(400, {"Error": {"code": code, "message": message}})


def oauth_refusal(problem: str) -> HttpResponse:
    return HttpResponse(401, {}, f"oauth_problem={problem}".encode())


def rate_limited() -> HttpResponse:
    return HttpResponse(400, {"Content-Type": "text/html"}, RATE_LIMIT_PAGE)


# --- reading what the adapter sent ----------------------------------------------------------------


def oauth_params(request: HttpRequest) -> dict[str, str]:
    header = request.headers["Authorization"]
    assert header.startswith("OAuth ")
    fields = (item.partition("=") for item in header[len("OAuth ") :].split(", "))
    return {unquote(k): unquote(v.strip('"')) for k, _, v in fields}


def signed_by(request: HttpRequest, credential: Credential) -> bool:
    """Whether the request carries a valid HMAC-SHA1 signature with these keys."""
    params = oauth_params(request)
    claimed = params.pop("oauth_signature")
    base = signature_base_string(request.method, request.full_url, params.items())
    secret = credential.secret
    expected = hmac_sha1_signature(
        base, secret.reveal("consumer_secret"), secret.reveal("oauth_token_secret")
    )
    return params["oauth_consumer_key"] == credential.key_id and expected == claimed


def calls(transport: RecordedTransport) -> list[str]:
    """What was asked, as "METHOD last-path-part"."""
    return [f"{r.method} {r.url.rsplit('/', 1)[-1]}" for r in transport.requests]


def body_of(request: HttpRequest) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(request.body)
    return doc


def only(batch: ExecutionBatch) -> dict[str, Any]:
    assert len(batch) == 1, f"expected one outcome, got {len(batch)}"
    return {
        "coid": bytes(batch.client_order_id[0]).decode(),
        "state": OrderState(int(batch.state[0])),
        "reason": RejectReason(int(batch.reason[0])),
        "qty": float(batch.fill_qty[0]),
        "price": float(batch.fill_price[0]),
    }


# --- the order path -------------------------------------------------------------------------------


def test_market_order_is_previewed_then_placed_identically_signed_and_filled_from_the_list() -> (
    None
):
    async def scenario() -> None:
        clock, transport = FakeClock(), RecordedTransport()
        venue = make_venue(transport, clock)
        transport.answer(preview_ok(501), place_ok(77), listing(entry(77, "EXECUTED")))
        await venue.start()
        batch = buy(qty=3.0)

        await venue.submit(batch)
        await venue.wait_sent()
        assert venue.pending() == 1 and len(venue.poll(0)) == 0
        await next_round(venue, clock)
        outcome = only(venue.poll(0))

        preview, place, _ = transport.requests
        assert calls(transport) == ["POST preview.json", "POST place.json", "GET orders.json"]
        sent = body_of(preview)["PreviewOrderRequest"]
        assert sent["clientOrderId"] == coid_of(batch)
        order = sent["Order"][0]
        assert (order["priceType"], order["orderTerm"]) == ("MARKET", "GOOD_FOR_DAY")
        assert order["Instrument"][0]["quantity"] == 3  # whole shares, an integer
        placed = body_of(place)["PlaceOrderRequest"]
        assert placed.pop("PreviewIds") == [{"previewId": 501}]
        assert placed == sent  # the identical order
        cred = credentials(1)[1]
        assert all(signed_by(r, cred) for r in transport.requests)
        assert outcome == {
            "coid": coid_of(batch),
            "state": OrderState.FILLED,
            "reason": RejectReason.NONE,
            "qty": 3.0,
            "price": 190.02,
        }
        assert venue.pending() == 0
        await venue.close()

    run(scenario)


def test_refusal_at_preview_is_rejected_with_etrade_code_and_normalised_reason() -> None:
    async def scenario() -> None:
        clock, transport = FakeClock(), RecordedTransport()
        venue = make_venue(transport, clock)
        text = "The order you entered exceeds your available cash buying power."
        transport.answer(refused(1031, text))
        await venue.start()

        await venue.submit(buy())
        await venue.wait_sent()

        outcome = only(venue.poll(0))
        assert outcome["state"] is OrderState.REJECTED
        assert outcome["reason"] is RejectReason.INSUFFICIENT_BUYING_POWER
        assert calls(transport) == ["POST preview.json"]  # never placed
        status = await venue.query(ClientOrderId(coid_of(buy())))
        assert status is not None and status.venue_message == f"1031 {text}"
        await venue.close()

    run(scenario)


def test_fractions_and_crypto_are_refused_before_any_request() -> None:
    async def scenario() -> None:
        clock, transport = FakeClock(), RecordedTransport()
        venue = make_venue(transport, clock)
        await venue.start()
        batch = orders(
            [1, 1], [AAPL, BTC], [1, 1], [2.5, 1.0], [190.0, 60000.0], venue=Venue.ETRADE
        )

        await venue.submit(batch)
        await venue.wait_sent()

        out = venue.poll(0)
        assert [RejectReason(int(r)) for r in out.reason] == [
            RejectReason.INVALID_QUANTITY_INCREMENT,
            RejectReason.UNKNOWN_SYMBOL,
        ]
        assert transport.requests == []
        await venue.close()

    run(scenario)


# --- OAuth -------------------------------------------------------------------------------------


def test_bad_signature_rejects_the_order_without_placing_or_retrying() -> None:
    async def scenario() -> None:
        clock, transport = FakeClock(), RecordedTransport()
        venue = make_venue(transport, clock)
        transport.answer(oauth_refusal("signature_invalid"))
        await venue.start()

        await venue.submit(buy())
        await venue.wait_sent()

        outcome = only(venue.poll(0))
        assert (outcome["state"], outcome["reason"]) == (
            OrderState.REJECTED,
            RejectReason.VENUE_ERROR,
        )
        assert calls(transport) == ["POST preview.json"]
        assert venue.stats["auth_errors"] == 1
        await venue.close()

    run(scenario)


def test_refused_timestamp_is_signed_again_once_with_a_fresh_nonce() -> None:
    async def scenario() -> None:
        clock, transport = FakeClock(), RecordedTransport()
        venue = make_venue(transport, clock)
        transport.answer(oauth_refusal("timestamp_refused"), preview_ok(), place_ok(9))
        await venue.start()

        await venue.submit(buy())
        await venue.wait_sent()

        first, second, _ = transport.requests
        assert calls(transport) == ["POST preview.json", "POST preview.json", "POST place.json"]
        assert oauth_params(first)["oauth_nonce"] != oauth_params(second)["oauth_nonce"]
        assert venue.stats["resigned"] == 1
        assert venue.pending() == 1 and len(venue.poll(0)) == 0  # placed, working
        await venue.close()

    run(scenario)


def test_expired_token_is_renewed_then_the_call_is_sent_again() -> None:
    async def scenario() -> None:
        clock, transport = FakeClock(), RecordedTransport()
        venue = make_venue(transport, clock)
        renewed = HttpResponse(200, {}, b"Access Token has been renewed")
        transport.answer(oauth_refusal("token_expired"), renewed, preview_ok(), place_ok(9))
        await venue.start()

        await venue.submit(buy())
        await venue.wait_sent()

        assert calls(transport) == [
            "POST preview.json",
            "GET renew_access_token",
            "POST preview.json",
            "POST place.json",
        ]
        renew = transport.requests[1]
        assert renew.url == "https://api.test/oauth/renew_access_token"
        assert signed_by(renew, credentials(1)[1])
        assert venue.stats["renewals"] == 1 and venue.stats["auth_errors"] == 0
        await venue.close()

    run(scenario)


def test_token_the_venue_rejects_is_replaced_by_a_login_then_the_call_is_sent_again() -> None:
    async def scenario() -> None:
        clock, transport = FakeClock(), RecordedTransport()
        pages: list[str] = []

        async def authorize(url: str) -> str:
            pages.append(url)
            return "VERIF"

        venue = EtradeVenue(
            small_registry(),
            credentials(1),
            base_url="https://api.test",
            transport_factory=lambda: transport,
            poll_interval_s=None,
            clock=clock.time,
            sleep=clock.sleep,
            authorize_page="https://login.test/authorize",
            authorize=lambda _transport: authorize,
        )
        transport.answer(
            oauth_refusal("token_rejected"),
            HttpResponse(200, {}, b"oauth_token=REQ&oauth_token_secret=REQS"),
            HttpResponse(200, {}, b"oauth_token=NEW&oauth_token_secret=NEWS"),
            preview_ok(),
            place_ok(9),
        )
        await venue.start()

        await venue.submit(buy())
        await venue.wait_sent()

        assert calls(transport) == [
            "POST preview.json",
            "GET request_token",
            "GET access_token",
            "POST preview.json",
            "POST place.json",
        ]
        assert pages == [
            "https://login.test/authorize?key=" + credentials(1)[1].key_id + "&token=REQ"
        ]
        assert 'oauth_verifier="VERIF"' in transport.requests[2].headers["Authorization"]
        assert 'oauth_token="NEW"' in transport.requests[3].headers["Authorization"]
        assert venue.stats["logins"] == 1 and venue.pending() == 1
        await venue.close()

    run(scenario)


def test_token_past_midnight_without_a_way_to_log_in_fails_before_anything_is_sent() -> None:
    async def scenario() -> None:
        clock, transport = FakeClock(), RecordedTransport()
        venue = make_venue(transport, clock)
        await venue.start()
        clock.advance(24 * 3600)

        await venue.submit(buy())
        await venue.wait_sent()

        assert transport.requests == []
        (refused,) = venue.poll(0).state.tolist()
        assert refused == OrderState.REJECTED and venue.stats["auth_errors"] == 1
        await venue.close()

    run(scenario)


def test_token_idle_close_to_two_hours_is_renewed_before_the_next_call() -> None:
    async def scenario() -> None:
        clock, transport = FakeClock(), RecordedTransport()
        venue = make_venue(transport, clock)
        renewed = HttpResponse(200, {}, b"Access Token has been renewed")
        transport.answer(preview_ok(), place_ok(9), renewed, preview_ok(), place_ok(10))
        await venue.start()
        await venue.submit(buy(signal=1))
        await venue.wait_sent()

        clock.advance(2 * 3600 - 60)  # inside the renew margin, not yet inactive
        await venue.submit(buy(signal=2))
        await venue.wait_sent()

        assert calls(transport)[2:] == [
            "GET renew_access_token",
            "POST preview.json",
            "POST place.json",
        ]
        await venue.close()

    run(scenario)


# --- rate limits ---------------------------------------------------------------------------------


def test_rate_limit_page_pauses_the_account_then_the_order_goes_through() -> None:
    async def scenario() -> None:
        clock, transport = FakeClock(), RecordedTransport()
        venue = make_venue(transport, clock)
        transport.answer(rate_limited(), preview_ok(), place_ok(9))
        await venue.start()

        await venue.submit(buy())
        await venue.wait_sent()

        assert calls(transport) == ["POST preview.json", "POST preview.json", "POST place.json"]
        assert venue.stats["rate_limited"] == 1
        assert sum(clock.slept) >= 1.0  # held back before sending again
        assert venue.pending() == 1 and len(venue.poll(0)) == 0
        await venue.close()

    run(scenario)


def test_order_calls_are_paced_at_two_per_second_per_account() -> None:
    async def scenario() -> None:
        clock, transport = FakeClock(), RecordedTransport()
        venue = make_venue(transport, clock)
        sent_at: list[float] = []

        def answer(response: HttpResponse) -> Callable[[HttpRequest], HttpResponse]:
            def respond(request: HttpRequest) -> HttpResponse:
                sent_at.append(clock.monotonic())
                return response

            return respond

        transport.answer(
            *(answer(r) for r in (preview_ok(), place_ok(1), preview_ok(), place_ok(2)))
        )
        await venue.start()

        await venue.submit(
            orders([1, 1], [AAPL, BRK], [1, 1], [1, 1], [1, 1], signal=[1, 2], venue=Venue.ETRADE)
        )
        await venue.wait_sent()

        assert sent_at[2] - sent_at[0] >= 1.0  # the second order waits for the window
        await venue.close()

    run(scenario)


# --- unknown outcomes and duplicate ids --------------------------------------------------------


def test_unknown_outcome_after_transport_error_is_found_in_the_list_and_adopted_not_resent() -> (
    None
):
    async def scenario() -> None:
        clock, transport = FakeClock(), RecordedTransport()
        venue = make_venue(transport, clock)
        lost = TransportError("timeout", "POST place: no answer in 10 s")
        transport.answer(
            preview_ok(),
            lost,
            listing(entry(41, "OPEN", placed_s=WALL + 0.1)),
            listing(entry(41, "EXECUTED", price=190.05)),
        )
        await venue.start()

        await venue.submit(buy())
        await venue.wait_sent()
        await next_round(venue, clock)

        assert calls(transport).count("POST place.json") == 1  # never sent twice
        outcome = only(venue.poll(0))
        assert (outcome["state"], outcome["price"]) == (OrderState.FILLED, 190.05)
        assert venue.stats["unknown_resolved"] == 1
        await venue.close()

    run(scenario)


def test_unknown_outcome_after_500_not_in_the_list_is_resent_once_with_the_same_id() -> None:
    async def scenario() -> None:
        clock, transport = FakeClock(), RecordedTransport()
        venue = make_venue(transport, clock)
        server_error = HttpResponse(500, {}, b"Internal Server Error")
        transport.answer(preview_ok(1), server_error, listing(), preview_ok(2), place_ok(42))
        await venue.start()
        batch = buy()

        await venue.submit(batch)
        await venue.wait_sent()

        places = [r for r in transport.requests if r.url.endswith("place.json")]
        assert len(places) == 2
        ids = [body_of(r)["PlaceOrderRequest"]["clientOrderId"] for r in places]
        assert ids == [coid_of(batch)] * 2
        assert body_of(places[1])["PlaceOrderRequest"]["PreviewIds"] == [{"previewId": 2}]
        assert venue.stats["resent"] == 1
        await venue.close()

    run(scenario)


def test_an_order_of_ours_already_adopted_is_not_taken_for_the_lost_one() -> None:
    async def scenario() -> None:
        clock, transport = FakeClock(), RecordedTransport()
        venue = make_venue(transport, clock)
        lost = TransportError("connection", "server disconnected")
        transport.answer(
            preview_ok(1),
            place_ok(7),  # first order: placed, orderId 7
            preview_ok(2),
            lost,  # second order, same terms: no answer
            listing(entry(8, "OPEN", placed_s=WALL + 1), entry(7, "OPEN")),
            listing(entry(8, "EXECUTED", price=190.2), entry(7, "EXECUTED", price=190.1)),
        )
        await venue.start()
        first, second = buy(signal=1), buy(signal=2)

        await venue.submit(first)
        await venue.submit(second)
        await venue.wait_sent()
        await next_round(venue, clock)

        out = venue.poll(0)
        prices = {
            bytes(c).decode(): float(p)
            for c, p in zip(out.client_order_id, out.fill_price, strict=True)
        }
        assert prices == {coid_of(first): 190.1, coid_of(second): 190.2}
        await venue.close()

    run(scenario)


def test_duplicate_client_order_id_found_in_the_list_is_adopted_not_resent() -> None:
    async def scenario() -> None:
        clock, transport = FakeClock(), RecordedTransport()
        venue = make_venue(transport, clock)
        transport.answer(
            preview_ok(),
            refused(1035, "Duplicate clientOrderId."),  # it landed before (a restart)
            listing(entry(31, "EXECUTED")),
        )
        await venue.start()

        await venue.submit(buy())
        await venue.wait_sent()

        outcome = only(venue.poll(0))
        assert outcome["state"] is OrderState.FILLED
        assert calls(transport).count("POST place.json") == 1
        assert venue.stats["duplicate_ids"] == 1
        await venue.close()

    run(scenario)


def test_duplicate_client_order_id_not_found_is_rejected_as_duplicate() -> None:
    async def scenario() -> None:
        clock, transport = FakeClock(), RecordedTransport()
        venue = make_venue(transport, clock)
        old = entry(31, "EXECUTED", placed_s=T0 / 1e9 - 3600)  # older than the order itself
        transport.answer(preview_ok(), refused(1035, "Duplicate clientOrderId."), listing(old))
        await venue.start()

        await venue.submit(buy())
        await venue.wait_sent()

        outcome = only(venue.poll(0))
        assert (outcome["state"], outcome["reason"]) == (
            OrderState.REJECTED,
            RejectReason.DUPLICATE_CLIENT_ORDER_ID,
        )
        await venue.close()

    run(scenario)


def test_resubmitting_an_id_is_rejected_as_duplicate_and_leaves_the_first_order_alone() -> None:
    async def scenario() -> None:
        clock, transport = FakeClock(), RecordedTransport()
        venue = make_venue(transport, clock)
        transport.answer(preview_ok(), place_ok(5), listing(entry(5, "EXECUTED")))
        await venue.start()

        await venue.submit(buy())
        await venue.submit(buy())  # the same client order id again
        await venue.wait_sent()
        await next_round(venue, clock)

        out = venue.poll(0)
        states = sorted(
            (OrderState(int(s)), RejectReason(int(r)))
            for s, r in zip(out.state, out.reason, strict=True)
        )
        assert states == [
            (OrderState.FILLED, RejectReason.NONE),
            (OrderState.REJECTED, RejectReason.DUPLICATE_CLIENT_ORDER_ID),
        ]
        assert calls(transport).count("POST place.json") == 1
        await venue.close()

    run(scenario)


def test_stale_preview_is_previewed_again_and_placed() -> None:
    async def scenario() -> None:
        clock, transport = FakeClock(), RecordedTransport()
        venue = make_venue(transport, clock)
        stale = refused(101, "For your protection, we have timed out your original order request.")
        transport.answer(preview_ok(1), stale, preview_ok(2), place_ok(3))
        await venue.start()

        await venue.submit(buy())
        await venue.wait_sent()

        place_ids = [
            body_of(r)["PlaceOrderRequest"]["PreviewIds"][0]["previewId"]
            for r in transport.requests
            if r.url.endswith("place.json")
        ]
        assert place_ids == [1, 2]
        assert venue.stats["stale_previews"] == 1
        assert venue.pending() == 1 and len(venue.poll(0)) == 0
        await venue.close()

    run(scenario)


def test_list_failure_parks_the_order_and_a_later_refresh_finds_it() -> None:
    async def scenario() -> None:
        clock, transport = FakeClock(), RecordedTransport()
        venue = make_venue(transport, clock)
        down = TransportError("connection", "connection refused")
        transport.answer(preview_ok(), down, down, listing(entry(12, "EXECUTED")))
        await venue.start()

        await venue.submit(buy())
        await venue.wait_sent()
        assert venue.stats["parked"] == 1
        assert venue.pending() == 1 and len(venue.poll(0)) == 0

        await next_round(venue, clock)

        assert only(venue.poll(0))["state"] is OrderState.FILLED
        assert calls(transport).count("POST place.json") == 1
        await venue.close()

    run(scenario)


# --- malformed answers ----------------------------------------------------------------------------


def test_unreadable_place_answer_is_counted_and_the_order_found_in_the_list() -> None:
    async def scenario() -> None:
        clock, transport = FakeClock(), RecordedTransport()
        venue = make_venue(transport, clock)
        garbled = HttpResponse(200, {"Content-Type": "application/xml"}, b"<PlaceOrderResponse><Or")
        transport.answer(preview_ok(), garbled, listing(entry(55, "EXECUTED")))
        await venue.start()

        await venue.submit(buy())
        await venue.wait_sent()

        assert only(venue.poll(0))["state"] is OrderState.FILLED
        assert venue.stats["malformed"] == 1
        assert calls(transport).count("POST place.json") == 1
        await venue.close()

    run(scenario)


def test_unreadable_orders_list_is_counted_and_the_next_round_reads_the_outcome() -> None:
    async def scenario() -> None:
        clock, transport = FakeClock(), RecordedTransport()
        venue = make_venue(transport, clock)
        garbled = HttpResponse(200, {}, b'{"OrdersResponse": {"Order": [{"orderId": ')
        transport.answer(preview_ok(), place_ok(66), garbled, listing(entry(66, "EXECUTED")))
        await venue.start()
        await venue.submit(buy())
        await venue.wait_sent()

        await next_round(venue, clock)  # must not raise
        assert len(venue.poll(0)) == 0 and venue.stats["malformed"] == 1
        await next_round(venue, clock)

        assert only(venue.poll(0))["state"] is OrderState.FILLED
        await venue.close()

    run(scenario)


# --- polling only what is in flight ------------------------------------------------------------


def test_refresh_lists_only_the_accounts_with_orders_working() -> None:
    async def scenario() -> None:
        clock, transport = FakeClock(), RecordedTransport()
        venue = make_venue(transport, clock, clients=(1, 2, 3))
        transport.answer(preview_ok(), place_ok(1), listing(entry(1, "EXECUTED")))
        await venue.start()
        await next_round(venue, clock)  # nothing in flight: nothing asked
        assert transport.requests == []

        await venue.submit(buy(client=2))
        await venue.wait_sent()
        await next_round(venue, clock)
        await next_round(venue, clock)  # the order is done: nothing left to ask about

        lists = [r.url for r in transport.requests if r.url.endswith("orders.json")]
        assert lists == [f"https://api.test/v1/accounts/{credentials(2)[2].account_id}/orders.json"]
        assert only(venue.poll(0))["state"] is OrderState.FILLED
        await venue.close()

    run(scenario)


def test_reads_give_positions_and_cash_per_account() -> None:
    async def scenario() -> None:
        clock, transport = FakeClock(), RecordedTransport()
        venue = make_venue(transport, clock, clients=(1,))
        portfolio = {
            "PortfolioResponse": {
                "AccountPortfolio": {  # an object, not an array: read either
                    "totalPages": 1,
                    "Position": [
                        {"Product": {"symbol": "AAPL"}, "quantity": 4, "positionType": "LONG"},
                        {"Product": {"symbol": "BRK.B"}, "quantity": 2, "positionType": "SHORT"},
                    ],
                }
            }
        }
        balance = {"BalanceResponse": {"Computed": {"cashBalance": "12345.5"}}}
        transport.answer(json_response(200, portfolio), json_response(200, balance))
        await venue.start()

        book = await venue.positions()
        cash = await venue.balances()

        assert book.of_client(1) == {AAPL: 4.0, BRK: -2.0}
        assert cash.of(1) == 12345.5
        assert np.array_equal(cash.client, [1])
        await venue.close()

    run(scenario)


def test_a_fresh_process_locates_orders_an_earlier_one_placed_by_their_details() -> None:
    # Recovery after a crash: this adapter never sent these orders; E*Trade has no look-up by
    # clientOrderId, so each is found in its account's orders list by symbol, action, quantity
    # and time, and the one the venue never saw comes back None.
    async def scenario() -> None:
        clock, transport = FakeClock(), RecordedTransport()
        venue = make_venue(transport, clock)
        placed, never_sent = buy(qty=3.0, signal=7), buy(qty=5.0, signal=8)
        transport.answer(
            listing(entry(41, "EXECUTED", qty=3, price=190.05)),
            listing(entry(41, "EXECUTED", qty=3, price=190.05)),  # claimed now: not a match
        )
        await venue.start()

        found = await venue.locate(OrderBatch.concat([placed, never_sent]))

        assert calls(transport) == ["GET orders.json", "GET orders.json"]
        assert found[1] is None
        status = found[0]
        assert isinstance(status, OrderStatus)
        assert status.client_order_id == coid_of(placed)
        assert (status.state, status.filled_qty, status.avg_fill_price) == (
            OrderState.FILLED,
            3.0,
            190.05,
        )
        # Adopted: followed like one of ours, its outcome reported once by poll.
        assert venue.pending() == 1
        outcome = only(venue.poll(0))
        assert outcome["state"] == OrderState.FILLED
        assert venue.pending() == 0
        assert await venue.query(ClientOrderId(coid_of(placed))) == status
        await venue.close()

    run(scenario)


def test_an_account_whose_orders_cannot_be_listed_leaves_its_orders_unresolved() -> None:
    async def scenario() -> None:
        clock, transport = FakeClock(), RecordedTransport()
        venue = make_venue(transport, clock)
        transport.answer(json_response(500, {"Error": {"code": 1, "message": "down"}}))
        await venue.start()
        found = await venue.locate(buy(qty=3.0, signal=9))
        assert len(found) == 1 and isinstance(found[0], EtradeError)
        assert found[0].retryable
        await venue.close()

    run(scenario)
