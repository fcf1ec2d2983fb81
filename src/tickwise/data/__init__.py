"""tickwise.data."""
