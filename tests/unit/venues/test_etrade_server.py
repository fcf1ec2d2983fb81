"""The E*Trade adapter against the E*Trade simulator server, in process over real HTTP."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
import numpy as np
from venue_orders import AAPL, BRK, orders, small_registry

from tickwise.model.instruments import Venue
from tickwise.model.orders import ExecutionBatch, OrderBatch, OrderState, RejectReason
from tickwise.venues.credentials import Credential
from tickwise.venues.etrade.client import EtradeVenue
from tickwise.venues.etrade.login import follow_authorize_page
from tickwise.venues.etrade.oauth import (
    US_EASTERN,
    ConsumerCredentials,
    TokenCredentials,
    authorization_header,
)
from tickwise.venues.sim.faults import Fault, FaultInjector, FaultPlan
from tickwise.venues.sim.server.common import SimContext, SimServer, make_context
from tickwise.venues.sim.server.etrade import build_app
from tickwise.venues.sim.server.etrade_auth import signature_matches

PRICES = {AAPL: 190.0, BRK: 410.0}
CASH = 100_000.0
# A weekday noon in New York: two idle hours later it is still the same day there.
NOON_ET = datetime(2026, 6, 2, 12, 0, tzinfo=US_EASTERN).timestamp()


class WallClock:
    """A settable epoch clock shared by the server (token ages, timestamps) and the adapter."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


def context(
    clients: list[int], *, faults: FaultInjector | None = None, rate_limits: bool = False
) -> SimContext:
    ctx = make_context(
        Venue.ETRADE,
        small_registry(),
        clients,
        [CASH] * len(clients),
        ack_delay_ms=2,
        faults=faults,
        rate_limits=rate_limits,
    )
    ctx.exchange.mark(list(PRICES), list(PRICES.values()))
    return ctx


def adapter(ctx: SimContext, url: str, **kw: Any) -> EtradeVenue:
    creds = {int(c): ctx.accounts.credential(int(c)) for c in ctx.accounts.clients}
    kw.setdefault("rate_limits", ctx.rate_limits)
    kw.setdefault("poll_interval_s", 0.02)
    kw.setdefault("request_timeout_s", 2.0)
    return EtradeVenue(small_registry(), creds, base_url=url, **kw)


def market(
    client: list[int], inst: list[int], side: list[int], qty: list[float], signal: int
) -> OrderBatch:
    n = len(client)
    sig = np.arange(signal, signal + n)
    price = [PRICES[i] for i in inst]
    return orders(client, inst, side, qty, price, signal=sig, venue=Venue.ETRADE)


async def outcomes(venue: EtradeVenue, n: int, timeout_s: float = 8.0) -> ExecutionBatch:
    """Poll until `n` outcomes arrived (and no more)."""
    got: list[ExecutionBatch] = []
    deadline = time.monotonic() + timeout_s
    while sum(map(len, got)) < n:
        assert time.monotonic() < deadline, f"{sum(map(len, got))} of {n} outcomes: {venue.stats}"
        await asyncio.sleep(0.01)
        got.append(venue.poll(time.time_ns()))
    out = ExecutionBatch.concat(got)
    assert len(out) == n and venue.pending() == 0
    return out


def coids(batch: OrderBatch | ExecutionBatch) -> list[str]:
    return [bytes(c).decode() for c in batch.client_order_id]


async def assert_books_match(venue: EtradeVenue, ctx: SimContext) -> None:
    book, cash = await venue.positions(), await venue.balances()
    for client in ctx.accounts.clients.tolist():
        assert book.of_client(client) == ctx.exchange.positions(client)
        assert cash.of(client) == ctx.exchange.cash(client)


# --- orders, positions, balances ------------------------------------------------------------------


def test_market_orders_of_several_clients_fill_and_the_books_match_the_exchange() -> None:
    async def scenario() -> None:
        ctx = context([1, 2, 3])
        async with SimServer(ctx, build_app) as server:
            venue = adapter(ctx, server.url)
            await venue.start()
            buys = market([1, 1, 2, 3], [AAPL, BRK, AAPL, BRK], [1, 1, 1, 1], [5, 2, 3, 1], 1)
            sells = market([1, 2], [AAPL, AAPL], [-1, -1], [2, 3], 10)

            await venue.submit(buys)
            first = await outcomes(venue, len(buys))
            await venue.submit(sells)
            second = await outcomes(venue, len(sells))

            done = ExecutionBatch.concat([first, second])
            assert sorted(coids(done)) == sorted(coids(buys) + coids(sells))
            assert set(done.state.tolist()) == {OrderState.FILLED}
            for coid, client, qty, price in zip(
                coids(done), done.client, done.fill_qty, done.fill_price, strict=True
            ):
                placed = ctx.exchange.find(int(client), client_order_id=coid)
                assert placed is not None and placed.state is OrderState.FILLED
                assert (qty, price) == (placed.filled_qty, placed.avg_fill_price)
            assert ctx.exchange.positions(1) == {AAPL: 3.0, BRK: 2.0}
            assert ctx.exchange.positions(2) == {}
            await assert_books_match(venue, ctx)
            await venue.close()

    run(scenario)


def test_refusals_come_back_with_the_reason_and_nothing_reaches_the_exchange() -> None:
    async def scenario() -> None:
        ctx = context([1])
        async with SimServer(ctx, build_app) as server:
            venue = adapter(ctx, server.url)
            await venue.start()
            batch = market([1, 1], [AAPL, BRK], [1, -1], [10_000, 1], 1)  # too dear; not held

            await venue.submit(batch)
            out = await outcomes(venue, 2)

            reasons = dict(zip(coids(out), out.reason.tolist(), strict=True))
            assert reasons == {
                coids(batch)[0]: RejectReason.INSUFFICIENT_BUYING_POWER,
                coids(batch)[1]: RejectReason.INSUFFICIENT_POSITION,
            }
            assert ctx.exchange.orders_of(1) == []
            await venue.close()

    run(scenario)


def test_with_unknown_drop_timeout_and_5xx_faults_no_order_is_lost_or_doubled() -> None:
    async def scenario() -> None:
        plan = FaultPlan(
            {Fault.UNKNOWN: 0.25, Fault.DROP: 0.2, Fault.TIMEOUT: 0.1, Fault.ERROR_5XX: 0.15},
            stall_s=0.6,
        )
        ctx = context([1, 2, 3], faults=FaultInjector(plan, seed=11))
        async with SimServer(ctx, build_app) as server:
            venue = adapter(ctx, server.url, request_timeout_s=0.3)
            await venue.start()
            clients = [c for c in (1, 2, 3) for _ in range(4)]
            batch = market(clients, [AAPL, BRK] * 6, [1] * 12, [1, 2, 3] * 4, 1)

            await venue.submit(batch)
            out = await outcomes(venue, len(batch))

            assert sorted(coids(out)) == sorted(coids(batch))  # each exactly once
            assert set(out.state.tolist()) == {OrderState.FILLED}
            for client in (1, 2, 3):
                placed = [o.client_order_id for o in ctx.exchange.orders_of(client)]
                assert sorted(placed) == sorted(c for c in coids(batch) if c.endswith(f"{client}"))
            injected = ctx.faults.injected
            assert all(injected[f] > 0 for f in ("unknown", "drop", "timeout", "5xx"))
            assert venue.stats["unknown_resolved"] > 0 and venue.stats["resent"] > 0
            await assert_books_match(venue, ctx)
            await venue.close()

    run(scenario)


def test_server_rate_limit_page_is_honoured_and_every_order_still_fills() -> None:
    async def scenario() -> None:
        ctx = context([1], rate_limits=True)
        async with SimServer(ctx, build_app) as server:
            venue = adapter(ctx, server.url, rate_limits=False)  # the adapter does not pace
            await venue.start()
            batch = market([1, 1], [AAPL, BRK], [1, 1], [1, 1], 1)

            await venue.submit(batch)
            out = await outcomes(venue, 2)

            assert set(out.state.tolist()) == {OrderState.FILLED}
            assert venue.stats["rate_limited"] >= 1
            assert len(ctx.exchange.orders_of(1)) == 2
            await venue.close()

    run(scenario)


# --- signed HTTP calls: OAuth, preview/place, cancel ----------------------------------------------


class Signer:
    """Signed calls to the server with one client's keys, as any OAuth 1.0a client makes them."""

    def __init__(self, http: aiohttp.ClientSession, base: str, credential: Credential) -> None:
        self.http = http
        self.base = base
        self.credential = credential
        secret = credential.secret
        self.consumer = ConsumerCredentials(credential.key_id, secret.reveal("consumer_secret"))
        self.token = TokenCredentials(
            secret.reveal("oauth_token"), secret.reveal("oauth_token_secret")
        )

    @property
    def account(self) -> str:
        return f"{self.base}/v1/accounts/{self.credential.account_id}"

    async def __call__(
        self,
        method: str,
        url: str,
        *,
        body: str = "",
        xml: bool = True,
        timestamp: int | None = None,
        nonce: str | None = None,
        consumer: ConsumerCredentials | None = None,
    ) -> tuple[int, str]:
        header = authorization_header(
            method,
            url,
            consumer or self.consumer,
            self.token,
            timestamp=timestamp,
            nonce=nonce,
        )
        headers = {"Authorization": header}
        if body:
            headers["Content-Type"] = "application/xml" if xml else "application/json"
        async with self.http.request(method, url, data=body or None, headers=headers) as resp:
            return resp.status, await resp.text()


def equity_order(
    root: str, coid: str, qty: int, limit: float, preview_id: int | None = None
) -> str:
    """A LIMIT order request in XML, as pyetrade writes it."""
    ids = f"<PreviewIds><previewId>{preview_id}</previewId></PreviewIds>" if preview_id else ""
    return (
        f'<?xml version="1.0" encoding="utf-8"?><{root}><orderType>EQ</orderType>'
        f"<clientOrderId>{coid}</clientOrderId><Order><priceType>LIMIT</priceType>"
        f"<limitPrice>{limit}</limitPrice><orderTerm>GOOD_FOR_DAY</orderTerm>"
        "<marketSession>REGULAR</marketSession><Instrument><Product><securityType>EQ"
        "</securityType><symbol>AAPL</symbol></Product><orderAction>BUY</orderAction>"
        f"<quantityType>QUANTITY</quantityType><quantity>{qty}</quantity></Instrument>"
        f"</Order>{ids}</{root}>"
    )


def xml_value(text: str, tag: str) -> str:
    return text.split(f"<{tag}>", 1)[1].split(f"</{tag}>", 1)[0]


def test_rfc5849_example_signature_is_accepted_by_the_server_verifier() -> None:
    # RFC 5849 section 1.2 (venues.md section 4.1 gives no vector of its own).
    url = "http://photos.example.net/photos?file=vacation.jpg&size=original"
    oauth = {
        "oauth_consumer_key": "dpf43f3p2l4k3l03",
        "oauth_token": "nnch734d00sl2jdk",
        "oauth_signature_method": "HMAC-SHA1",
        "oauth_timestamp": "137131202",
        "oauth_nonce": "chapoH",
    }
    secrets = ("kd94hf93k423kf44", "pfkkdhi9sl3r4s00")

    assert signature_matches("GET", url, oauth.items(), *secrets, "MdpQcU8iPSUjWoN/UDMsK2sui9I=")
    assert not signature_matches(
        "GET", url, oauth.items(), *secrets, "MdpQcU8iPSUjWoN/UDMsK2sui9J="
    )
    assert not signature_matches(
        "POST", url, oauth.items(), *secrets, "MdpQcU8iPSUjWoN/UDMsK2sui9I="
    )


def test_oauth_refusals_name_the_problem() -> None:
    async def scenario() -> None:
        ctx = context([1, 2])
        async with SimServer(ctx, build_app) as server, aiohttp.ClientSession() as http:
            sign = Signer(http, server.url, ctx.accounts.credential(1))
            url = f"{server.url}/v1/accounts/list.json"
            wrong = ConsumerCredentials(sign.consumer.key, "not-the-secret")
            other = f"{server.url}/v1/accounts/{ctx.accounts.account_id(2)}/balance.json"

            ok = await sign("GET", url, nonce="n1")
            replayed = await sign("GET", url, nonce="n1")
            bad_signature = await sign("GET", url, consumer=wrong)
            stale = await sign("GET", url, timestamp=int(time.time()) - 600)
            not_yours = await sign("GET", other)

            assert ok[0] == 200 and ctx.accounts.account_id(1) in ok[1]
            assert replayed == (401, "oauth_problem=nonce_used")
            assert bad_signature == (401, "oauth_problem=signature_invalid")
            assert stale[0] == 401 and stale[1].startswith("oauth_problem=timestamp_refused")
            assert not_yours[0] == 400 and '"code":100' in not_yours[1]

    run(scenario)


def test_place_must_repeat_its_preview_else_error_101() -> None:
    async def scenario() -> None:
        ctx = context([1])
        async with SimServer(ctx, build_app) as server, aiohttp.ClientSession() as http:
            sign = Signer(http, server.url, ctx.accounts.credential(1))
            previewed = await sign(
                "POST",
                f"{sign.account}/orders/preview",
                body=equity_order("PreviewOrderRequest", "A1", 3, 150.0),
            )
            preview_id = int(xml_value(previewed[1], "previewId"))

            changed = equity_order("PlaceOrderRequest", "A1", 4, 150.0, preview_id)
            refused = await sign("POST", f"{sign.account}/orders/place", body=changed)

            assert previewed[0] == 200
            assert refused[0] == 400 and xml_value(refused[1], "code") == "101"
            assert ctx.exchange.orders_of(1) == []

    run(scenario)


def test_resting_limit_order_is_cancel_requested_then_cancelled() -> None:
    async def scenario() -> None:
        ctx = context([1])
        async with SimServer(ctx, build_app) as server, aiohttp.ClientSession() as http:
            sign = Signer(http, server.url, ctx.accounts.credential(1))
            orders_url = f"{sign.account}/orders"
            previewed = await sign(
                "POST",
                f"{orders_url}/preview",
                body=equity_order("PreviewOrderRequest", "L1", 10, 150.0),
            )
            preview_id = int(xml_value(previewed[1], "previewId"))
            placed = await sign(
                "POST",
                f"{orders_url}/place",
                body=equity_order("PlaceOrderRequest", "L1", 10, 150.0, preview_id),
            )
            order_id = int(xml_value(placed[1], "orderId"))
            assert ctx.exchange.locked(1) == 1500.0  # a resting buy holds its cash
            venue = adapter(ctx, server.url)
            await venue.start()
            working = await venue.open_orders(1)

            cancel = f"<CancelOrderRequest><orderId>{order_id}</orderId></CancelOrderRequest>"
            answered = await sign("PUT", f"{orders_url}/cancel", body=cancel)
            requested = await sign(
                "GET", f"{orders_url}.json?{urlencode({'status': 'CANCEL_REQUESTED'})}"
            )
            for _ in range(100):
                cancelled = await sign("GET", f"{orders_url}.json?status=CANCELLED")
                if cancelled[0] == 200:
                    break
                await asyncio.sleep(0.01)

            assert [(s.state, s.qty, s.client_order_id) for s in working] == [
                (OrderState.ACKED, 10.0, "")  # not ours: E*Trade does not echo the id
            ]
            assert answered[0] == 200 and xml_value(answered[1], "code") == "5011"
            assert requested[0] == 200 and f'"orderId":{order_id}' in requested[1]
            assert cancelled[0] == 200 and f'"orderId":{order_id}' in cancelled[1]
            placed_order = ctx.exchange.find(1, order_id=order_id)
            assert placed_order is not None and placed_order.state is OrderState.CANCELED
            assert ctx.exchange.locked(1) == 0.0
            await venue.close()

    run(scenario)


# --- token lifetime ----------------------------------------------------------------------------


def test_token_idle_two_hours_is_refused_then_renewed_by_the_adapter() -> None:
    async def scenario() -> None:
        clock = WallClock(NOON_ET)
        ctx = context([1])
        app = functools.partial(build_app, clock=clock)
        async with SimServer(ctx, app) as server:
            first = adapter(ctx, server.url, clock=clock)
            await first.start()
            await first.submit(market([1], [AAPL], [1], [1], 1))
            await outcomes(first, 1)
            await first.close()
            clock.now += 2 * 3600 + 60  # idle past 2 h: the server turns the token off
            second = adapter(ctx, server.url, clock=clock)  # knows nothing of the idle time
            await second.start()

            await second.submit(market([1], [AAPL], [1], [1], 2))
            out = await outcomes(second, 1)

            assert out.state.tolist() == [OrderState.FILLED]
            assert second.stats["renewals"] == 1
            await second.close()

    run(scenario)


def test_token_past_midnight_eastern_is_refused_and_the_order_rejected() -> None:
    async def scenario() -> None:
        clock = WallClock(NOON_ET)
        ctx = context([1])
        app = functools.partial(build_app, clock=clock)
        async with SimServer(ctx, app) as server:
            venue = adapter(ctx, server.url, clock=clock)
            await venue.start()
            await venue.balances()  # the server sees the token for the first time
            clock.now += 13 * 3600  # 01:00 the next day in New York

            await venue.submit(market([1], [AAPL], [1], [1], 1))
            out = await outcomes(venue, 1)

            assert out.state.tolist() == [OrderState.REJECTED]
            assert venue.stats["auth_errors"] == 1 and venue.stats["renewals"] == 0
            assert ctx.exchange.orders_of(1) == []
            await venue.close()

    run(scenario)


def test_token_past_midnight_eastern_logs_in_again_through_the_login_page() -> None:
    async def scenario() -> None:
        clock = WallClock(NOON_ET)
        ctx = context([1, 2])
        app = functools.partial(build_app, clock=clock)
        async with SimServer(ctx, app) as server:
            venue = adapter(
                ctx,
                server.url,
                clock=clock,
                authorize_page=f"{server.url}/e/t/etws/authorize",
                authorize=follow_authorize_page,
            )
            await venue.start()
            await venue.balances()  # the server sees both demo tokens for the first time
            clock.now += 13 * 3600  # 01:00 the next day in New York

            await venue.submit(market([1, 2], [AAPL, BRK], [1, 1], [2, 1], 1))
            out = await outcomes(venue, 2)

            assert out.state.tolist() == [OrderState.FILLED] * 2
            assert venue.stats["logins"] == 2 and venue.stats["auth_errors"] == 0
            await assert_books_match(venue, ctx)
            await venue.close()

    run(scenario)


def test_yesterdays_token_refused_by_the_venue_is_replaced_once_by_a_login() -> None:
    async def scenario() -> None:
        clock = WallClock(NOON_ET)
        ctx = context([1])
        app = functools.partial(build_app, clock=clock)
        login = {"authorize_page": "", "authorize": follow_authorize_page}
        async with SimServer(ctx, app) as server:
            login["authorize_page"] = f"{server.url}/e/t/etws/authorize"
            first = adapter(ctx, server.url, clock=clock, **login)
            await first.start()
            await first.balances()  # the server first sees the token at noon
            await first.close()
            clock.now += 12 * 3600 + 5  # just past midnight in New York
            second = adapter(ctx, server.url, clock=clock, **login)
            await second.start()  # takes the stored token as issued now: the venue knows better

            await second.submit(market([1], [AAPL], [1], [1], 1))
            out = await outcomes(second, 1)

            assert out.state.tolist() == [OrderState.FILLED]
            assert second.stats["logins"] == 1 and second.stats["auth_errors"] == 0
            assert len(ctx.exchange.orders_of(1)) == 1
            await second.close()

    run(scenario)
