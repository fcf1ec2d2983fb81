"""E*Trade error answers become VenueErrors that keep E*Trade's code and say what to do next."""

from __future__ import annotations

import pickle

import pytest

from tickwise.model.instruments import Venue
from tickwise.model.orders import RejectReason
from tickwise.venues.base import VenueError
from tickwise.venues.etrade.errors import (
    EtradeError,
    EtradeErrorKind,
    error_from_response,
    parse_error_body,
    reject_reason,
)
from tickwise.venues.sim.config import VENUE_REJECT_TEXT

RATE_LIMIT_PAGE = (
    "<html><head><title>Error</title></head><body><h1>Number of requests exceeded the rate "
    "limit set</h1></body></html>"
)


def test_a_json_error_body_keeps_the_code_and_text_and_is_not_retryable() -> None:
    error = error_from_response(
        400, '{"Error":{"code":100,"message":"Account key does not belong to user"}}'
    )

    assert isinstance(error, VenueError)
    assert error.venue is Venue.ETRADE
    assert (error.code, error.message) == (100, "Account key does not belong to user")
    assert error.kind is EtradeErrorKind.REJECTED
    assert not error.retryable
    assert error.reject_reason is RejectReason.VENUE_ERROR
    assert str(error) == "etrade error 100: Account key does not belong to user"


def test_an_xml_error_body_is_read_too() -> None:
    body = (
        b"<?xml version='1.0'?><Error><code>102</code>"
        b"<message>Please enter valid account key</message></Error>"
    )

    assert parse_error_body(body) == (102, "Please enter valid account key")
    assert error_from_response(400, body).code == 102


def test_code_101_means_preview_again_not_resend() -> None:
    error = error_from_response(
        400,
        '{"Error":{"code":101,"message":"For your protection, we have timed out your '
        'original order request."}}',
    )

    assert error.kind is EtradeErrorKind.STALE_PREVIEW
    assert not error.retryable
    assert error.reject_reason is None


def test_code_167_is_a_retryable_preview_error() -> None:
    error = error_from_response(500, '{"Error":{"code":167,"message":"try again"}}')

    assert error.retryable and error.kind is EtradeErrorKind.SERVER


@pytest.mark.parametrize(
    "body",
    ["", "oauth_problem=token_expired", '{"Error":{"code":1,"message":"Unauthorized"}}'],
)
def test_http_401_is_an_auth_failure_that_resending_will_not_fix(body: str) -> None:
    error = error_from_response(401, body)

    assert error.kind is EtradeErrorKind.AUTH
    assert not error.retryable
    assert error.http_status == 401


@pytest.mark.parametrize(("status", "body"), [(400, RATE_LIMIT_PAGE), (429, "")])
def test_rate_limits_arrive_as_400_html_or_429_and_are_retryable(status: int, body: str) -> None:
    error = error_from_response(status, body)

    assert error.kind is EtradeErrorKind.RATE_LIMITED
    assert error.retryable
    assert error.code == status
    assert error.reject_reason is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_without_an_error_body_is_an_unknown_outcome_and_retryable(status: int) -> None:
    error = error_from_response(status, "<html>Service Unavailable</html>")

    assert error.kind is EtradeErrorKind.SERVER
    assert error.retryable
    assert error.code == status
    assert "Service Unavailable" in error.message


def test_a_500_with_an_error_body_is_the_venue_refusing_not_an_outage() -> None:
    error = error_from_response(500, '{"Error":{"code":100,"message":"Invalid request."}}')

    assert error.kind is EtradeErrorKind.REJECTED and not error.retryable


@pytest.mark.parametrize(
    "body",
    ["{not json", '{"Error":{"code":"abc","message":"x"}}', '{"Error":"x"}', "[1]", "plain"],
)
def test_bodies_without_a_usable_code_fall_back_to_the_http_status(body: str) -> None:
    assert parse_error_body(body) is None
    error = error_from_response(400, body)
    assert error.code == 400 and error.kind is EtradeErrorKind.REJECTED


def test_the_error_survives_pickling_with_its_kind() -> None:
    error = error_from_response(503, "")

    copy = pickle.loads(pickle.dumps(error))

    assert isinstance(copy, EtradeError)
    assert (copy.code, copy.message, copy.kind, copy.retryable, copy.http_status) == (
        error.code,
        error.message,
        error.kind,
        error.retryable,
        error.http_status,
    )


@pytest.mark.parametrize(
    ("reason", "code", "text"),
    [(r, c, t) for (v, r), (c, t) in VENUE_REJECT_TEXT.items() if v is Venue.ETRADE],
)
def test_every_simulator_refusal_maps_back_to_its_reason(
    reason: RejectReason, code: int, text: str
) -> None:
    assert reject_reason(code, text) is reason


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            "The order exceeds your available cash buying power.",
            RejectReason.INSUFFICIENT_BUYING_POWER,
        ),
        ("You do not hold enough shares to sell.", RejectReason.INSUFFICIENT_POSITION),
        ("Duplicate clientOrderId.", RejectReason.DUPLICATE_CLIENT_ORDER_ID),
        ("Something else entirely.", RejectReason.VENUE_ERROR),
    ],
)
def test_unlisted_codes_are_classified_by_wording(message: str, reason: RejectReason) -> None:
    assert reject_reason(9999, message) is reason


def test_stale_preview_and_non_numeric_codes_have_no_reject_reason() -> None:
    assert reject_reason(101) is None
    assert reject_reason(167) is None
    assert reject_reason("oauth") is None


def test_a_401_keeps_the_oauth_problem_in_its_message() -> None:
    error = error_from_response(401, "oauth_problem=token_expired")

    assert error.code == 401
    assert "token_expired" in error.message
    assert error_from_response(401).message == "OAuth token rejected"


def test_a_duplicate_client_order_id_is_found_before_anything_is_resent() -> None:
    error = error_from_response(400, '{"Error":{"code":1035,"message":"Duplicate clientOrderId."}}')

    assert error.kind is EtradeErrorKind.ALREADY_EXISTS
    assert not error.retryable
    assert error.resolve_before_resend
    assert error.reject_reason is RejectReason.DUPLICATE_CLIENT_ORDER_ID


def test_a_plain_rejection_needs_no_lookup() -> None:
    error = error_from_response(400, '{"Error":{"code":1031,"message":"exceeds buying power"}}')

    assert not error.resolve_before_resend
    assert error_from_response(503).resolve_before_resend
