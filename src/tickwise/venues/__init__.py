"""Venues: one interface (`VenueClient`) for every broker or exchange, and the simulator.

Beside the interface: what each venue accepts and how it counts requests (`capabilities`,
`ratelimit`), clients' credentials encrypted at rest (`credentials`), the live market-data
stream parsers (`marketdata`), and per venue its signing and error mapping (`alpaca`,
`binance`, `etrade`).
"""

from tickwise.venues.base import Balances, OrderStatus, VenueClient, VenueError
from tickwise.venues.capabilities import CAPABILITIES, VenueCapabilities
from tickwise.venues.ratelimit import Backoff, RateLimiter

__all__ = [
    "CAPABILITIES",
    "Backoff",
    "Balances",
    "OrderStatus",
    "RateLimiter",
    "VenueCapabilities",
    "VenueClient",
    "VenueError",
]
