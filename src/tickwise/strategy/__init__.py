"""tickwise.strategy."""
