"""Fuzzing the E*Trade adapter's decoders: JSON answers (preview, place, orders list, portfolio,
balance), error bodies (JSON, XML, HTML, form-encoded) and OAuth token answers.

Documented failures: an answer that is not the document the call returns is
`EtradeFormatError` (counted as malformed by the adapter); a token answer without the token is
`OAuthResponseError`; error bodies never raise. Run deeper with `TICKWISE_FUZZ_EXAMPLES=5000`.
"""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

from fuzzing import (
    DEEP_ARRAY,
    DEEP_OBJECT,
    assert_amounts,
    budget,
    documents,
    raw_bytes,
    wire_or_raw,
)
from hypothesis import example, given
from hypothesis import strategies as st

from tickwise.model.orders import RejectReason, Side
from tickwise.venues.etrade.errors import (
    EtradeError,
    EtradeErrorKind,
    error_from_response,
    parse_error_body,
)
from tickwise.venues.etrade.oauth import OAuthResponseError, parse_token_response
from tickwise.venues.etrade.tracking import TrackedOrder, find_lost_order, outcome_of
from tickwise.venues.etrade.wire import (
    EtradeFormatError,
    OrderRequest,
    cash_balance,
    oauth_problem,
    orders_page,
    parse_json,
    placed_order_id,
    portfolio,
    preview_id,
)

PREVIEW = {"PreviewOrderResponse": {"PreviewIds": [{"previewId": 501}]}}
PLACE = {"PlaceOrderResponse": {"OrderIds": [{"orderId": 7001}]}}
ENTRY: dict[str, Any] = {
    "orderId": 7001,
    "OrderDetail": {
        "placedTime": 1_700_000_000_000,
        "status": "EXECUTED",
        "priceType": "MARKET",
        "Instrument": [
            {
                "Product": {"symbol": "AAPL", "securityType": "EQ"},
                "orderAction": "BUY",
                "orderedQuantity": 3,
                "filledQuantity": 3,
                "averageExecutionPrice": 190.02,
                "estimatedCommission": 0.0,
            }
        ],
    },
}
ORDERS = {"OrdersResponse": {"Order": [ENTRY], "marker": "7000"}}
PORTFOLIO = {
    "PortfolioResponse": {
        "AccountPortfolio": [
            {
                "accountId": "00000001",
                "totalPages": 1,
                "Position": [
                    {"Product": {"symbol": "AAPL"}, "quantity": 3, "positionType": "LONG"},
                    {"Product": {"symbol": "BRK.B"}, "quantity": "2", "positionType": "SHORT"},
                ],
            }
        ]
    }
}
BALANCE = {"BalanceResponse": {"Computed": {"cashBalance": "1000.5"}}}
ERROR = {"Error": {"code": 1031, "message": "insufficient buying power"}}
XML_ERROR = b"<Error><code>1035</code><message>duplicate clientOrderId</message></Error>"


def answer_of(doc: object) -> st.SearchStrategy[object]:
    """A decoded answer: the document mutated, or whatever raw bytes decode to."""
    return st.one_of(documents(doc), wire_or_raw(doc).map(_decoded))


def _decoded(body: bytes) -> object:
    try:
        return parse_json(body)
    except EtradeFormatError:
        return None


@budget()
@given(st.one_of(wire_or_raw(ORDERS), raw_bytes))
@example(DEEP_ARRAY)
@example(DEEP_OBJECT)
def test_an_answer_is_json_or_an_etrade_format_error(body: bytes) -> None:
    with contextlib.suppress(EtradeFormatError):
        parse_json(body)


@budget()
@given(answer_of(PREVIEW), answer_of(PLACE))
@example({"PreviewOrderResponse": {"PreviewIds": [{"previewId": 10**400}]}}, PLACE)
@example(PREVIEW, {"PlaceOrderResponse": {"OrderIds": {"orderId": "1e400"}}})
def test_preview_and_order_ids_are_integers_or_format_errors(
    preview: object, place: object
) -> None:
    for read in (lambda: preview_id(preview), lambda: placed_order_id(place)):
        try:
            value = read()
        except EtradeFormatError:
            continue
        assert isinstance(value, int)


@budget()
@given(answer_of(ORDERS))
@example({"OrdersResponse": {"Order": [{**ENTRY, "orderId": 10**400}]}})
@example(
    {
        "OrdersResponse": {
            "Order": {
                **ENTRY,
                "OrderDetail": {
                    **ENTRY["OrderDetail"],
                    "Instrument": {**ENTRY["OrderDetail"]["Instrument"][0], "filledQuantity": -3},
                },
            }
        }
    }
)
def test_an_orders_list_has_valid_amounts_or_is_a_format_error(doc: object) -> None:
    try:
        page = orders_page(doc)
    except EtradeFormatError:
        return
    assert page.marker is None or (isinstance(page.marker, str) and page.orders)
    for entry in page.orders:
        assert isinstance(entry.order_id, int) and isinstance(entry.placed_ms, int)
        assert_amounts(
            ordered_qty=entry.ordered_qty,
            filled_qty=entry.filled_qty,
            avg_price=entry.avg_price,
            commission=entry.commission,
        )
    order = TrackedOrder(
        "c1", 1, 1, 0, Side.BUY, 3.0, 0, 0, 0, OrderRequest("c1", "AAPL", "BUY", 3)
    )
    lost = find_lost_order(page.orders, order, {})
    assert lost is None or lost in page.orders
    for entry in page.orders:
        state = outcome_of(entry)
        assert state is None or state.terminal


@budget()
@given(answer_of(PORTFOLIO))
@example({"PortfolioResponse": {"AccountPortfolio": {"totalPages": "1e400"}}})
@example({"PortfolioResponse": {"AccountPortfolio": {"totalPages": 2.5}}})
def test_a_portfolio_has_finite_positions_or_is_a_format_error(doc: object) -> None:
    try:
        held, pages = portfolio(doc)
    except EtradeFormatError:
        return
    assert isinstance(pages, int) and pages >= 1
    for symbol, qty in held:
        assert symbol and math.isfinite(qty)


@budget()
@given(answer_of(BALANCE))
@example({"BalanceResponse": {"Computed": {"cashBalance": 10**400}}})
def test_a_balance_is_finite_or_a_format_error(doc: object) -> None:
    try:
        cash = cash_balance(doc)
    except EtradeFormatError:
        return
    assert math.isfinite(cash)


@budget()
@given(
    st.sampled_from((400, 401, 404, 429, 500, 503)),
    st.one_of(
        wire_or_raw(ERROR),
        st.builds(lambda junk: XML_ERROR[: len(XML_ERROR) // 2] + junk, raw_bytes),
        st.builds(lambda text: f"<Error><code>{text}</code></Error>".encode(), st.text()),
    ),
)
@example(400, b'{"Error": ' + DEEP_OBJECT + b"}")
@example(400, XML_ERROR)
def test_any_error_body_maps_to_an_etrade_error(status: int, body: bytes) -> None:
    parsed = parse_error_body(body)
    assert parsed is None or (isinstance(parsed[0], int) and isinstance(parsed[1], str))
    error = error_from_response(status, body)
    assert isinstance(error, EtradeError) and error.http_status == status
    assert isinstance(error.kind, EtradeErrorKind) and error.message
    assert error.reject_reason is None or isinstance(error.reject_reason, RejectReason)


@budget()
@given(
    st.one_of(
        raw_bytes,
        st.dictionaries(
            st.sampled_from(("oauth_token", "oauth_token_secret", "oauth_problem", "x")),
            st.text(max_size=10),
        ).map(lambda fields: "&".join(f"{k}={v}" for k, v in fields.items()).encode()),
    )
)
@example(b"oauth_token=%ff&oauth_token_secret=%ed%a0%80")
def test_form_encoded_answers_never_raise_but_the_documented_error(body: bytes) -> None:
    assert isinstance(oauth_problem(body), str)
    try:
        token = parse_token_response(body)
    except OAuthResponseError:
        return
    assert token.credentials.token and token.credentials.secret


def test_the_unmutated_answers_read_as_the_adapter_expects() -> None:
    """The seeds of the properties above are valid, so the properties test real parsing."""
    assert (preview_id(PREVIEW), placed_order_id(PLACE)) == (501, 7001)
    page = orders_page(json.loads(json.dumps(ORDERS)))
    assert [(o.order_id, o.status, o.filled_qty) for o in page.orders] == [(7001, "EXECUTED", 3)]
    assert portfolio(PORTFOLIO) == ([("AAPL", 3.0), ("BRK.B", -2.0)], 1)
    assert cash_balance(BALANCE) == 1000.5
