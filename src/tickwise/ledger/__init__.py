"""tickwise.ledger."""
