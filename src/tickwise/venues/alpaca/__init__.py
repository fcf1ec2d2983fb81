"""Alpaca adapter building blocks: Trading/Broker API credentials and paths, error mapping."""

from tickwise.venues.alpaca.auth import (
    AlpacaCredentialError,
    BrokerAccountPaths,
    BrokerCredentials,
    TradingCredentials,
    TradingPaths,
)
from tickwise.venues.alpaca.errors import (
    AlpacaError,
    AlpacaErrorKind,
    RateLimit,
    error_from_response,
    is_duplicate_client_order_id,
    rate_limit_from_headers,
    reject_reason,
)

__all__ = [
    "AlpacaCredentialError",
    "AlpacaError",
    "AlpacaErrorKind",
    "BrokerAccountPaths",
    "BrokerCredentials",
    "RateLimit",
    "TradingCredentials",
    "TradingPaths",
    "error_from_response",
    "is_duplicate_client_order_id",
    "rate_limit_from_headers",
    "reject_reason",
]
