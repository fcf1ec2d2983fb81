"""E*Trade error responses mapped to `VenueError`, keeping E*Trade's own code and text.

    EtradeError(VenueError)   adds `http_status` and `kind`; pickles as itself

    kind            when                                             retryable
    AUTH            HTTP 401: token bad, inactive (2 h idle) or      no: renew or log in first
                    expired (midnight ET)
    RATE_LIMITED    HTTP 429, or HTTP 400 with the HTML page         yes, after a pause
                    "Number of requests exceeded the rate limit set"
    SERVER          HTTP 5xx without an E*Trade error body,          yes: resolve the order first
                    or E*Trade code 167 (retryable preview error)
    STALE_PREVIEW   code 101: place did not match its preview or     no: preview again
                    the preview timed out
    ALREADY_EXISTS  the clientOrderId was used before in the         no: never resend; find
                    account (code unpublished; read from the text)  the order first
    REJECTED        any other `{"Error":{"code":N,"message":..}}`    no

Bodies come as JSON (`.json` paths) or XML (`<Error><code>N</code><message>..</message></Error>`).
"""

from __future__ import annotations

import re
from enum import IntEnum

from tickwise.model.instruments import Venue
from tickwise.model.orders import RejectReason
from tickwise.venues.base import HttpVenueError
from tickwise.venues.http import decode_json

RATE_LIMIT_TEXT = "number of requests exceeded the rate limit"
STALE_PREVIEW_CODE = 101
RETRYABLE_PREVIEW_CODE = 167
_XML_FIELD = re.compile(r"<(code|message)>\s*(.*?)\s*</\1>", re.IGNORECASE | re.DOTALL)


class EtradeErrorKind(IntEnum):
    AUTH = 1
    RATE_LIMITED = 2
    SERVER = 3
    STALE_PREVIEW = 4
    REJECTED = 5
    ALREADY_EXISTS = 6


class EtradeError(HttpVenueError):
    """A `VenueError` from E*Trade with the HTTP status and what the adapter should do next."""

    def __init__(
        self,
        code: int | str,
        message: str,
        *,
        http_status: int,
        kind: EtradeErrorKind,
        retryable: bool,
    ) -> None:
        super().__init__(
            Venue.ETRADE, code, message, http_status=http_status, kind=kind, retryable=retryable
        )
        self.kind: EtradeErrorKind = kind

    @property
    def resolve_before_resend(self) -> bool:
        """The order may exist at E*Trade: find it (orders list by symbol, qty, placedTime; the
        clientOrderId is not echoed) before sending anything again."""
        return self.kind in (EtradeErrorKind.ALREADY_EXISTS, EtradeErrorKind.SERVER)

    @property
    def reject_reason(self) -> RejectReason | None:
        """Why the order did not trade, when this error is an order rejection."""
        if self.kind not in (EtradeErrorKind.REJECTED, EtradeErrorKind.ALREADY_EXISTS):
            return None
        return reject_reason(self.code, self.message)


def parse_error_body(body: str | bytes) -> tuple[int, str] | None:
    """E*Trade's (code, message) from a JSON or XML error body, or None when it has none."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = text.strip()
    if text.startswith("{"):
        try:
            doc = decode_json(text)
        except ValueError:
            return None
        error = doc.get("Error") if isinstance(doc, dict) else None
        if not isinstance(error, dict):
            return None
        code, message = _as_code(error.get("code")), str(error.get("message", "")).strip()
    elif "<error" in text[:200].lower():
        found = {name.lower(): value for name, value in _XML_FIELD.findall(text)}
        code, message = _as_code(found.get("code")), found.get("message", "")
    else:
        return None
    return None if code is None else (code, message)


def _as_code(value: object) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def error_from_response(status: int, body: str | bytes = "") -> EtradeError:
    """The `EtradeError` for a non-2xx HTTP answer (status and raw body)."""
    parsed = parse_error_body(body)
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    snippet = " ".join(text.split())[:120]
    if status == 401:
        # Bodies here are often form-encoded, e.g. `oauth_problem=token_expired`.
        message = (parsed[1] if parsed else "") or snippet or "OAuth token rejected"
        code: int | str = parsed[0] if parsed else status
        return EtradeError(
            code, message, http_status=status, kind=EtradeErrorKind.AUTH, retryable=False
        )
    if status == 429 or (parsed is None and RATE_LIMIT_TEXT in text.lower()):
        return EtradeError(
            status,
            "number of requests exceeded the rate limit",
            http_status=status,
            kind=EtradeErrorKind.RATE_LIMITED,
            retryable=True,
        )
    if parsed is None:
        kind = EtradeErrorKind.SERVER if status >= 500 else EtradeErrorKind.REJECTED
        return EtradeError(
            status,
            snippet or f"HTTP {status}",
            http_status=status,
            kind=kind,
            retryable=status >= 500,
        )
    code_n, message = parsed
    message = message or f"HTTP {status}"
    if code_n == STALE_PREVIEW_CODE:
        kind, retryable = EtradeErrorKind.STALE_PREVIEW, False
    elif code_n == RETRYABLE_PREVIEW_CODE:
        kind, retryable = EtradeErrorKind.SERVER, True
    elif reject_reason(code_n, message) is RejectReason.DUPLICATE_CLIENT_ORDER_ID:
        kind, retryable = EtradeErrorKind.ALREADY_EXISTS, False
    else:
        kind, retryable = EtradeErrorKind.REJECTED, False
    return EtradeError(code_n, message, http_status=status, kind=kind, retryable=retryable)


# Order rejections by code: the documented account errors, and the codes the simulator answers
# with (E*Trade does not publish order-reject codes; see venues.sim.config).
_REJECT_BY_CODE: dict[int, RejectReason] = {
    100: RejectReason.VENUE_ERROR,  # account key does not belong to user
    102: RejectReason.VENUE_ERROR,  # please enter valid account key
    1031: RejectReason.INSUFFICIENT_BUYING_POWER,
    1032: RejectReason.INSUFFICIENT_POSITION,
    1033: RejectReason.INVALID_QUANTITY_INCREMENT,
    1034: RejectReason.BELOW_MIN_NOTIONAL,
    1035: RejectReason.DUPLICATE_CLIENT_ORDER_ID,
    10033: RejectReason.UNKNOWN_SYMBOL,
}
# Wording E*Trade uses in order messages, for codes not in the table.
_REJECT_BY_TEXT: tuple[tuple[str, RejectReason], ...] = (
    ("buying power", RejectReason.INSUFFICIENT_BUYING_POWER),
    ("enough shares", RejectReason.INSUFFICIENT_POSITION),
    ("whole number", RejectReason.INVALID_QUANTITY_INCREMENT),
    ("duplicate", RejectReason.DUPLICATE_CLIENT_ORDER_ID),
    ("symbol entered is invalid", RejectReason.UNKNOWN_SYMBOL),
)


def reject_reason(code: int | str, message: str = "") -> RejectReason | None:
    """The normalised reason for an order E*Trade refused, or None when the error is not an
    order rejection (auth, rate limit, server trouble, a stale preview)."""
    if isinstance(code, int) and code in _REJECT_BY_CODE:
        return _REJECT_BY_CODE[code]
    if code in (STALE_PREVIEW_CODE, RETRYABLE_PREVIEW_CODE) or not isinstance(code, int):
        return None
    lowered = message.lower()
    for needle, reason in _REJECT_BY_TEXT:
        if needle in lowered:
            return reason
    return RejectReason.VENUE_ERROR
