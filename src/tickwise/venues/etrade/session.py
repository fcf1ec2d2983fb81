"""Signed E*Trade calls for many accounts: OAuth 1.0a, rate limits, token renewal.

Every call is signed with the account's consumer key/secret and access token/secret (HMAC-SHA1,
`oauth.authorization_header`) over the URL as sent, query included. Before sending, the call
waits for room under E*Trade's per-module limits, counted per consumer key and per account
(`capabilities.ETRADE`), renews a token that has been idle close to 2 h, and logs the account
in again (`login.log_in`) once its token is past midnight US Eastern, when the session was given
a way to authorize a login; without one, such an account's calls fail with an AUTH error.

What the venue answers, and what this layer does about it before the caller sees anything:

    400 "Number of requests exceeded the rate limit"  block the account's keys (doubling pause),
                                                       then send again (the request did not count)
    401 oauth_problem=token_expired                   renew (once), then send again
    401 oauth_problem=token_rejected                  log in again (once, when it can), then
                                                       send again
    401 timestamp_refused / nonce_used                sign again with a fresh timestamp and
                                                       nonce (once)
    anything else that is not 2xx                     `EtradeError` (errors.py) to the caller
    no answer                                         `TransportError` to the caller
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from tickwise.venues.capabilities import ETRADE
from tickwise.venues.etrade.errors import EtradeError, EtradeErrorKind, error_from_response
from tickwise.venues.etrade.login import Authorize, log_in
from tickwise.venues.etrade.oauth import (
    ConsumerCredentials,
    OAuthEndpoints,
    TokenState,
    authorization_header,
    renew_request,
)
from tickwise.venues.etrade.wire import oauth_problem
from tickwise.venues.http import HttpResponse, Transport
from tickwise.venues.ratelimit import RateLimiter

log = logging.getLogger(__name__)

RENEW_MARGIN = timedelta(minutes=5)  # renew this long before the 2 h idle limit
MAX_RATE_LIMITED = 8  # rate-limit answers in a row before the call gives up
_RESIGN_PROBLEMS = ("timestamp_refused", "nonce_used")

Sleep = Callable[[float], Awaitable[object]]


@dataclass(eq=False)
class AccountSession:
    """One account's keys and token, as the session signs its calls."""

    client: int
    account_id_key: str
    consumer: ConsumerCredentials
    token: TokenState
    scope: dict[str, str] = field(init=False)
    renew_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    token_version: int = 0

    def __post_init__(self) -> None:
        self.scope = {"key": self.consumer.key, "account": self.account_id_key}

    @property
    def path(self) -> str:
        return f"/v1/accounts/{self.account_id_key}"


class EtradeSession:
    """Sends signed calls for any account over one transport (see module docstring)."""

    def __init__(
        self,
        transport: Transport,
        base_url: str,
        endpoints: OAuthEndpoints,
        limiter: RateLimiter,
        stats: Counter[str],
        *,
        clock: Callable[[], float],
        sleep: Sleep,
        max_in_flight: int,
        timeout_s: float,
        authorize: Authorize | None = None,
    ) -> None:
        """`authorize`: the user's step of a new login (`login.Authorize`); None: an expired
        token is not replaced, and its account's calls fail until it is."""
        self._transport = transport
        self._authorize = authorize
        self._base = base_url.rstrip("/")
        self._endpoints = endpoints
        self._limiter = limiter
        self._stats = stats
        self._clock = clock
        self._sleep = sleep
        self._slots = asyncio.Semaphore(max_in_flight)
        self._timeout_s = timeout_s

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    async def call(
        self,
        account: AccountSession,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        wait: bool = True,
    ) -> HttpResponse | None:
        """A 2xx answer to one signed call. With `wait=False` the call is skipped (None) when
        the account has no room under its limits now, or the venue says it is over them."""
        cost = ETRADE.cost(f"{method} {path}")
        retried: set[str] = set()
        rate_limited = 0
        while True:
            if account.token.expired(self.now()):
                await self.login(account, account.token_version)
            elif account.token.needs_renew(self.now()):
                await self.renew(account, account.token_version)
            if wait:
                await self._limiter.acquire(account.scope, cost, sleep=self._sleep)
            elif self._limiter.try_acquire(account.scope, cost) > 0.0:
                self._stats["skipped_for_rate_limit"] += 1
                return None
            version = account.token_version
            response = await self._send(account, method, path, params, body)
            if response.status < 300:
                account.token = account.token.used(self.now())
                return response
            error = error_from_response(response.status, response.body)
            if error.kind is EtradeErrorKind.RATE_LIMITED:
                self._stats["rate_limited"] += 1
                self._limiter.penalise(account.scope, _retry_after(response))
                rate_limited += 1
                if not wait:
                    return None
                if rate_limited >= MAX_RATE_LIMITED:
                    raise error
                continue
            if error.kind is EtradeErrorKind.AUTH:
                problem = oauth_problem(response.body)
                if problem == "token_expired" and "renew" not in retried:
                    retried.add("renew")
                    await self.renew(account, version)
                    continue
                if problem == "token_rejected" and self._authorize and "login" not in retried:
                    retried.add("login")  # the venue's midnight came before ours
                    await self.login(account, version)
                    continue
                if problem in _RESIGN_PROBLEMS and problem not in retried:
                    retried.add(problem)
                    self._stats["resigned"] += 1
                    continue
                self._stats["auth_errors"] += 1
                log.warning(
                    "E*Trade refused the credentials of client %d: %s",
                    account.client,
                    problem or error.message,
                )
            raise error

    async def _send(
        self,
        account: AccountSession,
        method: str,
        path: str,
        params: Sequence[tuple[str, str]],
        body: bytes,
    ) -> HttpResponse:
        url = self._base + path
        signed_url = f"{url}?{urlencode(list(params))}" if params else url
        headers = {
            "Authorization": authorization_header(
                method,
                signed_url,
                account.consumer,
                account.token.credentials,
                timestamp=int(self._clock()),
            ),
            "Accept": "application/json",
        }
        if body:
            headers["Content-Type"] = "application/json"
        async with self._slots:
            self._stats["requests"] += 1
            return await self._transport.request(
                method, url, headers=headers, params=params, body=body, timeout_s=self._timeout_s
            )

    async def login(self, account: AccountSession, seen_version: int) -> None:
        """Log the account in again for a new access token, unless its token was replaced
        since `seen_version`."""
        async with account.renew_lock:
            if account.token_version != seen_version:
                return
            if self._authorize is None:
                self._stats["auth_errors"] += 1
                raise EtradeError(
                    "token_rejected",
                    f"client {account.client}: the access token expired at midnight US Eastern; "
                    "log in again",
                    http_status=401,
                    kind=EtradeErrorKind.AUTH,
                    retryable=False,
                )
            async with self._slots:
                self._stats["requests"] += 3
                try:
                    token = await log_in(
                        self._transport,
                        self._endpoints,
                        account.consumer,
                        self._authorize,
                        timestamp=int(self._clock()),
                        timeout_s=self._timeout_s,
                    )
                except EtradeError:
                    self._stats["auth_errors"] += 1
                    raise
            account.token = TokenState.issued(token, self.now(), account.token.renew_margin)
            account.token_version += 1
            self._stats["logins"] += 1
            log.info("E*Trade client %d logged in again for a new access token", account.client)

    async def renew(self, account: AccountSession, seen_version: int) -> None:
        """Renew the account's access token, unless it was renewed since `seen_version`."""
        async with account.renew_lock:
            if account.token_version != seen_version:
                return
            signed = renew_request(
                self._endpoints,
                account.consumer,
                account.token.credentials,
                timestamp=int(self._clock()),
            )
            async with self._slots:
                self._stats["requests"] += 1
                response = await self._transport.request(
                    signed.method,
                    signed.url,
                    headers={"Authorization": signed.authorization},
                    timeout_s=self._timeout_s,
                )
            if response.status >= 300:
                self._stats["auth_errors"] += 1
                error = error_from_response(response.status, response.body)
                if response.status != 401:
                    raise error
                raise EtradeError(
                    error.code,
                    f"token renewal refused ({oauth_problem(response.body) or error.message}): "
                    "log in again",
                    http_status=401,
                    kind=EtradeErrorKind.AUTH,
                    retryable=False,
                )
            now = self.now()
            state = account.token
            account.token = state.used(now) if state.expired(now) else state.renewed(now)
            account.token_version += 1
            self._stats["renewals"] += 1


def _retry_after(response: HttpResponse) -> float | None:
    for name, value in response.headers.items():
        if name.lower() == "retry-after":
            try:
                seconds = float(value)
            except ValueError:
                return None
            return seconds if math.isfinite(seconds) and seconds >= 0 else None
    return None
