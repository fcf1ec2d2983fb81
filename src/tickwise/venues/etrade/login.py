"""A new E*Trade access token by the three-legged OAuth login (venues.md §4.1).

An access token dies at the first midnight US Eastern after it was issued, and renewing cannot
bring it back: the account must log in again.

    1. request token   GET /oauth/request_token, signed with the consumer secret alone
    2. authorize       the user opens the authorize page and reads a verifier code
    3. access token    GET /oauth/access_token with the request token and the verifier

Step 2 is the user's: `Authorize` is whatever obtains the verifier for a given authorize URL
(an operator's login service, a prompt). `follow_authorize_page` reads it from the page itself,
which only a venue that approves its own login page does: the simulator.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tickwise.venues.etrade.errors import EtradeError, EtradeErrorKind, error_from_response
from tickwise.venues.etrade.oauth import (
    ConsumerCredentials,
    OAuthEndpoints,
    OAuthResponseError,
    SignedRequest,
    TokenCredentials,
    access_token_request,
    authorize_url,
    parse_token_response,
    request_token_request,
)
from tickwise.venues.etrade.wire import oauth_problem
from tickwise.venues.http import HttpResponse, Transport

Authorize = Callable[[str], Awaitable[str]]
"""The user's part of a login: given the authorize page's URL, the verifier code it shows."""


async def log_in(
    transport: Transport,
    endpoints: OAuthEndpoints,
    consumer: ConsumerCredentials,
    authorize: Authorize,
    *,
    timestamp: int,
    timeout_s: float,
) -> TokenCredentials:
    """A fresh access token for `consumer`; `EtradeError` (kind AUTH) when a step is refused."""
    request = await _token(
        transport, request_token_request(endpoints, consumer, timestamp=timestamp), timeout_s
    )
    verifier = await authorize(authorize_url(endpoints, consumer.key, request.token))
    signed = access_token_request(endpoints, consumer, request, verifier, timestamp=timestamp)
    return await _token(transport, signed, timeout_s)


def follow_authorize_page(transport: Transport, *, timeout_s: float = 10.0) -> Authorize:
    """An `Authorize` for a venue whose authorize page approves by itself and answers with
    the verifier as its body (the simulator; a live E*Trade page needs the user)."""

    async def authorize(url: str) -> str:
        response = await transport.request("GET", url, timeout_s=timeout_s)
        if response.status >= 300:
            raise _refused("authorize", response)
        return response.text.strip()

    return authorize


async def _token(transport: Transport, signed: SignedRequest, timeout_s: float) -> TokenCredentials:
    response = await transport.request(
        signed.method,
        signed.url,
        headers={"Authorization": signed.authorization},
        timeout_s=timeout_s,
    )
    step = signed.url.rsplit("/", 1)[-1]
    if response.status >= 300:
        raise _refused(step, response)
    try:
        return parse_token_response(response.body).credentials
    except OAuthResponseError as exc:
        raise EtradeError(
            0,
            f"login: {step}: {exc}",
            http_status=response.status,
            kind=EtradeErrorKind.AUTH,
            retryable=False,
        ) from exc


def _refused(step: str, response: HttpResponse) -> EtradeError:
    error = error_from_response(response.status, response.body)
    if response.status not in (401, 403):
        return error
    return EtradeError(
        error.code,
        f"login refused at {step} ({oauth_problem(response.body) or error.message})",
        http_status=response.status,
        kind=EtradeErrorKind.AUTH,
        retryable=False,
    )
