"""The fill model of the backtester: when an order fills, at what price, for what fee.

- An order is born on the tick whose step changed the target weight and fills on the first
  later tick whose time is at least `latency_ms` after it: never on the tick that caused it.
- A buy pays the ask and a sell receives the bid prevailing at the fill tick (the half-spread
  comes from the quotes); an instrument with no quote seen yet (a trades-only tape, bars) pays
  `spread_bps / 2` around the fill tick's price instead.
- Fees are charged in bps of the traded notional, per venue and asset class (`FEES_BPS`); the
  instrument's venue is the default venue of its asset class unless one is named.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tickwise.backtest.series import BacktestInputError
from tickwise.model.instruments import AssetClass

# Taker fees in bps of notional, (equity, crypto), at each venue's entry tier. Alpaca and
# E*Trade charge no commission on stocks; Alpaca crypto starts at 25 bps taker, Binance spot
# at 10 bps. E*Trade trades no crypto (NaN: an error if asked).
FEES_BPS: dict[str, tuple[float, float]] = {
    "alpaca": (0.0, 25.0),
    "binance": (float("nan"), 10.0),
    "etrade": (0.0, float("nan")),
}
DEFAULT_VENUE = {AssetClass.EQUITY: "alpaca", AssetClass.CRYPTO: "binance"}


@dataclass(frozen=True, slots=True)
class FillModel:
    """Latency, fallback spread and fees of simulated fills (see the module docstring)."""

    latency_ms: float = 0.0
    spread_bps: float = 2.0
    venue: str = ""  # "" = each asset class's default venue
    fee_bps: float | None = None  # overrides the venue's fee table when given

    def __post_init__(self) -> None:
        if not (self.latency_ms >= 0.0 and np.isfinite(self.latency_ms)):
            raise BacktestInputError("latency_ms must be a finite number >= 0")
        if not (0.0 <= self.spread_bps < 10_000.0):
            raise BacktestInputError("spread_bps must be in [0, 10000)")
        if self.venue and self.venue not in FEES_BPS:
            raise BacktestInputError(
                f"unknown venue {self.venue!r} (known: {', '.join(sorted(FEES_BPS))})"
            )
        if self.fee_bps is not None and not (0.0 <= self.fee_bps < 10_000.0):
            raise BacktestInputError("fee_bps must be in [0, 10000)")

    @property
    def latency_ns(self) -> int:
        return round(self.latency_ms * 1e6)

    @property
    def half_spread(self) -> float:
        return self.spread_bps * 1e-4 / 2.0

    def fees(self, asset_class: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
        """Fee per unit of notional for each instrument (by asset class)."""
        if self.fee_bps is not None:
            return np.full(asset_class.shape, self.fee_bps * 1e-4)
        out = np.empty(asset_class.shape, np.float64)
        for cls in (AssetClass.EQUITY, AssetClass.CRYPTO):
            venue = self.venue or DEFAULT_VENUE[cls]
            bps = FEES_BPS[venue][int(cls)]
            mask = asset_class == cls
            if mask.any() and not np.isfinite(bps):
                raise BacktestInputError(f"venue {venue!r} does not trade {cls.name.lower()}")
            out[mask] = bps * 1e-4
        return out
