"""Binance Spot request signing (HMAC-SHA256 and Ed25519) and the server clock offset.

A SIGNED request carries `recvWindow` and `timestamp` (server time, ms) and ends with
`signature=`, computed over the percent-encoded query string followed by the raw body
(venues.md §3.2). The timestamp must come from `ServerClock`, which tracks how far the local
clock is from the server's, so that requests land inside the receive window (else -1021).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal
from urllib.parse import quote

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

API_KEY_HEADER = "X-MBX-APIKEY"
MAX_RECV_WINDOW_MS = 60_000

KeyKind = Literal["hmac", "ed25519"]


class SigningError(ValueError):
    """A key or a request that cannot be signed (bad key material, reserved parameter)."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An API key and its secret: the HMAC secret, or the Ed25519 private key in PEM.

    The secret never appears in `repr` or `str`, so keys can be logged with their holder.
    """

    api_key: str
    kind: KeyKind
    secret: bytes | str = field(repr=False)

    def __post_init__(self) -> None:
        if self.kind not in ("hmac", "ed25519"):
            raise SigningError(f"signing key kind {self.kind!r} is not 'hmac' or 'ed25519'")
        if not self.api_key:
            raise SigningError("signing key has an empty api_key")
        if not self.secret:
            raise SigningError(f"signing key {self.api_key[:8]}… has an empty secret")

    def __repr__(self) -> str:
        return f"SigningKey(api_key={self.api_key!r}, kind={self.kind!r}, secret=<hidden>)"

    __str__ = __repr__

    def sign(self, payload: str) -> str:
        """The signature of `payload`, as Binance expects it before URL encoding."""
        if self.kind == "hmac":
            return sign_hmac(self.secret, payload)
        pem = self.secret.encode() if isinstance(self.secret, str) else self.secret
        return sign_ed25519(pem, payload)


def sign_hmac(secret: bytes | str, payload: str) -> str:
    """Lower-case hex HMAC-SHA256 of `payload` under `secret`."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def sign_ed25519(private_key_pem: bytes, payload: str) -> str:
    """Base64 Ed25519 signature of `payload` (not yet URL encoded)."""
    key = _ed25519_key(private_key_pem)
    return base64.b64encode(key.sign(payload.encode())).decode("ascii")


@functools.lru_cache(maxsize=256)
def _ed25519_key(private_key_pem: bytes) -> Ed25519PrivateKey:
    """The parsed key, kept: parsing PEM costs more than signing."""
    try:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningError(
            f"Ed25519 private key is not a readable unencrypted PEM: {exc}"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"private key is {type(key).__name__}, not an Ed25519 key")
    return key


def format_param(value: object) -> str:
    """A parameter value as Binance reads it: decimals in plain notation, booleans lower case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SigningError(f"parameter value {value!r} is not a finite number")
        return format(Decimal(repr(value)), "f")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise SigningError(f"parameter value {value!r} is not a finite number")
        return format(value, "f")
    if isinstance(value, list | tuple):
        return json.dumps(list(value), separators=(",", ":"))
    raise SigningError(f"parameter value of type {type(value).__name__} cannot be sent")


def encode_query(params: Mapping[str, object]) -> str:
    """`k=v&...` in insertion order, every key and value percent-encoded (UTF-8, RFC 3986)."""
    return "&".join(
        f"{quote(str(k), safe='')}={quote(format_param(v), safe='')}" for k, v in params.items()
    )


_RESERVED = ("timestamp", "recvWindow", "signature")


def signed_query(
    params: Mapping[str, object],
    *,
    key: SigningKey,
    timestamp_ms: int,
    recv_window_ms: int | None = 5000,
    body: str = "",
) -> str:
    """The full query string of a SIGNED request: params, recvWindow, timestamp, signature.

    `body` is the raw form body sent with it (if any); it is signed but not returned.
    """
    clash = [name for name in _RESERVED if name in params]
    if clash:
        raise SigningError(f"parameter {clash[0]!r} is set by signed_query, not by the caller")
    if recv_window_ms is not None and not 0 < recv_window_ms <= MAX_RECV_WINDOW_MS:
        raise SigningError(f"recvWindow {recv_window_ms} ms is outside 1..{MAX_RECV_WINDOW_MS} ms")
    if timestamp_ms <= 0:
        raise SigningError(f"timestamp {timestamp_ms} is not a positive epoch time")
    full: dict[str, object] = dict(params)
    if recv_window_ms is not None:
        full["recvWindow"] = recv_window_ms
    full["timestamp"] = timestamp_ms
    query = encode_query(full)
    signature = key.sign(query + body)
    return f"{query}&signature={quote(signature, safe='')}"


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class ServerClock:
    """The server's time as seen from here, from `GET /api/v3/time` answers.

    `update` assumes the server read its clock halfway between sending and receiving, so the
    offset error is at most half the round trip; the sample with the shortest round trip wins
    until `reset` (a -1021 answer is the usual reason to resync).
    """

    def __init__(self, local_ms: Callable[[], int] = _wall_clock_ms) -> None:
        self._local_ms = local_ms
        self.offset_ms = 0
        self.round_trip_ms: int | None = None

    def update(self, server_ms: int, sent_ms: int, received_ms: int) -> int:
        """Record one answer (all times in ms); returns the offset now in use."""
        if received_ms < sent_ms:
            raise ValueError(
                f"server time answer received at {received_ms} ms, before it was sent "
                f"at {sent_ms} ms"
            )
        round_trip = received_ms - sent_ms
        if self.round_trip_ms is None or round_trip <= self.round_trip_ms:
            self.offset_ms = server_ms - (sent_ms + received_ms) // 2
            self.round_trip_ms = round_trip
        return self.offset_ms

    def update_from_body(self, body: Mapping[str, object], sent_ms: int, received_ms: int) -> int:
        """`update` from a decoded `{"serverTime": ms}` answer."""
        server = body.get("serverTime")
        if not isinstance(server, int) or isinstance(server, bool):
            raise ValueError(f"server time answer has no integer serverTime: {dict(body)!r}")
        return self.update(server, sent_ms, received_ms)

    def reset(self) -> None:
        """Forget the samples (keeping the offset) so the next answer is taken as is."""
        self.round_trip_ms = None

    def now_ms(self) -> int:
        """The server's current time in ms, the `timestamp` to sign with."""
        return self._local_ms() + self.offset_ms
