"""The in-process venue simulator: Alpaca, Binance and E*Trade accounts behind `VenueClient`."""

from tickwise.venues.sim.config import (
    SIM_DEFAULTS,
    DuplicateIdScope,
    SimVenueConfig,
    venue_reject_text,
)
from tickwise.venues.sim.venue import SimVenue

__all__ = ["SIM_DEFAULTS", "DuplicateIdScope", "SimVenue", "SimVenueConfig", "venue_reject_text"]
