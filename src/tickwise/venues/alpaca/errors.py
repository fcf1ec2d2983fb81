"""Alpaca error responses mapped to `VenueError`, keeping Alpaca's 8-digit code and text.

    AlpacaError(VenueError)   adds `http_status` and `kind`; pickles as itself

    kind             when                                              retryable
    UNAUTHORIZED     401 (40110000), or 403 without a code ("forbidden.")  no: fix the keys
    ALREADY_EXISTS   40010001 "client_order_id must be unique"          no: never resend; look
                                                                        the order up by client
                                                                        order id instead
    REJECTED         403 40310000 (buying power, qty...), 422/400       no
                     40010001 validation, 42210000
    NOT_FOUND        404 40410000                                       no
    RATE_LIMITED     429 42910000                                       yes, after the reset
    SERVER           5xx                                                yes: resolve by client
                                                                        order id first

Error bodies are JSON `{"code": <8 digits>, "message": "..."}`; 403 codes share one number, so
the reject reason is read from the message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum

from tickwise.model.instruments import Venue
from tickwise.model.orders import RejectReason
from tickwise.venues.base import HttpVenueError
from tickwise.venues.http import decode_json

UNAUTHORIZED_CODE = 40110000
FORBIDDEN_CODE = 40310000
VALIDATION_CODE = 40010001
NOT_FOUND_CODE = 40410000
UNPROCESSABLE_CODE = 42210000
RATE_LIMIT_CODE = 42910000
_DUPLICATE_TEXTS = ("client_order_id must be unique", "client order id must be unique")


class AlpacaErrorKind(IntEnum):
    UNAUTHORIZED = 1
    ALREADY_EXISTS = 2
    REJECTED = 3
    NOT_FOUND = 4
    RATE_LIMITED = 5
    SERVER = 6


class AlpacaError(HttpVenueError):
    """A `VenueError` from Alpaca with the HTTP status and what the adapter should do next."""

    def __init__(
        self,
        code: int | str,
        message: str,
        *,
        http_status: int,
        kind: AlpacaErrorKind,
        retryable: bool,
    ) -> None:
        super().__init__(
            Venue.ALPACA, code, message, http_status=http_status, kind=kind, retryable=retryable
        )
        self.kind: AlpacaErrorKind = kind

    @property
    def resolve_before_resend(self) -> bool:
        """The order may exist at Alpaca: look it up by client order id, never resend blindly."""
        return self.kind in (AlpacaErrorKind.ALREADY_EXISTS, AlpacaErrorKind.SERVER)

    @property
    def reject_reason(self) -> RejectReason | None:
        """Why the order did not trade, when this error is an order rejection."""
        if self.kind not in (AlpacaErrorKind.REJECTED, AlpacaErrorKind.ALREADY_EXISTS):
            return None
        return reject_reason(self.code, self.message)


def is_duplicate_client_order_id(code: int | str, message: str) -> bool:
    """Alpaca's answer to a client order id the account already used (ever)."""
    lowered = message.lower()
    return code == VALIDATION_CODE and any(text in lowered for text in _DUPLICATE_TEXTS)


def parse_error_body(body: str | bytes) -> tuple[int | None, str]:
    """(code, message) from an Alpaca JSON error body; code None when the body has none."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        doc = decode_json(text) if text.strip() else {}
    except ValueError:
        return None, " ".join(text.split())[:120]
    if not isinstance(doc, dict):
        return None, ""
    raw_code, message = doc.get("code"), str(doc.get("message", "")).strip()
    try:
        code = int(raw_code) if raw_code is not None else None
    except (TypeError, ValueError):
        code = None
    return code, message


def _unauthorized(status: int, code: int | None) -> bool:
    # A permission failure comes back as a bare 403 {"message": "forbidden."} without a code.
    return status == 401 or code == UNAUTHORIZED_CODE or (status == 403 and code is None)


def error_from_response(status: int, body: str | bytes = "") -> AlpacaError:
    """The `AlpacaError` for a non-2xx HTTP answer (status and raw body)."""
    parsed_code, message = parse_error_body(body)
    code: int | str = parsed_code if parsed_code is not None else status
    message = message or f"HTTP {status}"
    if status >= 500:
        kind, retryable = AlpacaErrorKind.SERVER, True
    elif status == 429 or parsed_code == RATE_LIMIT_CODE:
        kind, retryable = AlpacaErrorKind.RATE_LIMITED, True
    elif _unauthorized(status, parsed_code):
        kind, retryable = AlpacaErrorKind.UNAUTHORIZED, False
    elif status == 404 or parsed_code == NOT_FOUND_CODE:
        kind, retryable = AlpacaErrorKind.NOT_FOUND, False
    elif is_duplicate_client_order_id(code, message):
        kind, retryable = AlpacaErrorKind.ALREADY_EXISTS, False
    else:
        kind, retryable = AlpacaErrorKind.REJECTED, False
    return AlpacaError(code, message, http_status=status, kind=kind, retryable=retryable)


# Reasons read from the message; 40310000 covers several refusals with one code.
_REJECT_BY_TEXT: tuple[tuple[str, RejectReason], ...] = (
    ("insufficient buying power", RejectReason.INSUFFICIENT_BUYING_POWER),
    ("insufficient qty", RejectReason.INSUFFICIENT_POSITION),
    ("not fractionable", RejectReason.INVALID_QUANTITY_INCREMENT),
    ("minimal amount", RejectReason.BELOW_MIN_NOTIONAL),
    ("asset not found", RejectReason.UNKNOWN_SYMBOL),
    ("could not find asset", RejectReason.UNKNOWN_SYMBOL),
)


def reject_reason(code: int | str, message: str = "") -> RejectReason | None:
    """The normalised reason for an order Alpaca refused, or None when the code is not an order
    refusal (auth, not found, rate limit, server trouble)."""
    if is_duplicate_client_order_id(code, message):
        return RejectReason.DUPLICATE_CLIENT_ORDER_ID
    if code not in (FORBIDDEN_CODE, VALIDATION_CODE, UNPROCESSABLE_CODE):
        return None
    lowered = message.lower()
    for needle, reason in _REJECT_BY_TEXT:
        if needle in lowered:
            return reason
    return RejectReason.VENUE_ERROR


@dataclass(frozen=True, slots=True)
class RateLimit:
    """The `X-Ratelimit-*` headers of one response: budget, what is left, reset (epoch s)."""

    limit: int
    remaining: int
    reset_epoch_s: int

    def wait_s(self, now_epoch_s: float) -> float:
        """Seconds to wait before the next call when nothing is left, else 0."""
        if self.remaining > 0:
            return 0.0
        return max(0.0, self.reset_epoch_s - now_epoch_s)


def rate_limit_from_headers(headers: Mapping[str, str]) -> RateLimit | None:
    """Read the rate-limit headers (any case); None when a response does not carry them all."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        return RateLimit(
            int(lowered["x-ratelimit-limit"]),
            int(lowered["x-ratelimit-remaining"]),
            int(lowered["x-ratelimit-reset"]),
        )
    except (KeyError, ValueError):
        return None
