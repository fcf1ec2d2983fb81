"""The Binance adapter against the simulated Binance server, in process, over real HTTP and
WebSockets on 127.0.0.1; and the server's own protocol checks (signatures, limits, streams)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from venue_orders import BTC, ETH, orders, small_registry

from tickwise.model.instruments import Venue
from tickwise.model.orders import ExecutionBatch, OrderState, RejectReason
from tickwise.model.ticks import TickBatch, TickKind
from tickwise.venues.binance.client import BinanceVenue
from tickwise.venues.binance.signing import API_KEY_HEADER, SigningKey, signed_query
from tickwise.venues.capabilities import LimitRule
from tickwise.venues.credentials import Credential, CredentialKind, Secret, demo_credential
from tickwise.venues.sim.faults import Fault, FaultInjector, FaultPlan
from tickwise.venues.sim.server.binance import build_app
from tickwise.venues.sim.server.binance_gate import ApiKeys, signed_payload
from tickwise.venues.sim.server.common import SimContext, SimServer, make_context

CLIENTS = [1, 2, 3]
CASH = 100_000.0
BTC_PX, ETH_PX = 60_000.0, 3_000.0
# venues.md §3.2: the documented HMAC example (key, secret, payload, signature).
DOC_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_PAYLOAD = (
    "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
    "&recvWindow=5000&timestamp=1499827319559"
)
DOC_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
# Binance's example of the same order split between query and body: signed as query + body.
DOC_QUERY_PART, DOC_BODY_PART = DOC_PAYLOAD.split("&quantity")
DOC_BODY_PART = "quantity" + DOC_BODY_PART
DOC_MIXED_SIGNATURE = "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"

App = Callable[[SimContext], aiohttp.web.Application]


def context(faults: FaultInjector | None = None) -> SimContext:
    ctx = make_context(
        Venue.BINANCE, small_registry(), CLIENTS, [CASH] * 3, ack_delay_ms=1.0, faults=faults
    )
    ctx.exchange.mark([BTC, ETH], [BTC_PX, ETH_PX])
    return ctx


def adapter(server: SimServer, **options: Any) -> BinanceVenue:
    credentials = options.pop("credentials", None) or {
        c: demo_credential(c, Venue.BINANCE) for c in CLIENTS
    }
    return BinanceVenue(
        small_registry(),
        credentials,
        base_url=server.url,
        stream_url=f"{server.ws_url}/ws-api/v3",
        **options,
    )


async def outcomes(venue: BinanceVenue, timeout_s: float = 10.0) -> ExecutionBatch:
    """Poll until nothing is pending."""
    deadline = time.monotonic() + timeout_s
    collected = []
    while True:
        collected.append(venue.poll(time.time_ns()))
        if venue.pending() == 0:
            return ExecutionBatch.concat(collected)
        assert time.monotonic() < deadline, f"{venue.pending()} orders still pending"
        await asyncio.sleep(0.005)


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def key_of(client: int) -> SigningKey:
    cred = demo_credential(client, Venue.BINANCE)
    return SigningKey(cred.key_id, "hmac", cred.secret.reveal("secret"))


async def signed(
    session: aiohttp.ClientSession,
    server: SimServer,
    method: str,
    path: str,
    client: int,
    **params: object,
) -> tuple[int, Any]:
    key = key_of(client)
    query = signed_query(params, key=key, timestamp_ms=time.time_ns() // 1_000_000)
    url = f"{server.url}{path}?{query}"
    async with session.request(method, url, headers={API_KEY_HEADER: key.api_key}) as resp:
        return resp.status, await resp.json()


def run(
    scenario: Callable[[SimServer], Awaitable[Any]], ctx: SimContext, app: App = build_app
) -> Any:
    async def main() -> Any:
        async with SimServer(ctx, app) as server:
            return await scenario(server)

    return asyncio.run(main())


# -- the adapter end to end -------------------------------------------------------------------


def test_market_orders_of_several_clients_all_settle_and_books_match_the_exchange() -> None:
    ctx = context()
    buys = orders(
        [1, 2, 3, 1, 3],
        [BTC, BTC, ETH, ETH, BTC],
        [1, 1, 1, 1, 1],
        [0.05, 0.1, 2.0, 1.5, 10.0],  # the last costs 600k: more than client 3 has
        [BTC_PX, BTC_PX, ETH_PX, ETH_PX, BTC_PX],
        signal=[1, 2, 3, 4, 5],
        venue=Venue.BINANCE,
    )
    sells = orders(
        [1, 2],
        [BTC, BTC],
        [-1, -1],
        [0.02, 0.1],
        [BTC_PX, BTC_PX],
        signal=[6, 7],
        venue=Venue.BINANCE,
    )

    async def scenario(server: SimServer) -> tuple[ExecutionBatch, Any, Any]:
        venue = adapter(server)
        await venue.start()
        await venue.submit(buys)
        first = await outcomes(venue)
        await venue.submit(sells)
        out = ExecutionBatch.concat([first, await outcomes(venue)])
        books = await venue.positions(), await venue.balances()
        await venue.close()
        return out, *books

    out, book, balances = run(scenario, ctx)

    state = dict(zip(out.client_order_id.tolist(), out.state.tolist(), strict=True))
    assert len(state) == len(out) == 7
    rejected = buys.client_order_id[4]
    assert state.pop(rejected) == OrderState.REJECTED
    assert set(state.values()) == {OrderState.FILLED}
    assert out.reason[out.client_order_id == rejected].tolist() == [
        RejectReason.INSUFFICIENT_BUYING_POWER
    ]
    for client in CLIENTS:
        assert book.of_client(client) == pytest.approx(ctx.exchange.positions(client))
        assert balances.of(client) == pytest.approx(ctx.exchange.cash(client))
    assert book.of_client(1) == pytest.approx({BTC: 0.03, ETH: 1.5})
    filled = out.state == OrderState.FILLED
    venue_fees = sum(o.fee for c in CLIENTS for o in ctx.exchange.orders_of(c))
    assert out.fee[filled].sum() == pytest.approx(venue_fees)


def test_resting_limit_order_placed_elsewhere_is_seen_then_canceled() -> None:
    ctx = context()

    async def scenario(server: SimServer) -> tuple[Any, ...]:
        venue = adapter(server)
        await venue.start()
        await until(lambda: venue.stats["stream_subscriptions"] == len(CLIENTS))
        async with aiohttp.ClientSession() as session:
            status, placed = await signed(
                session, server, "POST", "/api/v3/order", 1,
                symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                quantity="0.10000", price="50000.00", newClientOrderId="limit-1",
            )  # fmt: skip
        await until(lambda: venue.stats["foreign_events"] >= 1)
        open_before = await venue.open_orders(1)
        locked = ctx.exchange.locked(1)
        await venue.cancel("limit-1")  # type: ignore[arg-type]
        after = await venue.query("limit-1")  # type: ignore[arg-type]
        open_after = await venue.open_orders(1)
        await venue.close()
        return status, placed, open_before, locked, after, open_after

    status, placed, open_before, locked, after, open_after = run(scenario, ctx)

    assert status == 200 and placed["status"] == "NEW"
    assert [(o.client_order_id, o.state) for o in open_before] == [("limit-1", OrderState.ACKED)]
    assert locked == pytest.approx(5_000.0)
    assert after is not None and after.state is OrderState.CANCELED
    assert open_after == []
    assert ctx.exchange.locked(1) == 0.0


def test_user_data_subscriptions_of_two_accounts_share_one_connection() -> None:
    ctx = context()

    async def scenario(server: SimServer) -> tuple[list[Any], list[dict[str, Any]]]:
        answers: list[Any] = []
        events: list[dict[str, Any]] = []
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{server.ws_url}/ws-api/v3") as ws,
        ):
            for client in (1, 2):
                key = key_of(client)
                params = {"apiKey": key.api_key, "timestamp": time.time_ns() // 1_000_000}
                payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
                params["signature"] = key.sign(payload)
                await ws.send_json(
                        {"id": f"s{client}", "method": "userDataStream.subscribe.signature",
                         "params": params}
                    )  # fmt: skip
                answers.append(await ws.receive_json())
            key = key_of(2)
            place = {
                    "apiKey": key.api_key, "symbol": "ETHUSDT", "side": "BUY", "type": "MARKET",
                    "quantity": "0.5000", "newClientOrderId": "ws-order-1",
                    "timestamp": time.time_ns() // 1_000_000,
                }  # fmt: skip
            place["signature"] = key.sign("&".join(f"{k}={place[k]}" for k in sorted(place)))
            await ws.send_json({"id": "p1", "method": "order.place", "params": place})
            while not any(e.get("id") == "p1" for e in events) or not any(
                e.get("event", {}).get("X") == "FILLED" for e in events
            ):
                events.append(await asyncio.wait_for(ws.receive_json(), 5))
        return answers, events

    answers, events = run(scenario, ctx)

    assert [a["result"] for a in answers] == [{"subscriptionId": 0}, {"subscriptionId": 1}]
    assert all("rateLimits" in a for a in answers)
    placed = next(e for e in events if e.get("id") == "p1")
    assert placed["status"] == 200 and placed["result"]["status"] == "FILLED"
    reports = [e for e in events if e.get("event", {}).get("e") == "executionReport"]
    assert {e["subscriptionId"] for e in reports} == {1}  # client 2's subscription only
    assert [(r["event"]["x"], r["event"]["X"]) for r in reports] == [
        ("NEW", "NEW"),
        ("TRADE", "FILLED"),
    ]
    assert reports[-1]["event"]["c"] == "ws-order-1"
    positions = [e for e in events if e.get("event", {}).get("e") == "outboundAccountPosition"]
    assert {b["a"] for b in positions[-1]["event"]["B"]} == {"USDT", "ETH"}


@pytest.mark.parametrize(
    ("fault", "stall_s", "options"),
    [
        (Fault.UNKNOWN, 15.0, {}),
        (Fault.DROP, 15.0, {}),
        (Fault.TIMEOUT, 0.4, {"request_timeout_s": 0.15}),
        (Fault.ERROR_5XX, 15.0, {"recv_window_ms": 300}),
    ],
)
def test_orders_whose_answer_is_lost_are_neither_lost_nor_doubled(
    fault: Fault, stall_s: float, options: dict[str, Any]
) -> None:
    faults = FaultInjector(FaultPlan({fault: 0.3}, stall_s), seed=11)
    ctx = context(faults)
    n = 12
    batch = orders(
        [CLIENTS[i % 3] for i in range(n)],
        [BTC if i % 2 else ETH for i in range(n)],
        [1] * n,
        [0.01 if i % 2 else 0.2 for i in range(n)],
        [BTC_PX if i % 2 else ETH_PX for i in range(n)],
        signal=list(range(1, n + 1)),
        venue=Venue.BINANCE,
    )

    async def scenario(server: SimServer) -> tuple[ExecutionBatch, BinanceVenue, Any]:
        venue = adapter(server, user_stream=False, **options)
        await venue.start()
        await venue.submit(batch)
        out = await outcomes(venue)
        book = await venue.positions()
        await venue.close()
        return out, venue, book

    out, venue, book = run(scenario, ctx)

    assert sorted(out.client_order_id.tolist()) == sorted(batch.client_order_id.tolist())
    assert set(out.state.tolist()) == {OrderState.FILLED}
    landed = [o.client_order_id for c in CLIENTS for o in ctx.exchange.orders_of(c)]
    assert sorted(landed) == sorted(c.decode() for c in batch.client_order_id.tolist())
    injected = faults.injected[fault.value]
    assert injected > 0
    assert venue.stats["unknown_resolved"] == injected
    # Only a refused send (5xx: it never landed) is sent again, under the same id.
    assert venue.stats["resent"] == (injected if fault is Fault.ERROR_5XX else 0)
    for client in CLIENTS:
        assert book.of_client(client) == pytest.approx(ctx.exchange.positions(client))


def test_user_data_stream_reconnects_and_resubscribes_after_a_drop() -> None:
    ctx = context(FaultInjector(FaultPlan({Fault.DISCONNECT: 1.0})))

    async def scenario(server: SimServer) -> dict[str, int]:
        venue = adapter(server)
        await venue.start()
        await until(lambda: venue.stats["stream_connects"] >= 2, timeout_s=5.0)
        await until(lambda: venue.stats["stream_subscriptions"] >= 2 * len(CLIENTS))
        await venue.close()
        return dict(venue.stats)

    stats = run(scenario, ctx)

    assert stats["stream_disconnects"] >= 1
    assert stats["stream_subscriptions"] >= 2 * len(CLIENTS)


def test_an_ed25519_key_registered_by_its_public_key_trades() -> None:
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    keys = ApiKeys()
    keys.add_ed25519("ed25519-key-2", 2, private.public_key())
    credential = Credential(
        2, Venue.BINANCE, CredentialKind.BINANCE_ED25519, "ed25519-key-2", "", Secret(pem)
    )
    batch = orders([2], [BTC], [1], [0.01], [BTC_PX], venue=Venue.BINANCE)

    async def scenario(server: SimServer) -> ExecutionBatch:
        venue = adapter(server, credentials={2: credential})
        await venue.start()
        await until(lambda: venue.stats["stream_subscriptions"] == 1)  # WS API signature too
        await venue.submit(batch)
        out = await outcomes(venue)
        await venue.close()
        return out

    out = run(scenario, context(), lambda ctx: build_app(ctx, keys=keys))

    assert out.state.tolist() == [OrderState.FILLED]


# -- the server's protocol --------------------------------------------------------------------


def test_documented_signature_examples_are_accepted_in_query_body_or_both() -> None:
    keys = ApiKeys()
    keys.add_hmac(DOC_KEY, 1, DOC_SECRET)
    then = 1499827319559 + 200  # the example's own time
    signature = f"signature={DOC_SIGNATURE}"
    app: App = lambda ctx: build_app(ctx, keys=keys, clock_ms=lambda: then)  # noqa: E731

    async def scenario(server: SimServer) -> list[tuple[int, Any]]:
        answers = []
        headers = {API_KEY_HEADER: DOC_KEY}
        url = f"{server.url}/api/v3/order"
        form = {**headers, "Content-Type": "application/x-www-form-urlencoded"}
        async with aiohttp.ClientSession() as session:
            for target, body in (
                (f"{url}?{DOC_PAYLOAD}&{signature}", None),
                (url, f"{DOC_PAYLOAD}&{signature}"),
                (f"{url}?{DOC_QUERY_PART}", f"{DOC_BODY_PART}&signature={DOC_MIXED_SIGNATURE}"),
                (f"{url}?{DOC_PAYLOAD}&{signature[:-1]}0", None),
            ):
                async with session.post(target, data=body, headers=form if body else headers) as r:
                    answers.append((r.status, await r.json()))
        return answers

    query, body, mixed, tampered = run(scenario, context(), app)

    assert signed_payload(f"{DOC_PAYLOAD}&{signature}", "") == (DOC_PAYLOAD, DOC_SIGNATURE)
    # Past the key, signature and clock: refused only because LTCBTC is not listed here.
    assert query == body == mixed == (400, {"code": -1121, "msg": "Invalid symbol."})
    assert tampered == (400, {"code": -1022, "msg": "Signature for this request is not valid."})


def test_unknown_key_and_stale_timestamp_are_refused_in_binance_words() -> None:
    async def scenario(server: SimServer) -> list[tuple[int, Any]]:
        stale = signed_query(
            {"symbol": "BTCUSDT"}, key=key_of(1), timestamp_ms=time.time_ns() // 1_000_000 - 60_000
        )
        async with aiohttp.ClientSession() as session:
            answers = []
            for key, query in (("SIM-binance-key-99999999", stale), (key_of(1).api_key, stale)):
                async with session.get(
                    f"{server.url}/api/v3/openOrders?{query}", headers={API_KEY_HEADER: key}
                ) as r:
                    answers.append((r.status, (await r.json())["code"]))
            return answers

    assert run(scenario, context()) == [(401, -2015), (400, -1021)]


def test_weight_and_order_limits_answer_429_then_ban_with_418() -> None:
    limits = (
        LimitRule("request-weight", "ip", 60.0, 30, "weight", header="x-mbx-used-weight-1m"),
        LimitRule("orders-10s", "account", 10.0, 2, "orders", header="x-mbx-order-count-10s"),
    )
    app: App = lambda ctx: build_app(ctx, limits=limits)  # noqa: E731

    async def scenario(server: SimServer) -> tuple[list[Any], list[Any]]:
        info, placed = [], []
        async with aiohttp.ClientSession() as session:
            for i in range(3):
                status, body = await signed(
                    session, server, "POST", "/api/v3/order", 1,
                    symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.00100",
                    newClientOrderId=f"lim-{i}",
                )  # fmt: skip
                placed.append((status, body.get("code")))
            for _ in range(6):
                async with session.get(f"{server.url}/api/v3/exchangeInfo") as r:
                    info.append(
                        (
                            r.status,
                            r.headers.get("X-MBX-USED-WEIGHT-1M"),
                            r.headers.get("Retry-After"),
                        )
                    )
        return placed, info

    placed, info = run(scenario, context(), app)

    assert placed == [(200, None), (200, None), (429, -1015)]
    assert info[0] == (200, "23", None)  # 3 orders of weight 1, then exchangeInfo's 20
    assert [status for status, _, _ in info[1:]] == [429, 429, 429, 418, 418]
    assert int(info[-1][2]) >= 110  # banned for about two minutes


def test_exchange_info_lists_crypto_pairs_with_their_filters() -> None:
    async def scenario(server: SimServer) -> tuple[Any, Any, Any]:
        async with aiohttp.ClientSession() as session:
            got = []
            for query in ("", "?symbol=ETHUSDT", '?symbols=["BTCUSDT","AAPLUSDT"]'):
                async with session.get(f"{server.url}/api/v3/exchangeInfo{query}") as r:
                    got.append(await r.json())
            return tuple(got)

    everything, eth, bad = run(scenario, context())

    assert [s["symbol"] for s in everything["symbols"]] == ["BTCUSDT", "ETHUSDT"]
    filters = {f["filterType"]: f for f in eth["symbols"][0]["filters"]}
    assert filters["LOT_SIZE"]["stepSize"] == "0.00010000"
    assert filters["PRICE_FILTER"]["tickSize"] == "0.01000000"
    assert filters["NOTIONAL"]["minNotional"] == "5.00000000"
    assert bad == {"code": -1121, "msg": "Invalid symbol."}


def test_market_streams_raw_combined_and_live_subscribe() -> None:
    ctx = context()
    ticks = TickBatch.from_arrays(
        instrument=[BTC, BTC, BTC, ETH],
        ts_event=np.full(4, 1_700_000_000_000_000_000),
        price=[59_990.0, 60_010.0, 60_000.5, 3_000.0],
        size=[1.0, 2.0, 0.25, 1.0],
        kind=[TickKind.BID, TickKind.ASK, TickKind.TRADE, TickKind.TRADE],
    )

    async def scenario(server: SimServer) -> tuple[Any, ...]:
        async with aiohttp.ClientSession() as session:
            combined = await session.ws_connect(
                f"{server.ws_url}/stream?streams=btcusdt@trade/btcusdt@bookTicker"
            )
            raw = await session.ws_connect(f"{server.ws_url}/ws/ethusdt@trade")
            live = await session.ws_connect(f"{server.ws_url}/ws")
            await live.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 7})
            subscribed = await live.receive_json()
            await asyncio.sleep(0.05)
            ctx.market.publish(ticks)
            got = (
                [await combined.receive_json() for _ in range(2)],
                await raw.receive_json(),
                await live.receive_json(),
            )
            for ws in (combined, raw, live):
                await ws.close()
        return subscribed, *got

    subscribed, combined, raw, live = run(scenario, ctx)

    assert subscribed == {"result": None, "id": 7}
    book, trade = combined
    assert book["stream"] == "btcusdt@bookTicker"
    assert {k: book["data"][k] for k in ("s", "b", "a")} == {
        "s": "BTCUSDT", "b": "59990.00000000", "a": "60010.00000000"
    }  # fmt: skip
    assert trade["stream"] == "btcusdt@trade"
    assert {k: trade["data"][k] for k in ("e", "s", "p", "q")} == {
        "e": "trade", "s": "BTCUSDT", "p": "60000.50000000", "q": "0.25000000"
    }  # fmt: skip
    assert raw["e"] == "trade" and raw["s"] == "ETHUSDT" and "stream" not in raw
    assert live["s"] == "BTCUSDT" and live["t"] == trade["data"]["t"]


def test_order_query_and_cancel_of_unknown_orders_use_binance_codes() -> None:
    async def scenario(server: SimServer) -> list[tuple[int, Any]]:
        unknown = {"symbol": "BTCUSDT", "origClientOrderId": "nope"}
        async with aiohttp.ClientSession() as session:
            query = await signed(session, server, "GET", "/api/v3/order", 1, **unknown)
            cancel = await signed(session, server, "DELETE", "/api/v3/order", 1, **unknown)
        return [query, cancel]

    (q_status, q_body), (c_status, c_body) = run(scenario, context())

    assert (q_status, q_body["code"]) == (400, -2013)
    assert (c_status, c_body["code"]) == (400, -2011)


def test_exchange_json_decimals_are_strings() -> None:
    async def scenario(server: SimServer) -> Any:
        async with aiohttp.ClientSession() as session:
            return await signed(
                session, server, "POST", "/api/v3/order", 3,
                symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01000",
            )  # fmt: skip

    status, body = run(scenario, context())

    assert status == 200
    assert body["status"] == "FILLED" and len(body["clientOrderId"]) == 22
    assert isinstance(body["executedQty"], str) and body["executedQty"] == "0.01000000"
    fill = body["fills"][0]
    assert float(fill["commission"]) == pytest.approx(float(body["cummulativeQuoteQty"]) * 0.001)
    assert json.dumps(body)  # plain JSON throughout


def test_max_quantity_scales_with_the_step_so_cheap_coins_trade_in_size() -> None:
    from tickwise.venues.sim.server.binance_desk import MAX_QTY, max_quantity

    assert max_quantity(1e-5) == MAX_QTY  # BTC-like: 9,000,000 at a 0.00001 step
    # A coin at $0.02 with a step of 1: a $1M order is 50M coins, within the cap.
    assert max_quantity(1.0) >= 1_000_000 / 0.02
