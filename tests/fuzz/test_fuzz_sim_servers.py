"""Fuzzing the simulator servers' request parsing: query strings, JSON, XML and form bodies,
signatures, OAuth headers, raw header bytes and WebSocket frames, for all three venues.

Property: a malformed request is never a 5xx. It is refused in the venue's own error shape
(Alpaca `{"code", "message"}`, Binance `{"code", "msg"}`, E*Trade an `Error` document or an
OAuth `oauth_problem`), and a WebSocket keeps serving after junk frames. The servers run with
rate limits and faults off, so every refusal comes from parsing. Each example is a real HTTP
request, so these properties run a fraction of the profile's examples; run deeper with
`TICKWISE_FUZZ_EXAMPLES=5000`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import numpy as np
import pytest
from fuzzing import (
    DEEP_ARRAY,
    DEEP_OBJECT,
    ODD_TEXTS,
    budget,
    json_values,
    mutated,
    raw_bytes,
    registry,
    wire_or_raw,
)
from hypothesis import example, given
from hypothesis import strategies as st
from yarl import URL

from tickwise.model.instruments import Venue
from tickwise.venues.alpaca.auth import KEY_ID_HEADER, SECRET_KEY_HEADER
from tickwise.venues.binance.signing import API_KEY_HEADER, SigningKey
from tickwise.venues.credentials import demo_credential
from tickwise.venues.etrade.oauth import (
    ConsumerCredentials,
    TokenCredentials,
    authorization_header,
)
from tickwise.venues.sim.server import alpaca, binance, etrade
from tickwise.venues.sim.server.common import (
    BROKER_KEY_ID,
    AppFactory,
    SimServer,
    broker_secret,
    make_context,
)
from tickwise.venues.sim.server.etrade_render import to_xml

T = TypeVar("T")
CLIENT = 1
PRICES = [190.0, 400.0, 60_000.0, 3_000.0]
SHARE = 0.25  # of the profile's examples: each one is a round trip to a live server
# Junk that fits an HTTP request line or header (aiohttp refuses longer ones before the app).
junk_text = st.one_of(st.text(max_size=16), st.sampled_from([t for t in ODD_TEXTS if len(t) < 100]))


def q(value: str) -> str:
    """`value` percent-encoded as UTF-8; text UTF-8 cannot carry (a lone surrogate) as "?"."""
    return quote(value, safe="", errors="replace")


def form(query: dict[str, str]) -> str:
    return "&".join(f"{q(k)}={q(v)}" for k, v in query.items())


query_values = st.one_of(junk_text, st.integers().map(str), st.just("9" * 400))


@dataclass
class Live:
    """The three simulator servers on one event loop, driven from synchronous examples."""

    loop: asyncio.AbstractEventLoop
    servers: dict[Venue, SimServer]
    http: aiohttp.ClientSession

    def run(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)

    def url(self, venue: Venue, path_and_query: str) -> URL:
        """A URL sent as written: no re-quoting, so a signature over it stays valid."""
        return URL(self.servers[venue].url + path_and_query, encoded=True)

    async def fetch(
        self,
        method: str,
        url: URL,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[int, bytes]:
        async with self.http.request(method, url, headers=headers, data=body) as resp:
            return resp.status, await resp.read()


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    loop = asyncio.new_event_loop()
    apps: dict[Venue, AppFactory] = {
        Venue.ALPACA: alpaca.build_app,
        Venue.BINANCE: binance.build_app,
        Venue.ETRADE: etrade.build_app,
    }
    servers: dict[Venue, SimServer] = {}
    for venue, app in apps.items():
        ctx = make_context(venue, registry(), [CLIENT, 2], [1e6, 1e6], rate_limits=False)
        ctx.exchange.mark(np.arange(len(PRICES)), PRICES)
        servers[venue] = loop.run_until_complete(SimServer(ctx, app).start())

    async def session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    http = loop.run_until_complete(session())
    try:
        yield Live(loop, servers, http)
    finally:
        loop.run_until_complete(http.close())
        for server in servers.values():
            loop.run_until_complete(server.stop())
        loop.close()


def refused_in_shape(status: int, body: bytes, keys: tuple[str, str]) -> None:
    """No 5xx; a 4xx is a JSON object with an integer code and a text message."""
    assert status < 500, f"HTTP {status}: {body[:300]!r}"
    if status >= 400:
        doc = json.loads(body)
        code, text = keys
        assert isinstance(doc[code], int) and isinstance(doc[text], str), doc


async def raw_request(port: int, head: bytes) -> int:
    """Send `head` as an HTTP/1.1 request head, byte for byte; the answer's status."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
        await writer.drain()
        status_line = await reader.readline()
    finally:
        writer.close()
    return int(status_line.split()[1])


header_bytes = st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


# -- Alpaca ----------------------------------------------------------------------------------


def alpaca_headers() -> dict[str, str]:
    cred = demo_credential(CLIENT, Venue.ALPACA)
    return {KEY_ID_HEADER: cred.key_id, SECRET_KEY_HEADER: cred.secret.reveal("secret")}


ALPACA_ORDER = {
    "symbol": "AAPL",
    "qty": "1",
    "side": "buy",
    "type": "market",
    "time_in_force": "day",
    "client_order_id": "fuzz-1",
}


@budget(SHARE)
@given(st.one_of(wire_or_raw(ALPACA_ORDER), st.builds(json.dumps, mutated(ALPACA_ORDER))))
@example(DEEP_ARRAY)
@example(json.dumps({**ALPACA_ORDER, "qty": 10**400, "client_order_id": None}))
@example(json.dumps({**ALPACA_ORDER, "type": "limit", "limit_price": "1e308", "qty": "1e308"}))
def test_alpaca_order_bodies_are_answered_without_a_server_error(
    live: Live, body: bytes | str
) -> None:
    data = body if isinstance(body, bytes) else body.encode()
    url = live.url(Venue.ALPACA, "/v2/orders")
    status, answer = live.run(live.fetch("POST", url, headers=alpaca_headers(), body=data))
    refused_in_shape(status, answer, ("code", "message"))


ALPACA_PATHS = (
    "/v2/orders?{q}",
    "/v2/orders:by_client_order_id?client_order_id={v}",
    "/v2/orders/{v}",
    "/v2/positions/{v}",
    "/v1/accounts/{v}",
    "/v1/trading/accounts/{v}/orders",
)


@budget(SHARE)
@given(
    st.sampled_from(ALPACA_PATHS),
    st.sampled_from(("GET", "DELETE")),
    st.dictionaries(
        st.sampled_from(("status", "limit", "after", "until", "direction", "symbols", "side")),
        query_values,
        max_size=4,
    ),
    query_values,
)
@example("/v2/orders?{q}", "GET", {"after": "9999-12-31T23:59:60Z", "limit": "٣"}, "")
def test_alpaca_paths_and_queries_are_answered_without_a_server_error(
    live: Live, template: str, method: str, query: dict[str, str], value: str
) -> None:
    path = template.format(q=form(query), v=q(value))
    headers = alpaca_headers()
    headers["Authorization"] = "Basic " + "fuzz"
    status, answer = live.run(live.fetch(method, live.url(Venue.ALPACA, path), headers=headers))
    refused_in_shape(status, answer, ("code", "message"))


@budget(SHARE)
@given(header_bytes, header_bytes)
@example(b"SIM-alpaca-key-\xc2\xb2", b"x")
@example(b"SIM-alpaca-key-" + b"9" * 5000, b"x")
@example(demo_credential(CLIENT, Venue.ALPACA).key_id.encode(), b"\xff\xfe")
@example(b"x", b"x")
def test_alpaca_credentials_of_any_bytes_are_refused_without_a_server_error(
    live: Live, key_id: bytes, secret: bytes
) -> None:
    head = (
        b"GET /v2/account HTTP/1.1\r\n"
        + KEY_ID_HEADER.encode()
        + b": "
        + key_id
        + b"\r\n"
        + SECRET_KEY_HEADER.encode()
        + b": "
        + secret
        + b"\r\nAuthorization: Basic "
        + secret
        + b"\r\n"
    )
    assert live.run(raw_request(live.servers[Venue.ALPACA].port, head)) < 500


def test_alpaca_event_stream_ids_must_be_whole_numbers(live: Live) -> None:
    broker = "Basic " + base64.b64encode(f"{BROKER_KEY_ID}:{broker_secret()}".encode()).decode()
    for junk in ("abc", "²", "1.5", "9" * 5000):
        url = live.url(Venue.ALPACA, f"/v1/events/trades?since_id={q(junk)}")
        status, body = live.run(live.fetch("GET", url, headers={"Authorization": broker}))
        assert status == 400, junk
        refused_in_shape(status, body, ("code", "message"))


async def _ws_exchange(
    live: Live, venue: Venue, path: str, junk: Sequence[bytes | str], last: dict[str, Any]
) -> list[Any]:
    """Send junk frames then `last`; the JSON answers received after `last` was sent."""
    async with live.http.ws_connect(live.url(venue, path)) as ws:
        for frame in junk:
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            else:
                await ws.send_str(frame)
        await ws.send_str(json.dumps(last))
        answers: list[Any] = []
        while True:
            msg = await asyncio.wait_for(ws.receive(), 5.0)
            assert msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY), msg
            answers.append(json.loads(msg.data))
            if _answers_last(answers[-1], last):
                return answers


def _answers_last(answer: Any, last: dict[str, Any]) -> bool:
    if isinstance(answer, dict):
        return answer.get("id") == last.get("id") or answer.get("stream") == "authorization"
    return False


ws_junk = st.lists(
    st.one_of(st.text(max_size=30), raw_bytes, st.builds(json.dumps, json_values)), max_size=4
)


@budget(SHARE)
@given(ws_junk)
@example([DEEP_ARRAY.decode(), b"\xc1"])
def test_alpaca_trade_updates_keep_serving_after_junk_frames(
    live: Live, junk: list[bytes | str]
) -> None:
    cred = demo_credential(CLIENT, Venue.ALPACA)
    auth = {
        "action": "authenticate",
        "data": {"key_id": cred.key_id, "secret_key": cred.secret.reveal("secret")},
    }
    answers = live.run(_ws_exchange(live, Venue.ALPACA, "/stream", junk, auth))
    assert answers[-1]["data"]["status"] == "authorized"


# -- Binance ---------------------------------------------------------------------------------


def binance_key(client: int = CLIENT) -> SigningKey:
    cred = demo_credential(client, Venue.BINANCE)
    return SigningKey(cred.key_id, "hmac", cred.secret.reveal("secret"))


def signed_path(path: str, params: dict[str, str], key: SigningKey) -> str:
    """`path?query&signature=...`, the query written as given and signed as sent."""
    query = form(params)
    return f"{path}?{query}&signature={key.sign(query)}"


def now_ms() -> str:
    return str(time.time_ns() // 1_000_000)


BINANCE_ORDER = {
    "symbol": "BTCUSDT",
    "side": "BUY",
    "type": "MARKET",
    "quantity": "0.001",
    "newClientOrderId": "fuzz-1",
    "newOrderRespType": "ACK",
}
BINANCE_ENDPOINTS = (
    ("POST", "/api/v3/order"),
    ("POST", "/api/v3/order/test"),
    ("GET", "/api/v3/order"),
    ("DELETE", "/api/v3/order"),
    ("GET", "/api/v3/openOrders"),
    ("DELETE", "/api/v3/openOrders"),
    ("GET", "/api/v3/myTrades"),
    ("GET", "/api/v3/account"),
)
binance_params = st.dictionaries(
    st.sampled_from(
        (
            "symbol",
            "side",
            "type",
            "quantity",
            "price",
            "timeInForce",
            "quoteOrderQty",
            "newClientOrderId",
            "newOrderRespType",
            "orderId",
            "origClientOrderId",
            "limit",
            "recvWindow",
            "timestamp",
        )
    ),
    query_values,
    max_size=5,
)


@budget(SHARE)
@given(st.sampled_from(BINANCE_ENDPOINTS), binance_params)
@example(("POST", "/api/v3/order"), {"timestamp": "9" * 400})
@example(("POST", "/api/v3/order"), {"recvWindow": "NaN"})
@example(("GET", "/api/v3/myTrades"), {"symbol": "BTCUSDT", "limit": "1e3"})
@example(("POST", "/api/v3/order"), {"quantity": "1e999999999", "type": "MARKET"})
def test_binance_signed_requests_are_answered_without_a_server_error(
    live: Live, endpoint: tuple[str, str], params: dict[str, str]
) -> None:
    method, path = endpoint
    key = binance_key()
    merged = {**BINANCE_ORDER, "recvWindow": "5000", "timestamp": now_ms(), **params}
    url = live.url(Venue.BINANCE, signed_path(path, merged, key))
    headers = {API_KEY_HEADER: key.api_key}
    status, answer = live.run(live.fetch(method, url, headers=headers))
    refused_in_shape(status, answer, ("code", "msg"))


@budget(SHARE)
@given(header_bytes, query_values)
@example(b"SIM-binance-key-\xc2\xb2", "x")
@example(b"SIM-binance-key-00000001", "\ud800")
def test_binance_keys_and_signatures_of_any_bytes_are_refused_without_a_server_error(
    live: Live, api_key: bytes, signature: str
) -> None:
    query = f"timestamp={now_ms()}&signature={q(signature)}"
    head = f"GET /api/v3/account?{query} HTTP/1.1\r\n".encode() + b"X-MBX-APIKEY: " + api_key
    assert live.run(raw_request(live.servers[Venue.BINANCE].port, head + b"\r\n")) < 500


@budget(SHARE)
@given(st.one_of(query_values, st.builds(json.dumps, json_values)))
@example("[" * 1500)  # deeper than json decodes, short enough for a request line
def test_binance_exchange_info_symbols_are_answered_without_a_server_error(
    live: Live, symbols: str
) -> None:
    url = live.url(Venue.BINANCE, f"/api/v3/exchangeInfo?symbols={q(symbols)}")
    status, answer = live.run(live.fetch("GET", url))
    refused_in_shape(status, answer, ("code", "msg"))


WS_REQUEST = {"id": "fuzz", "method": "order.status", "params": {"symbol": "BTCUSDT"}}


@budget(SHARE)
@given(
    st.lists(
        st.one_of(st.builds(json.dumps, mutated(WS_REQUEST)), st.text(max_size=30)), max_size=3
    )
)
@example(
    [
        json.dumps(
            {
                "id": 1,
                "method": "userDataStream.unsubscribe",
                "params": {"subscriptionId": "Infinity"},
            }
        )
    ]
)
@example(
    [
        json.dumps(
            {
                "id": 1,
                "method": "userDataStream.unsubscribe",
                "params": {"subscriptionId": float("inf")},
            }
        )
    ]
)
@example([DEEP_OBJECT.decode()])
def test_binance_websocket_api_requests_are_answered_without_a_server_error(
    live: Live, requests: list[str]
) -> None:
    last = {"id": "last", "method": "ping"}
    answers = live.run(_ws_exchange(live, Venue.BINANCE, "/ws-api/v3", requests, last))
    for answer in answers:
        assert answer.get("status", 200) < 500, answer
        if answer.get("status", 200) >= 400:
            assert isinstance(answer["error"]["code"], int), answer
    assert answers[-1]["status"] == 200


@budget(SHARE)
@given(st.lists(st.one_of(st.builds(json.dumps, json_values), st.text(max_size=30)), max_size=3))
@example([DEEP_ARRAY.decode()])
def test_binance_market_stream_control_frames_keep_the_stream_alive(
    live: Live, frames: list[str]
) -> None:
    last = {"id": 99, "method": "LIST_SUBSCRIPTIONS"}
    answers = live.run(
        _ws_exchange(live, Venue.BINANCE, "/stream?streams=btcusdt@trade", frames, last)
    )
    assert answers[-1] == {"result": answers[-1]["result"], "id": 99}


# -- E*Trade --------------------------------------------------------------------------------


def etrade_account() -> str:
    return demo_credential(CLIENT, Venue.ETRADE).account_id


def oauth(method: str, url: str, **overrides: Any) -> str:
    secret = demo_credential(CLIENT, Venue.ETRADE).secret
    consumer = ConsumerCredentials(
        demo_credential(CLIENT, Venue.ETRADE).key_id, secret.reveal("consumer_secret")
    )
    token = TokenCredentials(secret.reveal("oauth_token"), secret.reveal("oauth_token_secret"))
    return authorization_header(method, url, consumer, token, **overrides)


def etrade_refused_in_shape(status: int, body: bytes) -> None:
    """No 5xx; a 4xx is an `Error` document, an `oauth_problem`, or the rate-limit page."""
    assert status < 500, f"HTTP {status}: {body[:300]!r}"
    if status >= 400:
        assert body.startswith(b"oauth_problem=") or b"Error" in body, body[:300]


ETRADE_ORDER = {
    "PreviewOrderRequest": {
        "orderType": "EQ",
        "clientOrderId": "fuzz1",
        "Order": [
            {
                "allOrNone": False,
                "priceType": "MARKET",
                "orderTerm": "GOOD_FOR_DAY",
                "marketSession": "REGULAR",
                "Instrument": [
                    {
                        "Product": {"securityType": "EQ", "symbol": "AAPL"},
                        "orderAction": "BUY",
                        "quantityType": "QUANTITY",
                        "quantity": 1,
                    }
                ],
            }
        ],
    }
}


def _xml_or_junk(doc: Any) -> bytes:
    try:
        return to_xml(doc) if isinstance(doc, dict) and len(doc) == 1 else b"<"
    except (TypeError, ValueError):
        return b"<"


etrade_bodies = st.one_of(
    wire_or_raw(ETRADE_ORDER).map(lambda body: (body, "application/json")),
    mutated(ETRADE_ORDER).map(lambda doc: (_xml_or_junk(doc), "application/xml")),
    raw_bytes.map(lambda body: (body, "application/xml")),
)


@budget(SHARE)
@given(st.sampled_from(("preview", "place", "cancel")), etrade_bodies)
@example("preview", (b"<a>" * 5000 + b"</a>" * 5000, "application/xml"))
@example("preview", (DEEP_OBJECT, "application/json"))
@example("cancel", (b'{"CancelOrderRequest": {"orderId": 1e300}}', "application/json"))
def test_etrade_order_bodies_are_answered_without_a_server_error(
    live: Live, call: str, body: tuple[bytes, str]
) -> None:
    method = "PUT" if call == "cancel" else "POST"
    path = f"/v1/accounts/{etrade_account()}/orders/{call}.json"
    url = live.url(Venue.ETRADE, path)
    headers = {"Authorization": oauth(method, str(url)), "Content-Type": body[1]}
    status, answer = live.run(live.fetch(method, url, headers=headers, body=body[0]))
    etrade_refused_in_shape(status, answer)


@budget(SHARE)
@given(
    st.dictionaries(
        st.sampled_from(("status", "count", "marker", "fromDate", "toDate", "symbol")),
        query_values,
        max_size=4,
    ),
    st.sampled_from(("orders", "orders/{v}", "portfolio", "balance", "{v}")),
    query_values,
)
@example({}, "orders/{v}", "²")
@example({}, "orders/{v}", "9" * 4400)
@example({}, "orders/{v}", "\n")
@example({"marker": "9" * 400, "count": "٣"}, "orders", "")
def test_etrade_queries_and_paths_are_answered_without_a_server_error(
    live: Live, query: dict[str, str], tail: str, value: str
) -> None:
    path = f"/v1/accounts/{etrade_account()}/" + tail.format(v=q(value))
    encoded = form(query)
    url = live.url(Venue.ETRADE, f"{path}.json" + (f"?{encoded}" if encoded else ""))
    headers = {"Authorization": oauth("GET", str(url))}
    status, answer = live.run(live.fetch("GET", url, headers=headers))
    etrade_refused_in_shape(status, answer)


@budget(SHARE)
@given(
    st.dictionaries(
        st.sampled_from(
            (
                "oauth_consumer_key",
                "oauth_token",
                "oauth_timestamp",
                "oauth_nonce",
                "oauth_signature",
            )
        ),
        query_values,
        max_size=3,
    )
)
@example({"oauth_timestamp": "9" * 400})
@example({"oauth_consumer_key": "SIM-etrade-key-²"})
def test_etrade_oauth_headers_are_refused_without_a_server_error(
    live: Live, overrides: dict[str, str]
) -> None:
    url = live.url(Venue.ETRADE, f"/v1/accounts/{etrade_account()}/balance.json")
    header = oauth("GET", str(url))
    for name, value in overrides.items():
        header += f', {name}="{q(value)}"'
    status, answer = live.run(live.fetch("GET", url, headers={"Authorization": header}))
    etrade_refused_in_shape(status, answer)


@budget(SHARE)
@given(header_bytes)
@example(b'OAuth oauth_signature="\xff"')
def test_etrade_authorization_of_any_bytes_is_refused_without_a_server_error(
    live: Live, authorization: bytes
) -> None:
    head = b"GET /v1/accounts/list.json HTTP/1.1\r\nAuthorization: " + authorization + b"\r\n"
    assert live.run(raw_request(live.servers[Venue.ETRADE].port, head)) < 500


def test_the_unmutated_requests_are_accepted(live: Live) -> None:
    """The seeds are valid and signed right, so the fuzzed requests reach the parsers."""
    alpaca_order = json.dumps({**ALPACA_ORDER, "client_order_id": "seed-1"}).encode()
    url = live.url(Venue.ALPACA, "/v2/orders")
    assert live.run(live.fetch("POST", url, headers=alpaca_headers(), body=alpaca_order))[0] == 200

    key = binance_key()
    params = {**BINANCE_ORDER, "newClientOrderId": "seed-1", "timestamp": now_ms()}
    url = live.url(Venue.BINANCE, signed_path("/api/v3/order", params, key))
    status, _ = live.run(live.fetch("POST", url, headers={API_KEY_HEADER: key.api_key}))
    assert status == 200

    url = live.url(Venue.ETRADE, f"/v1/accounts/{etrade_account()}/orders/preview.json")
    headers = {"Authorization": oauth("POST", str(url)), "Content-Type": "application/json"}
    body = json.dumps(ETRADE_ORDER).encode()
    status, answer = live.run(live.fetch("POST", url, headers=headers, body=body))
    assert status == 200, answer
