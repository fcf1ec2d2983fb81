"""Binance Spot error answers normalised to `VenueError`, from the table in venues.md §3.4.

    BinanceError(VenueError)   code: Binance's own (-2010) or the HTTP status when the body
                               has none; retryable: resending may help, after resolving the
                               order by client order id when `outcome_unknown`.

A body `{"code": -NNNN, "msg": "..."}` is looked up in `ERRORS`; the HTTP status decides what
the body cannot (429/418 rate limits with Retry-After, 5xx outcome unknown).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

from tickwise.model.instruments import Venue
from tickwise.model.orders import RejectReason, Side
from tickwise.venues.base import VenueError

R = RejectReason


@dataclass(frozen=True, slots=True)
class ErrorRule:
    """What one Binance error code means for the adapter."""

    name: str
    retryable: bool = False
    outcome_unknown: bool = False  # the order may have landed: query by client order id first
    resync_clock: bool = False  # refresh ServerClock before retrying
    reason: RejectReason | None = None  # for a rejected new order, when the code alone says


ERRORS: dict[int, ErrorRule] = {
    -1003: ErrorRule("TOO_MANY_REQUESTS", retryable=True),
    -1006: ErrorRule("UNEXPECTED_RESP", retryable=True, outcome_unknown=True),
    -1007: ErrorRule("TIMEOUT", retryable=True, outcome_unknown=True),
    -1008: ErrorRule("SERVER_BUSY", retryable=True),
    -1013: ErrorRule("INVALID_MESSAGE", reason=R.VENUE_ERROR),
    -1015: ErrorRule("TOO_MANY_ORDERS", retryable=True),
    -1021: ErrorRule("INVALID_TIMESTAMP", retryable=True, resync_clock=True),
    -1022: ErrorRule("INVALID_SIGNATURE"),
    -1100: ErrorRule("ILLEGAL_CHARS", reason=R.VENUE_ERROR),
    -1102: ErrorRule("MANDATORY_PARAM_EMPTY_OR_MALFORMED", reason=R.VENUE_ERROR),
    -1104: ErrorRule("NOT_ALL_SENT_PARAMETERS_WERE_READ", reason=R.VENUE_ERROR),
    -1106: ErrorRule("PARAM_NOT_REQUIRED", reason=R.VENUE_ERROR),
    -1111: ErrorRule("BAD_PRECISION", reason=R.VENUE_ERROR),
    -1121: ErrorRule("BAD_SYMBOL", reason=R.UNKNOWN_SYMBOL),
    -2010: ErrorRule("NEW_ORDER_REJECTED", reason=R.VENUE_ERROR),
    -2011: ErrorRule("CANCEL_REJECTED"),
    -2013: ErrorRule("NO_SUCH_ORDER"),
    -2014: ErrorRule("BAD_API_KEY_FMT"),
    -2015: ErrorRule("REJECTED_MBX_KEY"),
    -2026: ErrorRule("ORDER_ARCHIVED"),
}

# Message fragments that refine a code's reason (lower case; first match wins).
MESSAGE_REASONS: dict[int, tuple[tuple[str, RejectReason], ...]] = {
    -2010: (
        ("insufficient balance", R.INSUFFICIENT_BUYING_POWER),
        ("duplicate order", R.DUPLICATE_CLIENT_ORDER_ID),
    ),
    -1013: (
        ("filter failure: lot_size", R.INVALID_QUANTITY_INCREMENT),
        ("filter failure: market_lot_size", R.INVALID_QUANTITY_INCREMENT),
        ("filter failure: min_notional", R.BELOW_MIN_NOTIONAL),
        ("filter failure: notional", R.BELOW_MIN_NOTIONAL),
    ),
}

RATE_LIMIT_STATUSES = frozenset({429, 418})  # 418: IP banned after ignoring 429s


class BinanceError(VenueError):
    """A Binance refusal or failure, with what the adapter needs to act on it."""

    def __init__(
        self,
        code: int | str,
        message: str,
        *,
        http_status: int | None = None,
        retryable: bool = False,
        outcome_unknown: bool = False,
        resync_clock: bool = False,
        retry_after_s: float | None = None,
        reason: RejectReason | None = None,
    ) -> None:
        super().__init__(Venue.BINANCE, code, message, retryable=retryable)
        self.http_status = http_status
        self.outcome_unknown = outcome_unknown
        self.resync_clock = resync_clock
        self.retry_after_s = retry_after_s
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:
        state = {
            "http_status": self.http_status,
            "retryable": self.retryable,
            "outcome_unknown": self.outcome_unknown,
            "resync_clock": self.resync_clock,
            "retry_after_s": self.retry_after_s,
            "reason": self.reason,
        }
        return (_rebuild, (self.code, self.message, state))


def _rebuild(code: int | str, message: str, state: dict[str, object]) -> BinanceError:
    return BinanceError(code, message, **state)  # type: ignore[arg-type]


def reject_reason(code: int, msg: str = "", side: Side | None = None) -> RejectReason | None:
    """The normalised reason for a new order refused with `code`, or None if it is not one.

    `msg` refines -2010 and -1013; an insufficient balance on a SELL is a missing position.
    """
    rule = ERRORS.get(code)
    if rule is None or rule.reason is None:
        return None
    text = msg.lower()
    for fragment, reason in MESSAGE_REASONS.get(code, ()):
        if fragment in text:
            if reason is R.INSUFFICIENT_BUYING_POWER and side is Side.SELL:
                return R.INSUFFICIENT_POSITION
            return reason
    return rule.reason


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    if not headers:
        return None
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                seconds = float(value)
            except ValueError:
                return None
            return seconds if math.isfinite(seconds) and seconds >= 0 else None
    return None


def _body(body: bytes | str | Mapping[str, object] | None) -> tuple[int | None, str]:
    """(Binance code, message) from an error body; (None, text) when it is not one."""
    if body is None:
        return None, ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if isinstance(body, str):
        try:
            decoded: object = json.loads(body)
        except (ValueError, RecursionError):
            return None, body.strip()[:200]
    else:
        decoded = body
    if isinstance(decoded, Mapping):
        code, msg = decoded.get("code"), decoded.get("msg", "")
        if isinstance(code, int) and not isinstance(code, bool):
            return code, msg if isinstance(msg, str) else str(msg)
    text = body if isinstance(body, str) else json.dumps(decoded, default=str)
    return None, text.strip()[:200]


def error_from_response(
    status: int,
    body: bytes | str | Mapping[str, object] | None,
    headers: Mapping[str, str] | None = None,
    *,
    side: Side | None = None,
) -> BinanceError:
    """The `BinanceError` for an HTTP answer that is not a success."""
    code, msg = _body(body)
    rule = ERRORS.get(code) if code is not None else None
    server_side = status >= 500
    rate_limited = status in RATE_LIMIT_STATUSES
    retryable = server_side or rate_limited or (rule is not None and rule.retryable)
    unknown = server_side or (rule is not None and rule.outcome_unknown)
    if not msg:
        msg = f"HTTP {status}" + (" (execution status unknown)" if server_side else "")
    return BinanceError(
        code if code is not None else status,
        msg,
        http_status=status,
        retryable=retryable,
        outcome_unknown=unknown,
        resync_clock=rule is not None and rule.resync_clock,
        retry_after_s=_retry_after(headers),
        reason=reject_reason(code, msg, side) if code is not None else None,
    )


def error_from_timeout(message: str = "no answer before the timeout") -> BinanceError:
    """A request sent but not answered: it may have been executed, so resolve before resending."""
    return BinanceError("TIMEOUT", message, retryable=True, outcome_unknown=True)
