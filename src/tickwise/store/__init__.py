"""tickwise.store."""
