"""What every request to the simulated Binance passes: request weight, API key, signature and
the timestamp window (venues.md §3.2, §3.5).

- `ApiKeys`: the simulator's derived HMAC keys (`SimAccounts`), plus keys registered on the app
  (an HMAC secret, or an Ed25519 public key) for tests and for clients with their own keys.
- `signed_payload`: the exact text a REST signature covers, rebuilt from the raw query string
  and the raw form body as received, minus `signature=`; `ws_payload` the WebSocket API's
  (every parameter but the signature, sorted by name).
- `check_timestamp`: `timestamp` (ms or µs) must be under server time + 1 s and within
  `recvWindow` (default 5000 ms, at most 60000) of it, else -1021.
- `ServerLimits`: REQUEST_WEIGHT and RAW_REQUESTS per IP, ORDERS per account, counted with the
  project's `RateLimiter` over the capability rules; 429 with Retry-After when a budget is
  spent, and an IP that keeps coming back before its Retry-After is banned with 418, for
  2 minutes doubling per ban up to 3 days.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from urllib.parse import unquote, urlencode

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tickwise.venues.capabilities import LimitRule
from tickwise.venues.ratelimit import FIRST_BAN_S, MAX_BAN_S, RateLimiter
from tickwise.venues.sim.server.binance_desk import ApiError, mandatory
from tickwise.venues.sim.server.binance_json import interval_of
from tickwise.venues.sim.server.common import SimAccounts, same_secret, wire_bytes

MAX_RECV_WINDOW_MS = 60_000
DEFAULT_RECV_WINDOW_MS = 5_000
AHEAD_TOLERANCE_MS = 1_000
BAN_AFTER_STRIKES = 3  # requests refused while told to wait, before the IP is banned
_ILLEGAL_KEY_CHARS = frozenset(" \t\r\n&=")


def bad_key() -> ApiError:
    return ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")


def bad_signature() -> ApiError:
    return ApiError(400, -1022, "Signature for this request is not valid.")


@dataclass(frozen=True)
class ApiKey:
    """One API key: its account holder and what checks its signatures."""

    client: int
    hmac_secret: bytes | None = field(default=None, repr=False)
    ed25519: Ed25519PublicKey | None = field(default=None, repr=False)

    def verify(self, payload: str, signature: str) -> bool:
        if self.hmac_secret is not None:
            expected = hmac.new(self.hmac_secret, wire_bytes(payload), hashlib.sha256).hexdigest()
            return same_secret(signature.lower(), expected)
        if self.ed25519 is not None:
            try:
                raw = base64.b64decode(signature, validate=True)
                self.ed25519.verify(raw, wire_bytes(payload))
            except (binascii.Error, ValueError, InvalidSignature):
                return False
            return True
        return False


class ApiKeys:
    """API keys the server accepts (see module doc)."""

    def __init__(self, accounts: SimAccounts | None = None) -> None:
        self._accounts = accounts
        self._keys: dict[str, ApiKey] = {}

    def bind(self, accounts: SimAccounts) -> ApiKeys:
        """Also accept the simulator's derived keys of `accounts`."""
        self._accounts = accounts
        return self

    def add_hmac(self, api_key: str, client: int, secret: str | bytes) -> None:
        raw = secret.encode() if isinstance(secret, str) else secret
        self._keys[api_key] = ApiKey(client, hmac_secret=raw)

    def add_ed25519(self, api_key: str, client: int, public_key: Ed25519PublicKey | bytes) -> None:
        """Register an Ed25519 key (the key object, or its public key in PEM)."""
        if isinstance(public_key, bytes):
            loaded = serialization.load_pem_public_key(public_key)
            if not isinstance(loaded, Ed25519PublicKey):
                raise ValueError(f"API key {api_key[:8]}…: not an Ed25519 public key")
            public_key = loaded
        self._keys[api_key] = ApiKey(client, ed25519=public_key)

    def get(self, api_key: str) -> ApiKey | None:
        key = self._keys.get(api_key)
        if key is not None or self._accounts is None:
            return key
        client = self._accounts.client_of_key(api_key)
        if client is None:
            return None
        secret = self._accounts.credential(client).secret.reveal("secret")
        key = self._keys[api_key] = ApiKey(client, hmac_secret=secret.encode())
        return key

    def require(self, api_key: str | None) -> ApiKey:
        """The key named by a request, or the venue's -2014/-2015 answer."""
        if not api_key:
            raise bad_key()
        if any(ch in _ILLEGAL_KEY_CHARS for ch in api_key):
            raise ApiError(401, -2014, "API-key format invalid.")
        key = self.get(api_key)
        if key is None:
            raise bad_key()
        return key


def _strip_signature(raw: str) -> tuple[str, str | None]:
    kept: list[str] = []
    signature: str | None = None
    for part in raw.split("&") if raw else ():
        if part.startswith("signature="):
            signature = unquote(part[len("signature=") :])
        else:
            kept.append(part)
    return "&".join(kept), signature


def signed_payload(raw_query: str, raw_body: str) -> tuple[str, str | None]:
    """(payload, signature) of a REST request: query then body, each without `signature=`."""
    query, in_query = _strip_signature(raw_query)
    body, in_body = _strip_signature(raw_body)
    return query + body, in_query if in_query is not None else in_body


def _param_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def ws_payloads(params: Mapping[str, object]) -> tuple[str, ...]:
    """The texts a WebSocket API signature may cover: the sorted `k=v` pairs (all but the
    signature) as written, and URL-encoded as the official SDK does."""
    pairs = sorted((k, _param_text(v)) for k, v in params.items() if k != "signature")
    plain = "&".join(f"{k}={v}" for k, v in pairs)
    encoded = urlencode(pairs)
    return (plain,) if encoded == plain else (plain, encoded)


def check_timestamp(params: Mapping[str, object], server_ms: int) -> None:
    """-1021 unless the request's timestamp is inside its receive window."""
    raw = params.get("timestamp")
    try:
        stamp = int(str(raw))
        stamp_ms = stamp / 1000 if stamp >= 10**14 else float(stamp)  # µs timestamps allowed
    except (ValueError, OverflowError):  # OverflowError: more digits than any float holds
        raise mandatory("timestamp") from None
    window_raw = params.get("recvWindow")
    try:
        window = Decimal(str(window_raw)) if window_raw not in (None, "") else None
    except InvalidOperation:
        raise mandatory("recvWindow") from None
    if window is None:
        window = Decimal(DEFAULT_RECV_WINDOW_MS)
    if not window.is_finite() or window <= 0 or window > MAX_RECV_WINDOW_MS:
        raise ApiError(400, -1131, f"recvWindow must be less than {MAX_RECV_WINDOW_MS}.")
    if stamp_ms >= server_ms + AHEAD_TOLERANCE_MS:
        raise ApiError(
            400,
            -1021,
            f"Timestamp for this request was {AHEAD_TOLERANCE_MS}ms ahead of the server's time.",
        )
    if server_ms - stamp_ms > float(window):
        raise ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")


@dataclass(slots=True)
class _IpState:
    wait_until: float = -math.inf  # what the last 429 told it
    strikes: int = 0
    banned_until: float = -math.inf
    bans: int = 0


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


class ServerLimits:
    """The server's side of the Binance rate limits (see module doc)."""

    def __init__(
        self,
        rules: tuple[LimitRule, ...],
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.rules = rules
        self._clock = clock
        self._wall_ms = wall_ms
        self._limiter = RateLimiter(rules, clock=clock)
        self._ips: dict[str, _IpState] = {}
        self.refused = 0
        self.bans = 0

    def admit(self, ip: str, cost: Mapping[str, float]) -> None:
        """Charge a request's weight to its IP, or refuse it with 429 / 418."""
        now = self._clock()
        state = self._ips.setdefault(ip, _IpState())
        if state.banned_until > now:
            self.refused += 1
            raise self._banned(ip, state, now)
        wait = self._limiter.try_acquire({"ip": ip}, cost)
        if wait <= 0.0:
            return
        self.refused += 1
        if now < state.wait_until:  # back before its Retry-After: ignoring the 429
            state.strikes += 1
            if state.strikes >= BAN_AFTER_STRIKES:
                state.banned_until = now + min(FIRST_BAN_S * 2.0**state.bans, MAX_BAN_S)
                state.bans += 1
                state.strikes = 0
                self.bans += 1
                raise self._banned(ip, state, now)
        state.wait_until = max(state.wait_until, now + wait)
        rule = self._first("weight")
        limit = f"{int(rule.capacity)} request weight per {_window(rule)}" if rule else "spent"
        raise ApiError(
            429,
            -1003,
            f"Too much request weight used; current limit is {limit}. Please use WebSocket "
            "Streams for live updates to avoid polling the API.",
            _retry_after(wait),
        )

    def admit_order(self, client: int) -> None:
        """Count a new order against its account's ORDERS budgets, or refuse it (-1015)."""
        account = {"account": str(client)}
        wait = self._limiter.try_acquire(account, {"orders": 1.0})
        if wait <= 0.0:
            return
        self.refused += 1
        full = next(
            (
                r
                for r in self.rules
                if r.unit == "orders" and self._limiter.used(r.name, str(client)) + 1 > r.capacity
            ),
            self._first("orders"),
        )
        limit = f"{int(full.capacity)} orders per {_window(full)}" if full else "spent"
        raise ApiError(
            429, -1015, f"Too many new orders; current limit is {limit}.", _retry_after(wait)
        )

    def headers(self, ip: str, client: int | None = None) -> dict[str, str]:
        """The usage headers of an answer (order counts only for order requests)."""
        out: dict[str, str] = {}
        for rule in self.rules:
            if rule.header is None:
                continue
            if rule.scope == "ip":
                out[_header_name(rule.header)] = str(int(self._limiter.used(rule.name, ip)))
            elif rule.scope == "account" and client is not None:
                used = self._limiter.used(rule.name, str(client))
                out[_header_name(rule.header)] = str(int(used))
        return out

    def used_weight(self, ip: str) -> int:
        rule = self._first("weight")
        return int(self._limiter.used(rule.name, ip)) if rule else 0

    def _first(self, unit: str) -> LimitRule | None:
        return next((r for r in self.rules if r.unit == unit), None)

    def _banned(self, ip: str, state: _IpState, now: float) -> ApiError:
        until_ms = self._wall_ms() + int((state.banned_until - now) * 1000)
        return ApiError(
            418,
            -1003,
            f"Way too much request weight used; IP banned until {until_ms}. Please use "
            "WebSocket Streams for live updates to avoid bans.",
            _retry_after(state.banned_until - now),
        )


def _header_name(lower: str) -> str:
    return "-".join(part.upper() if part != "x" else "X" for part in lower.split("-"))


def _window(rule: LimitRule) -> str:
    name, num = interval_of(rule.window_s)
    return f"{num} {name}"
