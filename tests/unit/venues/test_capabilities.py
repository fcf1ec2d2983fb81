"""Venue capabilities as data: every venue is described, and the id rule agrees with model.ids."""

from __future__ import annotations

import pytest

from tickwise.model.ids import COID_LEN, client_order_id, signal_id
from tickwise.model.instruments import VENUE_RULES, AssetClass, Venue
from tickwise.venues.capabilities import (
    ALPACA_BROKER,
    CAPABILITIES,
    LimitRule,
    OrderType,
    TimeInForce,
)

T0 = 1_700_000_000_000_000_000


def test_every_venue_has_capabilities_built_on_its_venue_rules() -> None:
    assert set(CAPABILITIES) == set(Venue)
    for venue, caps in CAPABILITIES.items():
        assert caps.venue is venue
        assert caps.rules is VENUE_RULES[venue]
        assert caps.limits, f"{venue.label} has no rate limits"
        assert caps.rate_limit_statuses
        for asset_class in AssetClass:
            if caps.rules.trades(asset_class):
                assert caps.order_types[asset_class], (venue, asset_class)
                assert caps.time_in_force[asset_class], (venue, asset_class)


@pytest.mark.parametrize("venue", list(Venue))
def test_tickwise_client_order_id_is_valid_everywhere(venue: Venue) -> None:
    coid = client_order_id(signal_id(8191, T0), 36**4 - 1)
    assert len(coid) == COID_LEN == 18
    assert CAPABILITIES[venue].accepts_client_order_id(coid)


def test_id_rule_length_and_charset_follow_venue_rules() -> None:
    for venue, caps in CAPABILITIES.items():
        longest = caps.rules.max_client_order_id_len
        assert caps.accepts_client_order_id("A" * longest), venue
        assert not caps.accepts_client_order_id("A" * (longest + 1)), venue
        assert not caps.accepts_client_order_id(""), venue
        assert caps.accepts_client_order_id("ab-1") is not caps.rules.client_order_id_alnum_only
    assert not CAPABILITIES[Venue.ETRADE].accepts_client_order_id("A1B2_C3")
    assert CAPABILITIES[Venue.BINANCE].accepts_client_order_id("x-HNA2TXFJ:a/b.c")
    assert not CAPABILITIES[Venue.BINANCE].accepts_client_order_id("has space")


def test_order_types_and_tif_per_asset_class() -> None:
    alpaca = CAPABILITIES[Venue.ALPACA]
    assert alpaca.supports(AssetClass.EQUITY, OrderType.TRAILING_STOP, TimeInForce.OPG)
    assert not alpaca.supports(AssetClass.CRYPTO, OrderType.STOP)
    assert not alpaca.supports(AssetClass.CRYPTO, OrderType.LIMIT, TimeInForce.DAY)
    assert alpaca.time_in_force[AssetClass.CRYPTO][TimeInForce.IOC] == "ioc"
    binance = CAPABILITIES[Venue.BINANCE]
    assert binance.order_types[AssetClass.CRYPTO][OrderType.STOP_LIMIT] == "STOP_LOSS_LIMIT"
    assert not binance.supports(AssetClass.EQUITY, OrderType.MARKET)
    assert not binance.supports(AssetClass.CRYPTO, OrderType.LIMIT, TimeInForce.DAY)
    etrade = CAPABILITIES[Venue.ETRADE]
    assert etrade.time_in_force[AssetClass.EQUITY][TimeInForce.DAY] == "GOOD_FOR_DAY"
    assert not etrade.fractional_equities and alpaca.fractional_equities


def test_binance_limits_match_venues_md() -> None:
    rules = {r.name: r for r in CAPABILITIES[Venue.BINANCE].limits}
    weight = rules["request-weight"]
    assert (weight.scope, weight.window_s, weight.capacity, weight.unit) == (
        "ip",
        60.0,
        6000,
        "weight",
    )
    assert weight.header == "x-mbx-used-weight-1m"
    orders = rules["orders-10s"]
    assert (orders.scope, orders.window_s, orders.capacity, orders.unit) == (
        "account",
        10.0,
        50,
        "orders",
    )
    assert rules["orders-1d"].capacity == 160000
    assert CAPABILITIES[Venue.BINANCE].escalating_ban
    assert 418 in CAPABILITIES[Venue.BINANCE].rate_limit_statuses


def test_binance_cost_uses_endpoint_weights_and_counts_orders() -> None:
    binance = CAPABILITIES[Venue.BINANCE]
    assert binance.cost("POST /api/v3/order") == {"requests": 1.0, "weight": 1.0, "orders": 1.0}
    assert binance.cost("GET /api/v3/order") == {"requests": 1.0, "weight": 4.0}
    assert binance.cost("GET /api/v3/openOrders?all-symbols")["weight"] == 80.0
    with pytest.raises(ValueError, match="no request weight known"):
        binance.cost("GET /api/v3/nope")


def test_etrade_counts_modules_apart_and_alpaca_broker_per_account() -> None:
    etrade = CAPABILITIES[Venue.ETRADE]
    assert etrade.cost("POST /v1/accounts/K/orders/place") == {"order:requests": 1.0}
    assert etrade.cost("GET /v1/market/quote/AAPL") == {"market:requests": 1.0}
    assert etrade.cost("GET /v1/accounts/K/balance") == {"accounts:requests": 1.0}
    order_1s = [r for r in etrade.limits if r.pool == "order" and r.window_s == 1.0]
    assert {r.scope for r in order_1s} == {"key", "account"}
    assert all(r.capacity == 2 for r in order_1s)
    assert 400 in etrade.rate_limit_statuses  # the HTML "rate limit" page comes as a 400
    assert ALPACA_BROKER.cost("POST /v1/trading/accounts/A/orders") == {"account:requests": 1.0}
    assert ALPACA_BROKER.cost("GET /v1/accounts") == {"requests": 1.0}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scope": "user"}, "unknown scope"),
        ({"unit": "bytes"}, "unknown cost unit"),
        ({"window_s": 0.0}, "window_s must be > 0"),
        ({"capacity": -1.0}, "capacity must be > 0"),
        ({"window": "leaky"}, "unknown window kind"),
        ({"header": "X-Used"}, "lower case"),
    ],
)
def test_limit_rule_refuses_bad_values(kwargs: dict[str, object], match: str) -> None:
    base: dict[str, object] = {
        "name": "r",
        "scope": "ip",
        "window_s": 1.0,
        "capacity": 1.0,
        "unit": "requests",
    }
    with pytest.raises(ValueError, match=match):
        LimitRule(**(base | kwargs))  # type: ignore[arg-type]
