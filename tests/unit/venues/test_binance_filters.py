"""Binance exchangeInfo filters: parsing, batch checks and rounding to exact decimal steps."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickwise.model.orders import RejectReason
from tickwise.venues.binance import (
    ExchangeInfoError,
    Filter,
    SymbolRules,
    check_orders,
    failed_filter,
    format_steps,
    parse_exchange_info,
    round_price,
    round_quantity,
    symbol_indices,
)

R = RejectReason
BTC, ETH, OLD, HALT = 0, 1, 2, 3


def _symbol(name: str, filters: list[dict[str, Any]], status: str = "TRADING") -> dict[str, Any]:
    return {"symbol": name, "status": status, "baseAsset": name[:3], "filters": filters}


def _price(lo: str, hi: str, tick: str) -> dict[str, Any]:
    return {"filterType": "PRICE_FILTER", "minPrice": lo, "maxPrice": hi, "tickSize": tick}


def _lot(lo: str, hi: str, step: str, kind: str = "LOT_SIZE") -> dict[str, Any]:
    return {"filterType": kind, "minQty": lo, "maxQty": hi, "stepSize": step}


DOC: dict[str, Any] = {
    "timezone": "UTC",
    "rateLimits": [],
    "symbols": [
        _symbol(
            "BTCUSDT",
            [
                _price("0.01000000", "1000000.00000000", "0.01000000"),
                _lot("0.00001000", "9000.00000000", "0.00001000"),
                _lot("0.00000000", "100.00000000", "0.00000000", "MARKET_LOT_SIZE"),
                {"filterType": "ICEBERG_PARTS", "limit": 10},
                {
                    "filterType": "NOTIONAL",
                    "minNotional": "5.00000000",
                    "applyMinToMarket": True,
                    "maxNotional": "9000000.00000000",
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
                {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5"},
            ],
        ),
        _symbol(
            "ETHBTC",
            [
                _price("0.00001000", "922327.00000000", "0.00001000"),
                _lot("0.00010000", "100000.00000000", "0.00010000"),
                _lot("0.00010000", "10.00000000", "0.00100000", "MARKET_LOT_SIZE"),
            ],
        ),
        _symbol(
            "OLDBNB",
            [
                _lot("1.00000000", "0", "1.00000000"),
                {
                    "filterType": "MIN_NOTIONAL",
                    "minNotional": "0.10000000",
                    "applyToMarket": False,
                    "avgPriceMins": 5,
                },
            ],
        ),
        _symbol("HALTUSDT", [], status="HALT"),
    ],
}


@pytest.fixture(scope="module")
def rules() -> SymbolRules:
    return parse_exchange_info(json.dumps(DOC))


def _check(
    rules: SymbolRules,
    idx: list[int],
    qty: list[float],
    price: list[float],
    market: bool = False,
    side: int = 1,
) -> npt.NDArray[np.int8]:
    n = len(idx)
    return failed_filter(
        rules,
        np.array(idx),
        np.full(n, side, np.int8),
        np.array(qty, np.float64),
        np.array(price, np.float64),
        np.full(n, market),
    )


def test_parses_known_filters_and_keeps_the_rest(rules: SymbolRules) -> None:
    assert rules.symbols == ("BTCUSDT", "ETHBTC", "OLDBNB", "HALTUSDT")
    assert rules.trading.tolist() == [True, True, True, False]
    assert rules.lot.num[BTC] == 1 and rules.lot.den[BTC] == 100_000
    assert rules.price.step[ETH] == pytest.approx(1e-5)
    assert rules.min_notional.tolist() == [5.0, 0.0, 0.1, 0.0]
    assert rules.min_notional_market.tolist() == [True, False, False, False]
    assert [f["filterType"] for f in rules.ignored[BTC]] == [
        "ICEBERG_PARTS",
        "PERCENT_PRICE_BY_SIDE",
    ]
    assert rules.index("ETHBTC") == ETH
    assert symbol_indices(rules, ["OLDBNB", "NOPE"]).tolist() == [OLD, -1]
    with pytest.raises(KeyError, match="NOPE"):
        rules.index("NOPE")


def test_each_filter_fails_with_its_reason(rules: SymbolRules) -> None:
    cases = [
        (BTC, 0.001, 60_000.0, False, Filter.NONE),
        (BTC, 0.000015, 60_000.0, False, Filter.LOT_SIZE),  # off the step
        (BTC, 0.001, 60_000.005, False, Filter.PRICE_FILTER),  # off the tick
        (BTC, 0.00005, 60_000.0, False, Filter.NOTIONAL),  # 3 USDT < 5
        (BTC, 200.0, 60_000.0, False, Filter.NOTIONAL),  # above maxNotional
        (BTC, 200.0, 60_000.0, True, Filter.MARKET_LOT_SIZE),  # above market maxQty
        (ETH, 0.0015, 0.05, True, Filter.MARKET_LOT_SIZE),  # market step 0.001
        (ETH, 0.0015, 0.05, False, Filter.NONE),
        (OLD, 1.0, 0.01, False, Filter.MIN_NOTIONAL),
        (OLD, 1.0, 0.01, True, Filter.NONE),  # applyToMarket false
        (HALT, 1.0, 1.0, False, Filter.SYMBOL),
        (7, 1.0, 1.0, False, Filter.SYMBOL),
        (-1, 1.0, 1.0, False, Filter.SYMBOL),
        (BTC, -1.0, 60_000.0, False, Filter.ORDER),
        (BTC, 0.001, float("nan"), False, Filter.ORDER),
    ]
    idx, qty, price, market, expected = (list(c) for c in zip(*cases, strict=True))
    got = failed_filter(rules, idx, np.ones(len(idx)), qty, price, market)
    assert [Filter(g).name for g in got] == [Filter(e).name for e in expected]
    ok, reason = check_orders(rules, idx, np.ones(len(idx)), qty, price, market)
    assert ok.tolist() == [e is Filter.NONE for e in expected]
    assert reason[1] == R.INVALID_QUANTITY_INCREMENT
    assert reason[3] == R.BELOW_MIN_NOTIONAL
    assert reason[10] == R.UNKNOWN_SYMBOL
    assert reason[2] == R.VENUE_ERROR


def test_a_side_other_than_buy_or_sell_is_malformed(rules: SymbolRules) -> None:
    assert _check(rules, [BTC], [0.001], [60_000.0], side=0).tolist() == [Filter.ORDER]
    assert _check(rules, [BTC], [0.001], [60_000.0], side=-1).tolist() == [Filter.NONE]


def test_notional_exactly_at_the_minimum_passes_and_one_step_below_fails(
    rules: SymbolRules,
) -> None:
    # 0.00025 × 20000 = 5 exactly in decimal; in floats the product may miss by an ulp.
    got = _check(
        rules, [BTC, BTC, BTC], [0.00025, 0.00024, 0.00001], [20_000.0, 20_000.0, 500_000.0]
    )
    assert got.tolist() == [Filter.NONE, Filter.NOTIONAL, Filter.NONE]


def test_decimal_steps_are_exact(rules: SymbolRules) -> None:
    # Float modulo would call 0.3 off a 0.1 grid; ETHBTC's 0.0001 step is the same case.
    qty = [0.1 + 0.2, 0.0003, 0.0007 - 0.0004, 1.0]
    assert _check(rules, [ETH] * 4, qty, [0.05] * 4).tolist() == [Filter.NONE] * 4
    rounded = round_quantity(rules, [ETH] * 4, [0.00039999, 0.0003, 0.30000000000000004, 2.71828])
    assert rounded.tolist() == [0.0003, 0.0003, 0.3, 2.7182]
    assert format_steps(float(rounded[3]), int(rules.lot.den[ETH])) == "2.7182"


def test_a_float_a_hair_below_a_grid_point_is_that_point(rules: SymbolRules) -> None:
    """Selling a whole position computed in floats must not leave a step of dust behind."""
    assert round_quantity(rules, [ETH], [0.7 - 0.4]).tolist() == [0.3]
    assert round_quantity(rules, [ETH], [0.29989999]).tolist() == [0.2998]


def test_round_price_goes_to_the_nearest_tick(rules: SymbolRules) -> None:
    got = round_price(rules, [BTC, BTC, ETH, OLD], [60_000.004, 60_000.006, 0.123456, 3.14159])
    assert got.tolist() == [60_000.0, 60_000.01, 0.12346, 3.14159]  # OLDBNB has no tick


def test_market_orders_round_to_the_market_step(rules: SymbolRules) -> None:
    got = round_quantity(rules, [ETH, ETH, BTC], [0.0019, 0.0019, 0.0019], [True, False, True])
    assert got.tolist() == [0.001, 0.0019, 0.0019]  # BTC's market step is disabled


def test_rounding_refuses_unknown_rows(rules: SymbolRules) -> None:
    with pytest.raises(ValueError, match="out of range"):
        round_quantity(rules, [9], [1.0])
    with pytest.raises(ValueError, match="shape"):
        round_price(rules, [0, 1], [1.0])


STEPS = ["1", "0.1", "0.01", "0.001", "0.00001", "0.00000001", "0.5", "0.025", "5", "0.00025"]


def _rules_for(step: str, min_qty: str = "0") -> SymbolRules:
    return parse_exchange_info({"symbols": [_symbol("XY", [_lot(min_qty, "0", step)])]})


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(STEPS), st.floats(min_value=0.0, max_value=1e7, allow_subnormal=False))
def test_rounding_never_increases_and_lands_on_the_step(step: str, qty: float) -> None:
    rules = _rules_for(step)
    rounded = float(round_quantity(rules, [0], [qty])[0])
    assert 0.0 <= rounded <= qty + 1e-9 * float(step)  # a hair below a grid point is on it
    # Less than one step lost (plus float noise).
    assert qty - rounded < float(step) * (1 + 1e-9) + 1e-9 * qty
    # The decimal string of the result is an exact multiple of the step.
    text = format_steps(rounded, int(rules.lot.den[0]))
    assert Decimal(text) % Decimal(step) == 0
    if rounded > 0:
        ok, _ = check_orders(rules, [0], [1], [rounded], [1.0], [False])
        assert ok[0]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(STEPS), st.integers(min_value=1, max_value=10**9))
def test_a_whole_number_of_steps_passes_and_rounds_to_itself(step: str, k: int) -> None:
    rules = _rules_for(step, min_qty=step)
    qty = float(Decimal(k) * Decimal(step))
    assert failed_filter(rules, [0], [1], [qty], [1.0], [False]).tolist() == [Filter.NONE]
    assert round_quantity(rules, [0], [qty]).tolist() == [qty]


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["0.001", "0.00001", "1"]),
    st.integers(min_value=1, max_value=10**6),
    st.integers(min_value=1, max_value=10**6),
)
def test_notional_boundary_is_decided_in_decimal(step: str, k: int, p: int) -> None:
    qty = Decimal(k) * Decimal(step)
    price = Decimal(p) / 100
    at = qty * price
    for min_notional, passes in ((at, True), (at + Decimal("0.00001") * at, False)):
        doc = {
            "symbols": [
                _symbol(
                    "XY",
                    [
                        _lot("0", "0", step),
                        _price("0", "0", "0.01"),
                        {"filterType": "MIN_NOTIONAL", "minNotional": str(min_notional)},
                    ],
                )
            ]
        }
        ok, _ = check_orders(
            parse_exchange_info(doc), [0], [1], [float(qty)], [float(price)], [False]
        )
        assert ok[0] == passes


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ({"symbols": "BTCUSDT"}, "'symbols' list"),
        ({"symbols": [5]}, r"symbols\[0\] is not an object"),
        ({"symbols": [{"filters": []}]}, "no symbol name"),
        ({"symbols": [_symbol("A", []), _symbol("A", [])]}, "twice"),
        ({"symbols": [_symbol("A", [{"minQty": "1"}])]}, "symbol A: filter .* has no filterType"),
        (
            {
                "symbols": [
                    _symbol("BTCX", [{"filterType": "LOT_SIZE", "minQty": "1", "maxQty": "2"}])
                ]
            },
            "symbol BTCX LOT_SIZE: missing field 'stepSize'",
        ),
        (
            {"symbols": [_symbol("BTCX", [_price("0.01", "10", "abc")])]},
            "symbol BTCX PRICE_FILTER tickSize: 'abc' is not a decimal",
        ),
        ({"symbols": [_symbol("BTCX", [_price("0.01", "10", "-1")])]}, "non-negative"),
        ({"symbols": [_symbol("BTCX", [_price("0.01", "10", "NaN")])]}, "finite"),
        ({"symbols": [_symbol("BTCX", [_lot("5", "1", "1")])]}, "minQty 5 is above maxQty 1"),
        ({"symbols": [_symbol("BTCX", [_lot("0", "0", "1e-20")])]}, "decimals"),
        ({"symbols": [_symbol("BTCX", [_lot("0", "0", "1"), _lot("0", "0", "1")])]}, "twice"),
        (
            {
                "symbols": [
                    _symbol(
                        "X",
                        [
                            {
                                "filterType": "NOTIONAL",
                                "minNotional": "1",
                                "maxNotional": "2",
                                "applyMinToMarket": "yes",
                            }
                        ],
                    )
                ]
            },
            "symbol X NOTIONAL: applyMinToMarket",
        ),
        ({"symbols": [_symbol("X", [_lot("0", "0", True)])]}, "expected a decimal string"),  # type: ignore[arg-type]
    ],
)
def test_bad_documents_give_one_clear_error(doc: Any, match: str) -> None:
    with pytest.raises(ExchangeInfoError, match=match):
        parse_exchange_info(doc)


def test_an_empty_listing_rejects_every_symbol() -> None:
    rules = parse_exchange_info({"symbols": []})
    assert len(rules) == 0
    assert failed_filter(rules, [0], [1], [1.0], [1.0], [False]).tolist() == [Filter.SYMBOL]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
_filter = st.fixed_dictionaries(
    {
        "filterType": st.sampled_from(
            ["PRICE_FILTER", "LOT_SIZE", "MARKET_LOT_SIZE", "NOTIONAL", "MIN_NOTIONAL", "X"]
        )
    },
    optional={
        k: st.one_of(st.sampled_from(["0", "0.001", "1", "-1", "1e400", "x", ""]), _json)
        for k in [
            "minPrice",
            "maxPrice",
            "tickSize",
            "minQty",
            "maxQty",
            "stepSize",
            "minNotional",
            "maxNotional",
            "applyToMarket",
            "applyMinToMarket",
        ]
    },
)
_doc = st.fixed_dictionaries(
    {},
    optional={
        "symbols": st.one_of(
            _json,
            st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "symbol": st.one_of(st.sampled_from(["A", "B"]), _json),
                        "status": st.one_of(st.just("TRADING"), _json),
                        "filters": st.one_of(
                            st.lists(st.one_of(_filter, _json), max_size=4), _json
                        ),
                    },
                ),
                max_size=3,
            ),
        )
    },
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_doc, _json, _doc.map(json.dumps), st.binary(max_size=40)))
def test_any_document_parses_or_raises_exchange_info_error(doc: Any) -> None:
    try:
        rules = parse_exchange_info(doc)
    except ExchangeInfoError:
        return
    assert len(rules.symbols) == rules.trading.size == rules.lot.num.size == len(rules.ignored)
