"""The ledger: fills to positions, cash (integer micro-dollars), average cost and PnL."""

from tickwise.ledger.ledger import MICROS, ClientSnapshot, Ledger, to_micros

__all__ = ["MICROS", "ClientSnapshot", "Ledger", "to_micros"]
