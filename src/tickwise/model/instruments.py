"""Instruments and the venues that trade them.

Hot paths carry an instrument's dense integer index, never its symbol. The registry maps
index <-> symbol and holds each instrument's increments as columnar arrays so that numpy code
(allocation, validation) can look them up for a whole batch at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt


class AssetClass(IntEnum):
    EQUITY = 0
    CRYPTO = 1


class Venue(IntEnum):
    ALPACA = 0
    BINANCE = 1
    ETRADE = 2

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Venue:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(v.label for v in cls)
            raise ValueError(f"unknown venue {text!r} (expected one of: {names})") from None


@dataclass(frozen=True, slots=True)
class VenueRules:
    """What a venue accepts, as data (no `if venue == ...` branches elsewhere).

    `fractional_equities`: the venue takes fractional share quantities for fractionable stocks.
    `min_notional_equity` / `min_notional_crypto`: the smallest order value it accepts, in USD.
    `max_client_order_id_len` / `client_order_id_alnum_only`: the id rule (see venues.md).
    """

    venue: Venue
    asset_classes: frozenset[AssetClass]
    fractional_equities: bool
    min_notional_equity: float
    min_notional_crypto: float
    max_client_order_id_len: int
    client_order_id_alnum_only: bool
    client_order_id_unique_forever: bool

    def trades(self, asset_class: AssetClass) -> bool:
        return asset_class in self.asset_classes

    def min_notional(self, asset_class: AssetClass) -> float:
        if asset_class is AssetClass.EQUITY:
            return self.min_notional_equity
        return self.min_notional_crypto


VENUE_RULES: dict[Venue, VenueRules] = {
    Venue.ALPACA: VenueRules(
        venue=Venue.ALPACA,
        asset_classes=frozenset({AssetClass.EQUITY, AssetClass.CRYPTO}),
        fractional_equities=True,
        min_notional_equity=1.0,
        min_notional_crypto=1.0,
        max_client_order_id_len=48,
        client_order_id_alnum_only=False,
        client_order_id_unique_forever=True,
    ),
    Venue.BINANCE: VenueRules(
        venue=Venue.BINANCE,
        asset_classes=frozenset({AssetClass.CRYPTO}),
        fractional_equities=False,
        min_notional_equity=float("inf"),
        min_notional_crypto=5.0,
        max_client_order_id_len=36,
        client_order_id_alnum_only=False,
        client_order_id_unique_forever=False,
    ),
    Venue.ETRADE: VenueRules(
        venue=Venue.ETRADE,
        asset_classes=frozenset({AssetClass.EQUITY}),
        fractional_equities=False,
        min_notional_equity=1.0,
        min_notional_crypto=float("inf"),
        max_client_order_id_len=20,
        client_order_id_alnum_only=True,
        client_order_id_unique_forever=False,
    ),
}


@dataclass(frozen=True, slots=True)
class Instrument:
    """One tradable asset. `lot_size` is the quantity increment where fractions are allowed."""

    index: int
    symbol: str
    asset_class: AssetClass
    tick_size: float
    lot_size: float
    min_notional: float
    fractionable: bool

    def __post_init__(self) -> None:
        if self.index < 0:
            raise ValueError(f"instrument {self.symbol!r}: negative index {self.index}")
        if not self.symbol:
            raise ValueError("instrument symbol must not be empty")
        for name in ("tick_size", "lot_size"):
            value = getattr(self, name)
            if not value > 0.0:
                raise ValueError(f"instrument {self.symbol!r}: {name} must be > 0, got {value}")
        if self.min_notional < 0.0:
            raise ValueError(f"instrument {self.symbol!r}: min_notional must be >= 0")


class InstrumentRegistry:
    """Dense index <-> instrument, plus columnar views for vectorised code."""

    def __init__(self, instruments: Iterable[Instrument]) -> None:
        items = sorted(instruments, key=lambda i: i.index)
        for expected, inst in enumerate(items):
            if inst.index != expected:
                raise ValueError(
                    f"instrument indexes must be dense 0..n-1; {inst.symbol!r} has index "
                    f"{inst.index}, expected {expected}"
                )
        self._items: tuple[Instrument, ...] = tuple(items)
        self._by_symbol: dict[str, Instrument] = {}
        for inst in items:
            if inst.symbol in self._by_symbol:
                raise ValueError(f"duplicate instrument symbol {inst.symbol!r}")
            self._by_symbol[inst.symbol] = inst
        self.asset_class: npt.NDArray[np.uint8] = np.array(
            [i.asset_class for i in items], dtype=np.uint8
        )
        self.tick_size: npt.NDArray[np.float64] = np.array([i.tick_size for i in items])
        self.lot_size: npt.NDArray[np.float64] = np.array([i.lot_size for i in items])
        self.min_notional: npt.NDArray[np.float64] = np.array([i.min_notional for i in items])
        self.fractionable: npt.NDArray[np.bool_] = np.array(
            [i.fractionable for i in items], dtype=np.bool_
        )

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self._items)

    def __getitem__(self, index: int) -> Instrument:
        return self._items[index]

    def by_symbol(self, symbol: str) -> Instrument:
        try:
            return self._by_symbol[symbol]
        except KeyError:
            raise KeyError(f"unknown instrument symbol {symbol!r}") from None

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._by_symbol

    def indexes_of(self, asset_class: AssetClass) -> npt.NDArray[np.int64]:
        return np.flatnonzero(self.asset_class == asset_class)

    def symbols(self) -> Sequence[str]:
        return [i.symbol for i in self._items]

    def quantity_increment(self, venue: Venue) -> npt.NDArray[np.float64]:
        """Per-instrument quantity step at `venue`: whole shares where fractions are refused."""
        rules = VENUE_RULES[venue]
        whole = np.ones(len(self), dtype=np.float64)
        equity = self.asset_class == AssetClass.EQUITY
        fractional_ok = ~equity | (self.fractionable & rules.fractional_equities)
        return np.where(fractional_ok, self.lot_size, np.maximum(whole, self.lot_size))

    def venue_min_notional(self, venue: Venue) -> npt.NDArray[np.float64]:
        """Per-instrument minimum order value at `venue` (inf where the venue can't trade it)."""
        rules = VENUE_RULES[venue]
        out = np.empty(len(self), dtype=np.float64)
        for cls in AssetClass:
            mask = self.asset_class == cls
            floor = rules.min_notional(cls) if rules.trades(cls) else float("inf")
            out[mask] = np.maximum(self.min_notional[mask], floor)
        return out

    def tradable_at(self, venue: Venue) -> npt.NDArray[np.bool_]:
        rules = VENUE_RULES[venue]
        return np.array([rules.trades(AssetClass(c)) for c in self.asset_class], dtype=np.bool_)
