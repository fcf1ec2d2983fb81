"""Binance Spot wire vocabulary shared by the adapter and the simulator server.

Registry crypto pairs are quoted in USD ("BTC/USD"); at Binance they trade against USDT
("BTCUSDT"), and cash is held as USDT at 1:1. Equities do not trade at Binance, so they have no
wire symbol. Decimals travel as strings with 8 decimals, Binance's precision for spot assets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from tickwise.model.instruments import AssetClass, InstrumentRegistry
from tickwise.model.orders import OrderState, RejectReason, Side

QUOTE_ASSET = "USDT"
USD_ASSETS = frozenset({"USDT", "USD", "USDC", "FDUSD", "BUSD"})  # counted 1:1 as USD
DECIMALS = 8

SIDES: dict[Side, str] = {Side.BUY: "BUY", Side.SELL: "SELL"}
SIDE_OF: dict[str, Side] = {text: side for side, text in SIDES.items()}

# Binance order status -> normalised state (venues.md §6). PENDING_NEW only occurs for the
# pending legs of order lists and counts as working.
ORDER_STATES: dict[str, OrderState] = {
    "NEW": OrderState.ACKED,
    "PENDING_NEW": OrderState.ACKED,
    "PARTIALLY_FILLED": OrderState.PARTIALLY_FILLED,
    "FILLED": OrderState.FILLED,
    "CANCELED": OrderState.CANCELED,
    "PENDING_CANCEL": OrderState.ACKED,
    "EXPIRED": OrderState.EXPIRED,
    "EXPIRED_IN_MATCH": OrderState.EXPIRED,
    "REJECTED": OrderState.REJECTED,
}
STATUS_OF: dict[OrderState, str] = {
    OrderState.ACKED: "NEW",
    OrderState.PARTIALLY_FILLED: "PARTIALLY_FILLED",
    OrderState.FILLED: "FILLED",
    OrderState.CANCELED: "CANCELED",
    OrderState.EXPIRED: "EXPIRED",
    OrderState.REJECTED: "REJECTED",
}

# The `r` field of a REJECTED executionReport, both ways.
STREAM_REJECT_REASONS: dict[RejectReason, str] = {
    RejectReason.INSUFFICIENT_BUYING_POWER: "INSUFFICIENT_BALANCES",
    RejectReason.INSUFFICIENT_POSITION: "INSUFFICIENT_BALANCES",
    RejectReason.DUPLICATE_CLIENT_ORDER_ID: "DUPLICATE_ORDER",
    RejectReason.UNKNOWN_SYMBOL: "UNKNOWN_INSTRUMENT",
}


def stream_reject_reason(text: str, side: Side) -> RejectReason:
    """The normalised reason of an executionReport `r` value."""
    if text == "INSUFFICIENT_BALANCES":
        return (
            RejectReason.INSUFFICIENT_POSITION
            if side is Side.SELL
            else RejectReason.INSUFFICIENT_BUYING_POWER
        )
    if text == "DUPLICATE_ORDER":
        return RejectReason.DUPLICATE_CLIENT_ORDER_ID
    if text == "UNKNOWN_INSTRUMENT":
        return RejectReason.UNKNOWN_SYMBOL
    return RejectReason.VENUE_ERROR


def wire_pair(symbol: str) -> tuple[str, str] | None:
    """(base asset, Binance symbol) of a registry pair quoted in USD; None otherwise."""
    base, sep, quote = symbol.partition("/")
    if not sep or not base or quote != "USD":
        return None
    base = base.upper()
    return base, f"{base}{QUOTE_ASSET}"


@dataclass(frozen=True)
class SymbolMap:
    """Registry instruments <-> Binance symbols and base assets (crypto pairs only)."""

    wire: tuple[str | None, ...]  # per instrument index
    base: tuple[str | None, ...]
    by_wire: dict[str, int]
    by_base: dict[str, int]

    @classmethod
    def of(cls, registry: InstrumentRegistry) -> SymbolMap:
        wire: list[str | None] = []
        base: list[str | None] = []
        for inst in registry:
            pair = wire_pair(inst.symbol) if inst.asset_class is AssetClass.CRYPTO else None
            base.append(pair[0] if pair else None)
            wire.append(pair[1] if pair else None)
        return cls(
            wire=tuple(wire),
            base=tuple(base),
            by_wire={w: i for i, w in enumerate(wire) if w is not None},
            by_base={b: i for i, b in enumerate(base) if b is not None},
        )

    def symbol_of(self, instrument: int) -> str | None:
        if 0 <= instrument < len(self.wire):
            return self.wire[instrument]
        return None

    def instrument_of(self, symbol: str) -> int | None:
        return self.by_wire.get(symbol.upper())


def fmt(value: float, decimals: int = DECIMALS) -> str:
    """A number as Binance writes it: fixed point, `decimals` places ("0.00100000")."""
    if not math.isfinite(value):
        value = 0.0
    text = f"{value:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.000"


def fmt_step(value: float) -> str:
    """A step or bound as exchangeInfo writes it, exact to the float's shortest repr and never
    fewer than 8 decimals ("0.01000000", "0.00001000")."""
    exact = Decimal(repr(float(value)))
    decimals = max(DECIMALS, -int(exact.normalize().as_tuple().exponent))
    return f"{exact:.{decimals}f}"


def number(value: object) -> float:
    """A decimal string (or number) from an answer as float; ValueError when it is not one.
    Every amount Binance reports (quantities, prices, commissions, balances) is finite and not
    negative: anything else is a malformed answer."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected a decimal, got {value!r:.40}")
    try:
        out = float(value)
    except OverflowError:  # an integer beyond any float
        raise ValueError(f"decimal out of range: {value!r:.40}") from None
    if not math.isfinite(out) or out < 0.0:
        raise ValueError(f"expected a finite, non-negative decimal, got {value!r:.40}")
    return out
