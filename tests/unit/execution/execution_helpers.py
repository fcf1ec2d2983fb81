"""Shared helpers for the execution tests: a small instrument registry."""

from __future__ import annotations

from tickwise.model.instruments import AssetClass, Instrument, InstrumentRegistry


def make_registry(stocks: int, crypto: int) -> InstrumentRegistry:
    """Stocks first (every tenth one not fractionable), then crypto pairs."""
    items = [
        Instrument(
            index=i,
            symbol=f"STK{i}",
            asset_class=AssetClass.EQUITY,
            tick_size=0.01,
            lot_size=1.0 if i % 10 == 0 else 1e-9,
            min_notional=1.0,
            fractionable=i % 10 != 0,
        )
        for i in range(stocks)
    ]
    items += [
        Instrument(
            index=stocks + j,
            symbol=f"C{j}/USD",
            asset_class=AssetClass.CRYPTO,
            tick_size=0.01,
            lot_size=1e-5,
            min_notional=5.0,
            fractionable=True,
        )
        for j in range(crypto)
    ]
    return InstrumentRegistry(items)
