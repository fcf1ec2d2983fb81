"""Venues: one interface (`VenueClient`) for every broker or exchange, and the simulator."""

from tickwise.venues.base import Balances, OrderStatus, VenueClient, VenueError

__all__ = ["Balances", "OrderStatus", "VenueClient", "VenueError"]
