"""tickwise.engine."""
