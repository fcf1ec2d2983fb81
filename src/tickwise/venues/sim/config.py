"""How the venue simulator behaves, per venue, as data: delays, fees, spreads, id rules, texts.

The defaults are the real venues' orders of magnitude (venues.md): Alpaca answers in ~15 ms and
charges no commission, Binance in ~8 ms at 10 bps, E*Trade in ~40 ms at no commission.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from tickwise.model.instruments import AssetClass, Venue
from tickwise.model.orders import RejectReason


class DuplicateIdScope(IntEnum):
    """Which earlier orders a new client order id must differ from."""

    ACCOUNT_HISTORY = 0  # every order the account ever had (Alpaca, E*Trade)
    OPEN_ORDERS = 1  # only the account's open orders (Binance)


@dataclass(frozen=True, slots=True)
class VenueSimDefaults:
    ack_delay_ms: float
    fee_bps: float
    duplicate_id_scope: DuplicateIdScope


SIM_DEFAULTS: dict[Venue, VenueSimDefaults] = {
    Venue.ALPACA: VenueSimDefaults(15.0, 0.0, DuplicateIdScope.ACCOUNT_HISTORY),
    Venue.BINANCE: VenueSimDefaults(8.0, 10.0, DuplicateIdScope.OPEN_ORDERS),
    Venue.ETRADE: VenueSimDefaults(40.0, 0.0, DuplicateIdScope.ACCOUNT_HISTORY),
}


@dataclass(frozen=True, slots=True)
class SimVenueConfig:
    """Simulator knobs; `None` means the venue's default from `SIM_DEFAULTS`.

    An order is answered `ack_delay_ms` plus a uniform jitter in `[0, jitter_ms)` after it was
    sent. Market orders fill at the order's reference price plus (buy) or minus (sell) the half
    spread, rounded away from the client to the instrument's tick, and pay `fee_bps` of notional
    in USD. `qty_tolerance` is the relative slack on quantity checks (increments, positions).
    """

    ack_delay_ms: float | None = None
    jitter_ms: float = 2.0
    fee_bps: float | None = None
    half_spread_bps_equity: float = 1.0
    half_spread_bps_crypto: float = 2.5
    qty_tolerance: float = 1e-9

    def __post_init__(self) -> None:
        for name in ("ack_delay_ms", "fee_bps"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        for name in ("jitter_ms", "half_spread_bps_equity", "half_spread_bps_crypto"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if not 0 <= self.qty_tolerance < 1e-3:
            raise ValueError("qty_tolerance must be in [0, 1e-3)")

    def delay_ms(self, venue: Venue) -> float:
        return SIM_DEFAULTS[venue].ack_delay_ms if self.ack_delay_ms is None else self.ack_delay_ms

    def fee_rate(self, venue: Venue) -> float:
        """Fee as a fraction of notional."""
        bps = SIM_DEFAULTS[venue].fee_bps if self.fee_bps is None else self.fee_bps
        return bps / 1e4

    def half_spread(self, asset_class: AssetClass) -> float:
        """Half the bid/ask spread as a fraction of price."""
        if asset_class is AssetClass.EQUITY:
            return self.half_spread_bps_equity / 1e4
        return self.half_spread_bps_crypto / 1e4


# What each venue says when it refuses an order: (its error code, its text). Kept beside the
# normalised `RejectReason` so the journal can show the venue's own words. Alpaca and Binance
# codes are the documented ones; E*Trade does not publish order-reject codes, so its numbers here
# are placeholders in its style and only the texts matter.
_A, _B, _E = Venue.ALPACA, Venue.BINANCE, Venue.ETRADE
_R = RejectReason
VENUE_REJECT_TEXT: dict[tuple[Venue, RejectReason], tuple[int, str]] = {
    (_A, _R.INSUFFICIENT_BUYING_POWER): (40310000, "insufficient buying power"),
    (_A, _R.INSUFFICIENT_POSITION): (40310000, "insufficient qty available for order"),
    (_A, _R.INVALID_QUANTITY_INCREMENT): (40010001, "requested asset is not fractionable"),
    (_A, _R.BELOW_MIN_NOTIONAL): (40310000, "cost basis must be >= minimal amount of order"),
    (_A, _R.UNKNOWN_SYMBOL): (42210000, "asset not found"),
    (_A, _R.DUPLICATE_CLIENT_ORDER_ID): (40010001, "client_order_id must be unique"),
    (_A, _R.VENUE_ERROR): (40010001, "invalid order request"),
    (_B, _R.INSUFFICIENT_BUYING_POWER): (
        -2010,
        "Account has insufficient balance for requested action.",
    ),
    (_B, _R.INSUFFICIENT_POSITION): (
        -2010,
        "Account has insufficient balance for requested action.",
    ),
    (_B, _R.INVALID_QUANTITY_INCREMENT): (-1013, "Filter failure: LOT_SIZE"),
    (_B, _R.BELOW_MIN_NOTIONAL): (-1013, "Filter failure: NOTIONAL"),
    (_B, _R.UNKNOWN_SYMBOL): (-1121, "Invalid symbol."),
    (_B, _R.DUPLICATE_CLIENT_ORDER_ID): (-2010, "Duplicate order sent."),
    (_B, _R.VENUE_ERROR): (
        -1102,
        "Mandatory parameter was not sent, was empty/null, or malformed.",
    ),
    (_E, _R.INSUFFICIENT_BUYING_POWER): (
        1031,
        "The order you entered exceeds your available cash buying power.",
    ),
    (_E, _R.INSUFFICIENT_POSITION): (1032, "You do not hold enough shares to sell."),
    (_E, _R.INVALID_QUANTITY_INCREMENT): (1033, "Quantity must be a whole number of shares."),
    (_E, _R.BELOW_MIN_NOTIONAL): (1034, "Order value is below the minimum."),
    (_E, _R.UNKNOWN_SYMBOL): (10033, "The symbol entered is invalid."),
    (_E, _R.DUPLICATE_CLIENT_ORDER_ID): (1035, "Duplicate clientOrderId."),
    (_E, _R.VENUE_ERROR): (100, "Invalid request."),
}

# What each venue answers for an order id it does not know (query, cancel).
VENUE_ORDER_NOT_FOUND: dict[Venue, tuple[int, str]] = {
    _A: (40410000, "order not found"),
    _B: (-2013, "Order does not exist."),
    _E: (101, "Order not found."),
}


def venue_reject_text(venue: Venue, reason: RejectReason) -> tuple[int, str]:
    """The venue's (code, text) for a normalised reject reason."""
    return VENUE_REJECT_TEXT.get((venue, reason), (0, reason.name.lower()))
