"""tickwise.venues.sim."""
