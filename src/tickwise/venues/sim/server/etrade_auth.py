"""OAuth 1.0a as the E*Trade simulator enforces it (venues.md §4.1).

Every simulated client has its own consumer key (`credentials.demo_credential`: key id =
consumer key; secret parts `consumer_secret`, `oauth_token`, `oauth_token_secret`). The demo
access token is valid from the first time the simulator sees it; the token dance
(request token -> authorize -> access token) issues further access tokens for the same consumer.

Checks, in order, each a 401 with a form-encoded `oauth_problem` body:

    parameter_absent            a required oauth_* parameter is missing
    signature_method_rejected   anything but HMAC-SHA1
    timestamp_refused           more than 5 min from the server clock (with the acceptable range)
    consumer_key_unknown        no such consumer key
    token_rejected              unknown token, or one past its midnight (US Eastern) expiry
    token_revoked               revoked with /oauth/revoke_access_token
    signature_invalid           HMAC-SHA1 over the URL as the client used it does not match
    nonce_used                  the consumer used this nonce already (remembered while its
                                timestamp is acceptable: an older replay fails the timestamp)
    token_expired               the access token went inactive (2 h without a call): renew it

The clock is injectable so tests can age tokens without waiting.
"""

from __future__ import annotations

import heapq
import re
import secrets
import string
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import unquote

from tickwise.venues.etrade.oauth import (
    SIGNATURE_METHOD,
    TokenCredentials,
    TokenState,
    hmac_sha1_signature,
    request_token_expired,
    signature_base_string,
)
from tickwise.venues.sim.server.common import SimAccounts, same_secret

TIMESTAMP_WINDOW_S = 300
VERIFIER_LENGTH = 5
_HEADER_FIELD = re.compile(r'([A-Za-z0-9_%\-.~]+)="([^"]*)"')


class OAuthProblemError(Exception):
    """A request the OAuth gate refuses; `problem` is the OAuth problem-reporting name."""

    def __init__(self, problem: str, **details: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.details = details

    @property
    def body(self) -> str:
        extra = "".join(f"&{key}={value}" for key, value in self.details.items())
        return f"oauth_problem={self.problem}{extra}"


@dataclass(frozen=True, slots=True)
class SignedCall:
    """What a signature covers: method, URL as the client used it, oauth_* parameters from the
    Authorization header (signature included), and form-encoded body parameters."""

    method: str
    url: str
    oauth: Mapping[str, str]
    body_params: tuple[tuple[str, str], ...] = ()


def parse_authorization(header: str) -> dict[str, str]:
    """The parameters of an `Authorization: OAuth k="v", ...` header ({} when it is not one)."""
    if not header[:6].lower().startswith("oauth "):
        return {}
    return {unquote(k): unquote(v) for k, v in _HEADER_FIELD.findall(header[6:])}


def signature_matches(
    method: str,
    url: str,
    params: Iterable[tuple[str, str]],
    consumer_secret: str,
    token_secret: str,
    claimed: str,
) -> bool:
    """Whether `claimed` is the HMAC-SHA1 signature of the request (RFC 5849 §3.4)."""
    try:
        base = signature_base_string(method, url, params)
    except UnicodeEncodeError:  # a path or parameter that was not UTF-8 cannot be signed
        return False
    expected = hmac_sha1_signature(base, consumer_secret, token_secret)
    return same_secret(claimed, expected)


@dataclass(slots=True)
class _AccessToken:
    client: int
    state: TokenState
    revoked: bool = False


@dataclass(slots=True)
class _RequestToken:
    client: int
    secret: str = field(repr=False)
    issued_at: datetime
    verifier: str | None = field(default=None, repr=False)


class OAuthGate:
    """Consumer keys, request and access tokens, nonces; see the module docstring."""

    def __init__(self, accounts: SimAccounts, clock: Callable[[], float]) -> None:
        self._accounts = accounts
        self._clock = clock
        self._consumer_secrets: dict[int, str] = {}
        self._access: dict[str, _AccessToken] = {}
        self._requests: dict[str, _RequestToken] = {}
        self._request_order: deque[tuple[datetime, str]] = deque()
        self._nonces: dict[tuple[str, str], float] = {}
        self._nonce_expiries: list[tuple[float, tuple[str, str]]] = []  # a heap

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    # -- the token dance -------------------------------------------------------------------

    def request_token(self, call: SignedCall) -> TokenCredentials:
        """Step 1: a request token for a consumer (callback must be `oob`)."""
        client = self._verify(call, token_secret="")
        if call.oauth.get("oauth_callback", "") != "oob":
            raise OAuthProblemError(
                "parameter_rejected", oauth_parameters_rejected="oauth_callback"
            )
        now = self.now()
        self._forget_old_request_tokens(now)
        token = TokenCredentials(secrets.token_urlsafe(24), secrets.token_urlsafe(24))
        self._requests[token.token] = _RequestToken(client, token.secret, now)
        self._request_order.append((now, token.token))
        return token

    def authorize(self, consumer_key: str, request_token: str) -> str:
        """Step 2, auto-approved: the verifier code the user would read after logging in."""
        pending = self._requests.get(request_token)
        client = self._accounts.client_of_key(consumer_key)
        if pending is None or client is None or pending.client != client:
            raise OAuthProblemError("token_rejected")
        if request_token_expired(pending.issued_at, self.now()):
            raise OAuthProblemError("token_expired")
        alphabet = string.ascii_uppercase + string.digits
        pending.verifier = "".join(secrets.choice(alphabet) for _ in range(VERIFIER_LENGTH))
        return pending.verifier

    def access_token(self, call: SignedCall) -> TokenCredentials:
        """Step 3: trade an authorized request token and its verifier for an access token."""
        pending = self._requests.get(call.oauth.get("oauth_token", ""))
        if pending is None:
            self._verify(call, token_secret=None)  # reports the first problem it finds
            raise OAuthProblemError("token_rejected")
        self._verify(call, token_secret=pending.secret, token_client=pending.client)
        if request_token_expired(pending.issued_at, self.now()):
            raise OAuthProblemError("token_expired")
        verifier = call.oauth.get("oauth_verifier", "")
        if pending.verifier is None or not same_secret(verifier, pending.verifier):
            raise OAuthProblemError("verifier_invalid")
        del self._requests[call.oauth["oauth_token"]]
        token = TokenCredentials(secrets.token_urlsafe(24), secrets.token_urlsafe(24))
        self._access[token.token] = _AccessToken(
            pending.client, TokenState.issued(token, self.now())
        )
        return token

    def renew(self, call: SignedCall) -> int:
        """Reactivate an inactive (or active) access token; its midnight expiry stays."""
        client, token = self._verify_access(call)
        now = self.now()
        if token.state.expired(now):
            raise OAuthProblemError("token_rejected")
        token.state = token.state.renewed(now)
        return client

    def revoke(self, call: SignedCall) -> int:
        client, token = self._verify_access(call)
        token.revoked = True
        return client

    # -- API calls -------------------------------------------------------------------------

    def api_call(self, call: SignedCall) -> int:
        """The client an API call is signed for; refuses inactive and expired tokens."""
        client, token = self._verify_access(call)
        now = self.now()
        if token.state.expired(now):
            raise OAuthProblemError("token_rejected")
        if token.state.inactive(now):
            raise OAuthProblemError("token_expired")
        token.state = token.state.used(now)
        return client

    # -- internals -------------------------------------------------------------------------

    def _verify_access(self, call: SignedCall) -> tuple[int, _AccessToken]:
        key = call.oauth.get("oauth_token", "")
        token = self._access_token(key, call.oauth.get("oauth_consumer_key", ""))
        if token is None:
            self._verify(call, token_secret=None)
            raise OAuthProblemError("token_rejected")
        secret = token.state.credentials.secret
        client = self._verify(call, token_secret=secret, token_client=token.client)
        if token.revoked:
            raise OAuthProblemError("token_revoked")
        return client, token

    def _access_token(self, key: str, consumer_key: str) -> _AccessToken | None:
        """An issued access token, or the consumer's demo token (valid from its first use)."""
        token = self._access.get(key)
        if token is not None or not key:
            return token
        client = self._accounts.client_of_key(consumer_key)
        if client is None:
            return None
        demo = self._accounts.credential(client).secret
        if not same_secret(key, demo.reveal("oauth_token")):
            return None
        secret = demo.reveal("oauth_token_secret")
        token = _AccessToken(client, TokenState.issued(TokenCredentials(key, secret), self.now()))
        self._access[key] = token
        return token

    def consumer_secret(self, client: int) -> str:
        secret = self._consumer_secrets.get(client)
        if secret is None:
            secret = self._accounts.credential(client).secret.reveal("consumer_secret")
            self._consumer_secrets[client] = secret
        return secret

    def _verify(
        self, call: SignedCall, *, token_secret: str | None, token_client: int | None = None
    ) -> int:
        """Header, timestamp, consumer, token owner, signature and nonce; returns the client.
        `token_secret=None`: the token is unknown (check what comes before it, then stop)."""
        oauth = call.oauth
        needed = ["oauth_consumer_key", "oauth_signature", "oauth_timestamp", "oauth_nonce"]
        absent = [name for name in needed if not oauth.get(name)]
        if absent:
            raise OAuthProblemError("parameter_absent", oauth_parameters_absent="&".join(absent))
        if oauth.get("oauth_signature_method", "") != SIGNATURE_METHOD:
            raise OAuthProblemError("signature_method_rejected")
        now = self._clock()
        try:
            stamp = int(oauth["oauth_timestamp"])
        except ValueError:
            stamp = -1
        # Past 2**53 a timestamp no longer converts to a float to compare with the clock.
        if not 0 <= stamp < 2**53 or abs(stamp - now) > TIMESTAMP_WINDOW_S:
            low, high = int(now) - TIMESTAMP_WINDOW_S, int(now) + TIMESTAMP_WINDOW_S
            raise OAuthProblemError(
                "timestamp_refused", oauth_acceptable_timestamps=f"{low}-{high}"
            )
        consumer_key = oauth["oauth_consumer_key"]
        client = self._accounts.client_of_key(consumer_key)
        if client is None:
            raise OAuthProblemError("consumer_key_unknown")
        if token_secret is None or (token_client is not None and token_client != client):
            raise OAuthProblemError("token_rejected")
        params = [(k, v) for k, v in oauth.items() if k != "oauth_signature"]
        if not signature_matches(
            call.method,
            call.url,
            [*params, *call.body_params],
            self.consumer_secret(client),
            token_secret,
            oauth["oauth_signature"],
        ):
            raise OAuthProblemError("signature_invalid")
        self._use_nonce(consumer_key, oauth["oauth_nonce"], stamp, now)
        return client

    def _use_nonce(self, consumer_key: str, nonce: str, stamp: int, now: float) -> None:
        expiries = self._nonce_expiries
        while expiries and expiries[0][0] <= now:
            _, old = heapq.heappop(expiries)
            if self._nonces.get(old, now + 1) <= now:
                del self._nonces[old]
        key = (consumer_key, nonce)
        if key in self._nonces:
            raise OAuthProblemError("nonce_used")
        expiry = stamp + TIMESTAMP_WINDOW_S + 1.0
        self._nonces[key] = expiry
        heapq.heappush(expiries, (expiry, key))

    def _forget_old_request_tokens(self, now: datetime) -> None:
        while self._request_order and request_token_expired(self._request_order[0][0], now):
            _, token = self._request_order.popleft()
            self._requests.pop(token, None)
