"""tickwise.venues."""
