"""The public names of the Binance building blocks, pinned so that a removal is deliberate."""

from __future__ import annotations

import tickwise.venues.binance as binance


def test_exported_members() -> None:
    assert set(binance.__all__) == {
        "API_KEY_HEADER",
        "ERRORS",
        "BinanceError",
        "ErrorRule",
        "ExchangeInfoError",
        "Filter",
        "Grid",
        "ServerClock",
        "SigningError",
        "SigningKey",
        "SymbolRules",
        "check_orders",
        "encode_query",
        "error_from_response",
        "error_from_timeout",
        "failed_filter",
        "format_steps",
        "parse_exchange_info",
        "reject_reason",
        "round_price",
        "round_quantity",
        "sign_ed25519",
        "sign_hmac",
        "signed_query",
        "symbol_indices",
    }
    assert all(hasattr(binance, name) for name in binance.__all__)


def test_errors_are_value_errors_or_venue_errors() -> None:
    assert issubclass(binance.ExchangeInfoError, ValueError)
    assert issubclass(binance.SigningError, ValueError)
    assert issubclass(binance.BinanceError, binance.errors.VenueError)
