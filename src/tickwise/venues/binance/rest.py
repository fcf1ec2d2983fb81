"""Binance Spot REST calls for the adapter: signing, rate limits, clock and retries.

`BinanceRest.call` sends one request through the `Transport` seam and returns the decoded JSON
of a 2xx answer, or raises `BinanceError` (errors.py) or `TransportError` (no answer). On the way
it waits for the `RateLimiter` (capabilities.BINANCE rules: weight per IP, orders per account),
resyncs with the venue's usage headers, honours 429/418 with their Retry-After (a 418 ban lasts
at least two minutes), resyncs the `ServerClock` and resends after -1021, and retries requests
whose repetition is harmless (reads) after transient failures. A request whose outcome is
unknown and which must not be repeated blindly (a new order) is raised to the caller, who
resolves it by client order id first.

Signed parameters travel in the query string for every method, as binance-sdk-spot sends them.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from yarl import URL

from tickwise.model.orders import Side
from tickwise.venues.binance.errors import BinanceError, error_from_response
from tickwise.venues.binance.signing import API_KEY_HEADER, ServerClock, SigningKey, format_param
from tickwise.venues.capabilities import BINANCE
from tickwise.venues.http import Transport, TransportError, decode_json
from tickwise.venues.ratelimit import Backoff, RateLimiter

Sleep = Callable[[float], Awaitable[object]]

IP_SCOPE = "adapter"  # every request of one adapter leaves from one address
MAX_ATTEMPTS = 6  # sends of one request that the venue refused without acting on it
MAX_CLOCK_RESYNCS = 2


class MalformedAnswerError(BinanceError):
    """A 2xx answer that could not be read: the request may have been executed."""

    def __init__(self, message: str) -> None:
        super().__init__("MALFORMED", message, retryable=True, outcome_unknown=True)


def as_sent(query: str) -> str:
    """`query` as it reaches the venue through aiohttp: yarl re-quotes a URL's query (it decodes
    the escapes of characters legal there, such as %3A and %2F). Binance checks a signature
    against the bytes it received, so the adapter signs this form; it is a fixed point."""
    return URL(f"http://venue/?{query}").raw_query_string


class BinanceRest:
    """Signed REST requests of one adapter (see module doc)."""

    def __init__(
        self,
        base_url: str,
        keys: Mapping[int, SigningKey],
        *,
        limiter: RateLimiter,
        local_ms: Callable[[], int],
        stats: Counter[str],
        recv_window_ms: int = 5000,
        timeout_s: float = 10.0,
        sleep: Sleep,
        rng: random.Random,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.keys = keys
        self.limiter = limiter
        self.local_ms = local_ms
        self.clock = ServerClock(local_ms)
        self.stats = stats
        self.recv_window_ms = recv_window_ms
        self.timeout_s = timeout_s
        self.sleep = sleep
        self.backoff = Backoff(0.05, 2.0, rng)
        self.transport: Transport | None = None

    # -- clock -----------------------------------------------------------------------------

    async def sync_clock(self, samples: int = 2) -> None:
        """Measure the server's clock offset (the fastest of `samples` round trips wins)."""
        for _ in range(samples):
            sent = self.local_ms()
            body = await self.call("GET", "/api/v3/time", retry_unknown=True)
            received = self.local_ms()
            if not isinstance(body, Mapping):
                self.stats["malformed"] += 1
                raise MalformedAnswerError("server time answer is not an object")
            try:
                self.clock.update_from_body(body, sent, received)
            except ValueError as exc:
                self.stats["malformed"] += 1
                raise MalformedAnswerError(str(exc)) from None

    # -- requests --------------------------------------------------------------------------

    def _scope(self, endpoint: str, client: int | None) -> dict[str, str]:
        scope = {"ip": IP_SCOPE}
        if client is not None and endpoint in BINANCE.order_endpoints:
            scope["account"] = str(client)
        return scope

    @staticmethod
    def _cost(endpoint: str) -> dict[str, float]:
        # Public endpoints missing from the table (ping, time) weigh 1 (venues.md §3.6).
        cost = {"requests": 1.0, "weight": float(BINANCE.endpoint_weights.get(endpoint, 1))}
        if endpoint in BINANCE.order_endpoints:
            cost["orders"] = 1.0
        return cost

    def _signed(
        self, params: Mapping[str, object], client: int
    ) -> tuple[list[tuple[str, str]], dict[str, str]]:
        key = self.keys.get(client)
        if key is None:
            raise BinanceError(-2015, f"no API key for client {client}", reason=None)
        pairs = [(k, format_param(v)) for k, v in params.items()]
        pairs.append(("recvWindow", str(self.recv_window_ms)))
        pairs.append(("timestamp", str(self.clock.now_ms())))
        # The transport encodes params with urlencode; sign what the venue will receive.
        pairs.append(("signature", key.sign(as_sent(urlencode(pairs)))))
        return pairs, {API_KEY_HEADER: key.api_key}

    async def call(
        self,
        method: str,
        path: str,
        params: Mapping[str, object] | None = None,
        *,
        client: int | None = None,
        weight_key: str | None = None,
        side: Side | None = None,
        retry_unknown: bool = False,
    ) -> Any:
        """The decoded JSON of a 2xx answer (see module doc). `client` signs the request with
        that client's key; `weight_key` names the endpoint's weight when it depends on the
        parameters; `retry_unknown` allows resending after an answer that leaves the outcome
        unknown (only for requests whose repetition is harmless)."""
        if self.transport is None:
            raise RuntimeError("the Binance adapter is not started")
        endpoint = weight_key or f"{method} {path}"
        scope = self._scope(endpoint, client)
        cost = self._cost(endpoint)
        attempt = resyncs = 0
        while True:
            await self.limiter.acquire(scope, cost, sleep=self.sleep)
            if client is None:
                query = [(k, format_param(v)) for k, v in (params or {}).items()]
                headers: dict[str, str] = {}
            else:
                query, headers = self._signed(params or {}, client)
            self.stats["requests"] += 1
            try:
                response = await self.transport.request(
                    method,
                    f"{self.base_url}{path}",
                    headers=headers,
                    params=query,
                    timeout_s=self.timeout_s,
                )
            except TransportError:
                self.stats["no_answer"] += 1
                if retry_unknown and attempt + 1 < MAX_ATTEMPTS:
                    attempt += 1
                    await self._retry(attempt)
                    continue
                raise
            self.limiter.observe_headers(scope, response.headers)
            if 200 <= response.status < 300:
                try:
                    return decode_json(response.body)
                except ValueError:
                    self.stats["malformed"] += 1
                    err: BinanceError = MalformedAnswerError(
                        f"{endpoint}: HTTP {response.status} answer is not JSON"
                    )
            else:
                err = error_from_response(
                    response.status, response.body, response.headers, side=side
                )
            if err.http_status in (429, 418):
                self.stats["rate_limited"] += 1
                penalised = (
                    {"account": scope["account"]}
                    if err.code == -1015 and "account" in scope
                    else {"ip": IP_SCOPE}
                )
                self.limiter.penalise(penalised, err.retry_after_s, err.http_status or 429)
                if attempt + 1 < MAX_ATTEMPTS:
                    attempt += 1
                    self.stats["retries"] += 1
                    continue  # acquire waits out the block
                raise err
            # Only a signed request carries a timestamp to refuse; resyncing after a -1021 to
            # an unsigned one (the time request itself) would recurse without end.
            if err.resync_clock and client is not None and resyncs < MAX_CLOCK_RESYNCS:
                resyncs += 1
                self.stats["clock_resyncs"] += 1
                self.clock.reset()
                await self.sync_clock()
                continue
            resendable = retry_unknown or not err.outcome_unknown
            if err.retryable and resendable and attempt + 1 < MAX_ATTEMPTS:
                attempt += 1
                await self._retry(attempt)
                continue
            raise err

    async def _retry(self, attempt: int) -> None:
        self.stats["retries"] += 1
        await self.sleep(self.backoff.delay(attempt))
