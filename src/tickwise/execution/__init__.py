"""tickwise.execution."""
