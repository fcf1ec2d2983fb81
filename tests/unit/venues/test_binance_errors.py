"""Binance error answers become VenueErrors that say whether, and how, to retry."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickwise.model.instruments import Venue
from tickwise.model.orders import RejectReason, Side
from tickwise.venues.base import VenueError
from tickwise.venues.binance import (
    ERRORS,
    BinanceError,
    error_from_response,
    error_from_timeout,
    reject_reason,
)

R = RejectReason


def _body(code: int, msg: str) -> str:
    return f'{{"code":{code},"msg":"{msg}"}}'


def test_insufficient_balance_is_a_final_rejection_with_a_reason() -> None:
    err = error_from_response(
        400, _body(-2010, "Account has insufficient balance for requested action.")
    )
    assert isinstance(err, VenueError)
    assert err.venue is Venue.BINANCE
    assert err.code == -2010
    assert "insufficient balance" in err.message
    assert not err.retryable and not err.outcome_unknown
    assert err.reason is R.INSUFFICIENT_BUYING_POWER
    sell = error_from_response(
        400, _body(-2010, "Account has insufficient balance for requested action."), side=Side.SELL
    )
    assert sell.reason is R.INSUFFICIENT_POSITION


def test_timestamp_outside_recv_window_is_retryable_after_a_clock_resync() -> None:
    err = error_from_response(
        400, _body(-1021, "Timestamp for this request is outside of the recvWindow.")
    )
    assert err.retryable and err.resync_clock and not err.outcome_unknown
    assert err.reason is None


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        ("Filter failure: LOT_SIZE", R.INVALID_QUANTITY_INCREMENT),
        ("Filter failure: MARKET_LOT_SIZE", R.INVALID_QUANTITY_INCREMENT),
        ("Filter failure: MIN_NOTIONAL", R.BELOW_MIN_NOTIONAL),
        ("Filter failure: NOTIONAL", R.BELOW_MIN_NOTIONAL),
        ("Filter failure: PRICE_FILTER", R.VENUE_ERROR),
    ],
)
def test_filter_failures_map_by_filter_name(msg: str, reason: RejectReason) -> None:
    err = error_from_response(400, _body(-1013, msg))
    assert err.code == -1013 and not err.retryable
    assert err.reason is reason


@pytest.mark.parametrize(
    ("code", "msg", "reason"),
    [
        (-2010, "Duplicate order sent.", R.DUPLICATE_CLIENT_ORDER_ID),
        (-2010, "Market is closed.", R.VENUE_ERROR),
        (-2010, "", R.VENUE_ERROR),
        (-1121, "Invalid symbol.", R.UNKNOWN_SYMBOL),
        (-1111, "Precision is over the maximum defined for this asset.", R.VENUE_ERROR),
        (-2011, "Unknown order sent.", None),  # a cancel refusal, not an order rejection
        (-2013, "Order does not exist.", None),
        (-1021, "", None),
        (-9999, "never heard of it", None),
    ],
)
def test_reject_reason(code: int, msg: str, reason: RejectReason | None) -> None:
    assert reject_reason(code, msg) is reason


def test_unknown_order_on_cancel_is_final_and_keeps_the_text() -> None:
    err = error_from_response(400, _body(-2011, "Unknown order sent."))
    assert (err.code, err.message, err.retryable) == (-2011, "Unknown order sent.", False)
    assert str(err) == "binance error -2011: Unknown order sent."


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_leave_the_outcome_unknown(status: int) -> None:
    err = error_from_response(status, "<html>bad gateway</html>")
    assert err.retryable and err.outcome_unknown
    assert err.code == status and err.http_status == status


def test_503_unknown_status_keeps_the_venue_code_and_is_unresolved() -> None:
    err = error_from_response(
        503, _body(-1007, "Timeout waiting for response from backend server. Send status unknown")
    )
    assert err.code == -1007
    assert err.retryable and err.outcome_unknown


def test_an_empty_5xx_body_says_the_status_is_unknown() -> None:
    err = error_from_response(503, None)
    assert err.message == "HTTP 503 (execution status unknown)"


def test_rate_limit_and_ban_carry_retry_after() -> None:
    limited = error_from_response(
        429, _body(-1003, "Too much request weight used"), {"Retry-After": "7"}
    )
    assert limited.retryable and not limited.outcome_unknown
    assert limited.retry_after_s == 7.0
    banned = error_from_response(418, _body(-1003, "Way too much"), {"retry-after": "120"})
    assert banned.retryable and banned.retry_after_s == 120.0 and banned.http_status == 418
    orders = error_from_response(429, _body(-1015, "Too many new orders"), {"Retry-After": "x"})
    assert orders.retryable and orders.retry_after_s is None


@pytest.mark.parametrize(
    ("status", "code"), [(400, -1022), (401, -2015), (401, -2014), (400, -1102), (400, -2026)]
)
def test_request_and_key_errors_are_not_retryable(status: int, code: int) -> None:
    err = error_from_response(status, _body(code, "no"))
    assert not err.retryable and not err.outcome_unknown and err.code == code


def test_waf_block_without_a_body_code_uses_the_http_status() -> None:
    err = error_from_response(403, b"Forbidden")
    assert (err.code, err.message, err.retryable) == (403, "Forbidden", False)


def test_timeout_is_retryable_but_must_be_resolved_first() -> None:
    err = error_from_timeout()
    assert err.retryable and err.outcome_unknown and err.code == "TIMEOUT"


def test_errors_survive_pickling_with_every_field() -> None:
    err = error_from_response(418, _body(-1003, "banned"), {"Retry-After": "60"})
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, BinanceError)
    assert (back.code, back.message, back.retryable, back.retry_after_s, back.http_status) == (
        -1003,
        "banned",
        True,
        60.0,
        418,
    )


def test_every_documented_code_is_in_the_table() -> None:
    documented = {-1003, -1006, -1007, -1008, -1013, -1015, -1021, -1022, -1100, -1102, -1104}
    documented |= {-1106, -1111, -1121, -2010, -2011, -2013, -2014, -2015, -2026}
    assert documented <= set(ERRORS)
    unknown_outcome = {c for c, rule in ERRORS.items() if rule.outcome_unknown}
    assert unknown_outcome == {-1006, -1007}
    assert all(rule.retryable for rule in ERRORS.values() if rule.outcome_unknown)


@given(
    st.integers(min_value=100, max_value=599),
    st.one_of(st.none(), st.binary(max_size=30), st.text(max_size=30)),
)
def test_any_answer_gives_a_binance_error(status: int, body: bytes | str | None) -> None:
    err = error_from_response(status, body)
    assert isinstance(err, BinanceError)
    assert err.message
    assert err.retryable == (status >= 500 or status in (418, 429))
