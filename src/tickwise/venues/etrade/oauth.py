"""OAuth 1.0a (RFC 5849, HMAC-SHA1) as E*Trade uses it: signing, the token dance, token lifetime.

Pure functions, no network: the adapter sends what these build and hands back what it received.

    request token  ->  authorize URL (the user logs in, gets a verifier)  ->  access token
    every call signed with consumer key/secret + access token/secret
    idle 2 h -> inactive, renew with /oauth/renew_access_token; midnight US Eastern -> log in again

Nonce and timestamp are arguments (generated when omitted) so tests and the simulator can
reproduce a signature exactly.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from datetime import time as wall_time
from typing import NoReturn
from urllib.parse import parse_qsl, quote, urlencode, urlsplit
from zoneinfo import ZoneInfo

US_EASTERN = ZoneInfo("America/New_York")
IDLE_LIMIT = timedelta(hours=2)
REQUEST_TOKEN_LIFETIME = timedelta(minutes=5)
SIGNATURE_METHOD = "HMAC-SHA1"
_DEFAULT_PORTS = {"http": 80, "https": 443}


class OAuthResponseError(ValueError):
    """A token endpoint answered something that is not a usable token."""


def _refuse_pickle(obj: object) -> NoReturn:
    raise TypeError(f"{type(obj).__name__} holds a secret and is not pickled")


@dataclass(frozen=True, slots=True)
class ConsumerCredentials:
    """The application's consumer key and secret; the secret never shows in repr or str, and
    the object refuses to be pickled (so it cannot leak through a message between processes)."""

    key: str
    secret: str = field(repr=False)

    def __reduce__(self) -> tuple[object, ...]:
        _refuse_pickle(self)


@dataclass(frozen=True, slots=True)
class TokenCredentials:
    """A request or access token with its secret; neither shows in repr or str; not picklable."""

    token: str = field(repr=False)
    secret: str = field(repr=False)

    def __reduce__(self) -> tuple[object, ...]:
        _refuse_pickle(self)


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What to send: the method, the URL (query included) and the `Authorization` header."""

    method: str
    url: str
    authorization: str


@dataclass(frozen=True, slots=True)
class OAuthEndpoints:
    """Where the token endpoints live; the OAuth host is configurable (sandbox keys, simulator)."""

    oauth_base: str = "https://api.etrade.com"
    authorize_base: str = "https://us.etrade.com/e/t/etws/authorize"

    @property
    def request_token(self) -> str:
        return f"{self.oauth_base}/oauth/request_token"

    @property
    def access_token(self) -> str:
        return f"{self.oauth_base}/oauth/access_token"

    @property
    def renew_access_token(self) -> str:
        return f"{self.oauth_base}/oauth/renew_access_token"

    @property
    def revoke_access_token(self) -> str:
        return f"{self.oauth_base}/oauth/revoke_access_token"


# --- RFC 5849 section 3.4: signing -------------------------------------------------------------


def percent_encode(value: str) -> str:
    """RFC 3986 percent-encoding of the UTF-8 bytes: everything but `A-Z a-z 0-9 - . _ ~`."""
    return quote(value, safe="-._~")


def normalized_url(url: str) -> str:
    """The base string URI (RFC 5849 3.4.1.2): lower-case scheme and host, no default port,
    no query or fragment."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if not scheme or not host:
        raise ValueError(f"OAuth URL needs a scheme and a host: {url!r}")
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path or '/'}"


def normalized_parameters(params: Iterable[tuple[str, str]]) -> str:
    """RFC 5849 3.4.1.3.2: encode each name and value, sort by name then value, join."""
    encoded = sorted((percent_encode(k), percent_encode(v)) for k, v in params)
    return "&".join(f"{k}={v}" for k, v in encoded)


def signature_base_string(method: str, url: str, params: Iterable[tuple[str, str]] = ()) -> str:
    """RFC 5849 3.4.1: `METHOD&enc(url)&enc(params)`.

    `params` are the oauth_* protocol parameters and any form-encoded body parameters; the URL's
    own query parameters are added here. `oauth_signature` and `realm` are left out.
    """
    query = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    signed = [(k, v) for k, v in [*query, *params] if k not in ("oauth_signature", "realm")]
    return "&".join(
        (
            method.upper(),
            percent_encode(normalized_url(url)),
            percent_encode(normalized_parameters(signed)),
        )
    )


def hmac_sha1_signature(base_string: str, consumer_secret: str, token_secret: str = "") -> str:
    """base64(HMAC-SHA1(key=`enc(consumer_secret)&enc(token_secret)`, base string))."""
    key = f"{percent_encode(consumer_secret)}&{percent_encode(token_secret)}"
    digest = hmac.new(key.encode(), base_string.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def new_nonce() -> str:
    return secrets.token_hex(16)


def oauth_parameters(
    consumer: ConsumerCredentials,
    token: TokenCredentials | None = None,
    *,
    nonce: str,
    timestamp: int,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The oauth_* protocol parameters (unsigned) for one request."""
    params = {
        "oauth_consumer_key": consumer.key,
        "oauth_nonce": nonce,
        "oauth_signature_method": SIGNATURE_METHOD,
        "oauth_timestamp": str(timestamp),
        "oauth_version": "1.0",
    }
    if token is not None:
        params["oauth_token"] = token.token
    if extra:
        params.update(extra)
    return params


def authorization_header(
    method: str,
    url: str,
    consumer: ConsumerCredentials,
    token: TokenCredentials | None = None,
    *,
    body_params: Iterable[tuple[str, str]] = (),
    extra_oauth: Mapping[str, str] | None = None,
    nonce: str | None = None,
    timestamp: int | None = None,
    realm: str | None = None,
) -> str:
    """The `Authorization: OAuth ...` header value for one request, signed with HMAC-SHA1.

    `body_params` are form-encoded body parameters (never JSON or XML bodies); `extra_oauth` adds
    protocol parameters such as `oauth_callback` or `oauth_verifier`.
    """
    params = oauth_parameters(
        consumer,
        token,
        nonce=new_nonce() if nonce is None else nonce,
        timestamp=int(time.time()) if timestamp is None else timestamp,
        extra=extra_oauth,
    )
    base = signature_base_string(method, url, [*params.items(), *body_params])
    params["oauth_signature"] = hmac_sha1_signature(
        base, consumer.secret, "" if token is None else token.secret
    )
    fields = [f'realm="{realm}"'] if realm is not None else []
    fields += [f'{percent_encode(k)}="{percent_encode(v)}"' for k, v in sorted(params.items())]
    return "OAuth " + ", ".join(fields)


# --- the token dance ---------------------------------------------------------------------------


def request_token_request(
    endpoints: OAuthEndpoints,
    consumer: ConsumerCredentials,
    *,
    nonce: str | None = None,
    timestamp: int | None = None,
) -> SignedRequest:
    """Step 1: ask for a request token (callback always `oob`, empty token secret)."""
    url = endpoints.request_token
    header = authorization_header(
        "GET",
        url,
        consumer,
        extra_oauth={"oauth_callback": "oob"},
        nonce=nonce,
        timestamp=timestamp,
    )
    return SignedRequest("GET", url, header)


def authorize_url(endpoints: OAuthEndpoints, consumer_key: str, request_token: str) -> str:
    """Step 2: where the user logs in and gets the verifier code."""
    return f"{endpoints.authorize_base}?{urlencode({'key': consumer_key, 'token': request_token})}"


def access_token_request(
    endpoints: OAuthEndpoints,
    consumer: ConsumerCredentials,
    request_token: TokenCredentials,
    verifier: str,
    *,
    nonce: str | None = None,
    timestamp: int | None = None,
) -> SignedRequest:
    """Step 3: trade the request token and the user's verifier for an access token."""
    if not verifier.strip():
        raise ValueError("OAuth verifier is empty")
    url = endpoints.access_token
    header = authorization_header(
        "GET",
        url,
        consumer,
        request_token,
        extra_oauth={"oauth_verifier": verifier.strip()},
        nonce=nonce,
        timestamp=timestamp,
    )
    return SignedRequest("GET", url, header)


def renew_request(
    endpoints: OAuthEndpoints,
    consumer: ConsumerCredentials,
    access_token: TokenCredentials,
    *,
    nonce: str | None = None,
    timestamp: int | None = None,
) -> SignedRequest:
    """Reactivate an access token that went inactive after 2 h idle."""
    url = endpoints.renew_access_token
    header = authorization_header(
        "GET", url, consumer, access_token, nonce=nonce, timestamp=timestamp
    )
    return SignedRequest("GET", url, header)


def revoke_request(
    endpoints: OAuthEndpoints,
    consumer: ConsumerCredentials,
    access_token: TokenCredentials,
    *,
    nonce: str | None = None,
    timestamp: int | None = None,
) -> SignedRequest:
    """End an access token."""
    url = endpoints.revoke_access_token
    header = authorization_header(
        "GET", url, consumer, access_token, nonce=nonce, timestamp=timestamp
    )
    return SignedRequest("GET", url, header)


@dataclass(frozen=True, slots=True)
class TokenResponse:
    """A token endpoint's form-encoded answer."""

    credentials: TokenCredentials
    callback_confirmed: bool = False


def parse_token_response(body: str | bytes) -> TokenResponse:
    """Parse `oauth_token=..&oauth_token_secret=..[&oauth_callback_confirmed=true]`."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    fields = dict(parse_qsl(text.strip(), keep_blank_values=True))
    token, secret = fields.get("oauth_token", ""), fields.get("oauth_token_secret", "")
    if not token or not secret:
        raise OAuthResponseError(
            "token response lacks oauth_token or oauth_token_secret "
            f"(fields: {', '.join(sorted(fields)) or 'none'})"
        )
    confirmed = fields.get("oauth_callback_confirmed", "").lower() == "true"
    return TokenResponse(TokenCredentials(token, secret), confirmed)


# --- token lifetime ----------------------------------------------------------------------------


def _aware(now: datetime, what: str) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {now.isoformat()}")
    return now


def request_token_expired(issued_at: datetime, now: datetime) -> bool:
    """A request token must be traded for an access token within 5 minutes of issue."""
    return _aware(now, "now") - _aware(issued_at, "issued_at") >= REQUEST_TOKEN_LIFETIME


def next_eastern_midnight(moment: datetime) -> datetime:
    """The first midnight US Eastern strictly after `moment` (DST-aware)."""
    local = _aware(moment, "moment").astimezone(US_EASTERN)
    return datetime.combine(local.date() + timedelta(days=1), wall_time(0), tzinfo=US_EASTERN)


@dataclass(frozen=True, slots=True)
class TokenState:
    """An access token and when it was issued and last used.

    `expired(now)`: past the first midnight US Eastern after issue; only a new login helps.
    `inactive(now)`: 2 h or more without a call; `renewed(now)` after /oauth/renew_access_token.
    `needs_renew(now)`: not expired, and idle for at least `IDLE_LIMIT - renew_margin` (renew a
    little before the venue turns it off).
    """

    credentials: TokenCredentials
    issued_at: datetime
    last_used_at: datetime
    renew_margin: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        _aware(self.issued_at, "issued_at")
        _aware(self.last_used_at, "last_used_at")
        if not timedelta(0) <= self.renew_margin < IDLE_LIMIT:
            raise ValueError(f"renew_margin must be in [0, 2 h), got {self.renew_margin}")

    @classmethod
    def issued(
        cls, credentials: TokenCredentials, now: datetime, renew_margin: timedelta = timedelta(0)
    ) -> TokenState:
        return cls(credentials, now, now, renew_margin)

    @property
    def expires_at(self) -> datetime:
        return next_eastern_midnight(self.issued_at)

    def expired(self, now: datetime) -> bool:
        return _aware(now, "now") >= self.expires_at

    def inactive(self, now: datetime) -> bool:
        return _aware(now, "now") - self.last_used_at >= IDLE_LIMIT

    def needs_renew(self, now: datetime) -> bool:
        idle = _aware(now, "now") - self.last_used_at
        return not self.expired(now) and idle >= IDLE_LIMIT - self.renew_margin

    def used(self, now: datetime) -> TokenState:
        """After a successful signed call at `now`."""
        return replace(self, last_used_at=max(self.last_used_at, _aware(now, "now")))

    def renewed(self, now: datetime) -> TokenState:
        """After a successful renew at `now`; the midnight expiry does not move."""
        if self.expired(now):
            raise ValueError("an expired token cannot be renewed; log in again")
        return self.used(now)
