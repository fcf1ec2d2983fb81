"""The adapter's Alpaca REST calls: per-account addressing, rate limits as Alpaca counts them.

`AccountRoute` is everything one client's calls need: the auth headers (its own key pair, or the
firm's Broker API key), its paths (`/v2/...` or `/v1/trading/accounts/{id}/...`) and the scope
its requests are counted under (the key, or the Broker API account). `AlpacaRequests.call`
waits for the `RateLimiter`, sends, resyncs the limiter from `X-RateLimit-*`, and on a 429 blocks
the scope for Retry-After (else until X-RateLimit-Reset) and repeats the request: a 429 is
refused before it is processed, so repeating it cannot double an order.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tickwise.venues.alpaca.auth import BrokerAccountPaths, TradingPaths
from tickwise.venues.alpaca.errors import (
    AlpacaError,
    AlpacaErrorKind,
    error_from_response,
    rate_limit_from_headers,
)
from tickwise.venues.alpaca.orders import (
    AlpacaOrder,
    MalformedOrderError,
    SymbolIndex,
    parse_order,
)
from tickwise.venues.capabilities import VenueCapabilities
from tickwise.venues.http import HttpResponse, Transport, TransportError
from tickwise.venues.ratelimit import RateLimiter

MAX_RATE_LIMIT_RETRIES = 20  # 429s in a row before a request is given up
_PAGE = 500  # Alpaca's largest page of orders


@dataclass(frozen=True, slots=True)
class AccountRoute:
    """How to address one client's account at Alpaca."""

    client: int
    headers: Mapping[str, str] = field(repr=False)  # they carry the secret
    paths: TradingPaths | BrokerAccountPaths
    scope: Mapping[str, str]  # rate-limit scope keys ("key" or "account")
    cost: Mapping[str, float]  # what one request costs under the venue's rules


def transport_failure(exc: TransportError) -> AlpacaError:
    """A request without an answer, as the `VenueError` the read calls raise."""
    return AlpacaError(
        exc.kind, str(exc), http_status=0, kind=AlpacaErrorKind.SERVER, retryable=True
    )


def malformed_answer(what: str) -> AlpacaError:
    """An answer that could not be read, as the `VenueError` the read calls raise."""
    return AlpacaError(
        "malformed", what, http_status=200, kind=AlpacaErrorKind.SERVER, retryable=True
    )


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """How long a 429 asks to wait: Retry-After, else until X-RateLimit-Reset; None if
    neither is readable (an infinite Retry-After would block the account for good)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        value = float(lowered["retry-after"])
        if math.isfinite(value) and value >= 0:
            return value
    except (KeyError, ValueError):
        pass
    reported = rate_limit_from_headers(lowered)
    if reported is not None:
        return max(0.0, reported.reset_epoch_s - time.time())
    return None


class AlpacaRequests:
    """Rate-limited, bounded-concurrency requests on one transport."""

    def __init__(
        self,
        transport: Transport,
        base_url: str,
        capabilities: VenueCapabilities,
        stats: MutableMapping[str, int],
        *,
        max_in_flight: int,
        timeout_s: float,
        rate_limits: bool = True,
    ) -> None:
        self._transport = transport
        self._base_url = base_url
        # Without the venue's rules the limiter still blocks a scope after a 429.
        self._limiter = RateLimiter(capabilities.limits if rate_limits else ())
        self._stats = stats
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._timeout_s = timeout_s

    async def call(
        self,
        route: AccountRoute,
        method: str,
        path: str,
        body: bytes = b"",
        params: Sequence[tuple[str, str]] = (),
    ) -> HttpResponse:
        """One request; 429s are waited out and repeated. Raises `TransportError` when no
        answer came (outcome unknown) and `AlpacaError` after too many 429s."""
        headers = dict(route.headers)
        if body:
            headers["Content-Type"] = "application/json"
        for attempt in range(MAX_RATE_LIMIT_RETRIES + 1):
            await self._limiter.acquire(route.scope, route.cost)
            async with self._in_flight:
                self._stats["requests"] += 1
                resp = await self._transport.request(
                    method,
                    self._base_url + path,
                    headers=headers,
                    params=params,
                    body=body,
                    timeout_s=self._timeout_s,
                )
            self._limiter.observe_headers(route.scope, resp.headers)
            if resp.status != 429:
                return resp
            self._stats["rate_limited"] += 1
            if attempt < MAX_RATE_LIMIT_RETRIES:
                self._stats["retries"] += 1
            self._limiter.penalise(route.scope, retry_after_s(resp.headers))
        raise error_from_response(resp.status, resp.body)

    async def get_json(
        self, route: AccountRoute, path: str, params: Sequence[tuple[str, str]] = ()
    ) -> Any:
        """A read that must succeed: the JSON answer, or `AlpacaError`."""
        try:
            resp = await self.call(route, "GET", path, params=params)
        except TransportError as exc:
            raise transport_failure(exc) from exc
        if resp.status != 200:
            raise error_from_response(resp.status, resp.body)
        try:
            return resp.json()
        except ValueError:
            self._stats["malformed"] += 1
            raise malformed_answer(f"unreadable answer to GET {path}") from None

    async def find_order(self, route: AccountRoute, client_order_id: str) -> AlpacaOrder | None:
        """The account's order with this client order id; None when Alpaca never saw it.
        Raises `TransportError`, `AlpacaError`, or `MalformedOrderError` for an unreadable
        answer."""
        path = route.paths.order_by_client_order_id(client_order_id)
        resp = await self.call(route, "GET", path)
        if resp.status == 404:
            return None
        if resp.status != 200:
            raise error_from_response(resp.status, resp.body)
        try:
            doc = resp.json()
        except ValueError:
            raise MalformedOrderError("the order is not JSON") from None
        return parse_order(doc)

    async def positions(self, route: AccountRoute, symbols: SymbolIndex) -> list[tuple[int, float]]:
        """(instrument, signed quantity) of each position; unreadable rows are counted in
        `malformed` and left out."""
        docs = await self.get_json(route, route.paths.positions())
        out: list[tuple[int, float]] = []
        for doc in docs if isinstance(docs, list) else ():
            try:
                instrument = symbols.get(str(doc["symbol"]))
                qty = float(doc["qty"])
            except (KeyError, TypeError, ValueError, OverflowError):  # Overflow: a huge integer
                instrument, qty = None, math.nan
            if instrument is None or not math.isfinite(qty):
                self._stats["malformed"] += 1
                continue
            out.append((instrument, qty))
        return out

    async def cash(self, route: AccountRoute) -> float:
        """The account's cash (NaN, counted as `malformed`, when unreadable or not finite)."""
        doc = await self.get_json(route, route.paths.account())
        try:
            cash = float(doc["cash"])
        except (KeyError, TypeError, ValueError, OverflowError):  # Overflow: a huge integer
            cash = math.nan
        if not math.isfinite(cash):
            self._stats["malformed"] += 1
            return math.nan
        return cash

    async def get_all_open_orders(self, route: AccountRoute) -> list[Mapping[str, Any]]:
        """Every open order of the account, oldest first, a page of 500 at a time."""
        orders: list[Mapping[str, Any]] = []
        after = ""
        while True:
            params = [("status", "open"), ("limit", str(_PAGE)), ("direction", "asc")]
            if after:
                params.append(("after", after))
            page = await self.get_json(route, route.paths.orders(), params)
            if not isinstance(page, list):
                raise malformed_answer("the order list is not a JSON array")
            orders.extend(doc for doc in page if isinstance(doc, Mapping))
            if len(page) < _PAGE:
                return orders
            last = page[-1].get("created_at") if isinstance(page[-1], Mapping) else None
            if not isinstance(last, str) or last == after:
                return orders
            after = last
