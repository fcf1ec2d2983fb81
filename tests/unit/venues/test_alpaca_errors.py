"""Alpaca error answers become VenueErrors that keep Alpaca's code and say what to do next."""

from __future__ import annotations

import json
import pickle

import pytest

from tickwise.model.instruments import Venue
from tickwise.model.orders import RejectReason
from tickwise.venues.alpaca.errors import (
    AlpacaError,
    AlpacaErrorKind,
    RateLimit,
    error_from_response,
    parse_error_body,
    rate_limit_from_headers,
    reject_reason,
)
from tickwise.venues.base import VenueError
from tickwise.venues.sim.config import VENUE_REJECT_TEXT


def body(code: int, message: str) -> str:
    return json.dumps({"code": code, "message": message})


def test_a_duplicate_client_order_id_must_be_looked_up_never_resent() -> None:
    error = error_from_response(422, body(40010001, "client_order_id must be unique"))

    assert isinstance(error, VenueError) and error.venue is Venue.ALPACA
    assert error.kind is AlpacaErrorKind.ALREADY_EXISTS
    assert not error.retryable
    assert error.resolve_before_resend
    assert error.reject_reason is RejectReason.DUPLICATE_CLIENT_ORDER_ID
    assert error.code == 40010001


def test_the_older_duplicate_wording_is_recognised_too() -> None:
    error = error_from_response(422, body(40010001, "client order id must be unique"))

    assert error.kind is AlpacaErrorKind.ALREADY_EXISTS


@pytest.mark.parametrize(
    ("status", "code", "message", "kind", "retryable"),
    [
        (401, 40110000, "request is not authorized", AlpacaErrorKind.UNAUTHORIZED, False),
        (403, 40310000, "insufficient buying power", AlpacaErrorKind.REJECTED, False),
        (422, 40010001, "invalid order type for crypto order", AlpacaErrorKind.REJECTED, False),
        (400, 40010001, "qty must be > 0", AlpacaErrorKind.REJECTED, False),
        (422, 42210000, "potential wash trade detected", AlpacaErrorKind.REJECTED, False),
        (404, 40410000, "order not found", AlpacaErrorKind.NOT_FOUND, False),
        (429, 42910000, "rate limit exceeded", AlpacaErrorKind.RATE_LIMITED, True),
        (500, 50010000, "internal server error", AlpacaErrorKind.SERVER, True),
    ],
)
def test_documented_errors_map_to_a_kind_and_keep_the_code(
    status: int, code: int, message: str, kind: AlpacaErrorKind, retryable: bool
) -> None:
    error = error_from_response(status, body(code, message))

    assert (error.code, error.message, error.http_status) == (code, message, status)
    assert error.kind is kind
    assert error.retryable is retryable


def test_a_bare_403_forbidden_is_a_permission_failure() -> None:
    error = error_from_response(403, '{"message":"forbidden."}')

    assert error.kind is AlpacaErrorKind.UNAUTHORIZED
    assert error.code == 403 and error.message == "forbidden."


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_without_a_json_body_means_the_order_may_have_landed(status: int) -> None:
    error = error_from_response(status, b"<html>Bad Gateway</html>")

    assert error.kind is AlpacaErrorKind.SERVER
    assert error.retryable and error.resolve_before_resend
    assert error.code == status
    assert error.reject_reason is None


def test_an_empty_body_still_gives_a_message() -> None:
    error = error_from_response(429)

    assert error.kind is AlpacaErrorKind.RATE_LIMITED
    assert error.message == "HTTP 429"
    assert not error.resolve_before_resend


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ('{"code": 40010001, "message": " bad "}', (40010001, "bad")),
        ('{"code": "40410000", "message": "order not found"}', (40410000, "order not found")),
        ('{"code": null, "message": "x"}', (None, "x")),
        ('{"code": "abc"}', (None, "")),
        ("[1, 2]", (None, "")),
        ("", (None, "")),
    ],
)
def test_error_bodies_are_parsed_tolerantly(raw: str, parsed: tuple[int | None, str]) -> None:
    assert parse_error_body(raw) == parsed


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("insufficient buying power", RejectReason.INSUFFICIENT_BUYING_POWER),
        ("insufficient qty available for order", RejectReason.INSUFFICIENT_POSITION),
        ("new orders are rejected by user request", RejectReason.VENUE_ERROR),
    ],
)
def test_403_refusals_share_a_code_and_are_told_apart_by_message(
    message: str, reason: RejectReason
) -> None:
    assert error_from_response(403, body(40310000, message)).reject_reason is reason


@pytest.mark.parametrize(
    ("reason", "code", "text"),
    [(r, c, t) for (v, r), (c, t) in VENUE_REJECT_TEXT.items() if v is Venue.ALPACA],
)
def test_every_simulator_refusal_maps_back_to_its_reason(
    reason: RejectReason, code: int, text: str
) -> None:
    assert reject_reason(code, text) is reason


@pytest.mark.parametrize("code", [40110000, 40410000, 42910000, 50010000, 429])
def test_non_order_errors_have_no_reject_reason(code: int) -> None:
    assert reject_reason(code, "whatever") is None


def test_the_error_survives_pickling_with_its_kind() -> None:
    error = error_from_response(422, body(40010001, "client_order_id must be unique"))

    copy = pickle.loads(pickle.dumps(error))

    assert isinstance(copy, AlpacaError)
    assert (copy.code, copy.message, copy.kind, copy.retryable, copy.http_status) == (
        40010001,
        "client_order_id must be unique",
        AlpacaErrorKind.ALREADY_EXISTS,
        False,
        422,
    )


def test_rate_limit_headers_are_read_in_any_case() -> None:
    limit = rate_limit_from_headers(
        {
            "X-Ratelimit-Limit": "200",
            "x-ratelimit-remaining": "0",
            "X-RateLimit-Reset": "1700000060",
        }
    )

    assert limit == RateLimit(200, 0, 1_700_000_060)
    assert limit.wait_s(1_700_000_000.5) == pytest.approx(59.5)
    assert limit.wait_s(1_700_000_100) == 0.0
    assert RateLimit(200, 3, 1_700_000_060).wait_s(1_700_000_000) == 0.0


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Ratelimit-Limit": "200"},
        {"X-Ratelimit-Limit": "a", "X-Ratelimit-Remaining": "1", "X-Ratelimit-Reset": "2"},
    ],
)
def test_missing_or_garbled_rate_limit_headers_give_none(headers: dict[str, str]) -> None:
    assert rate_limit_from_headers(headers) is None
