"""The universe: deterministic, unique symbols, sensible increments and prices."""

from __future__ import annotations

import re

import numpy as np

from tickwise.data.universe import build_universe, universe_prices
from tickwise.model.instruments import AssetClass


def test_same_arguments_build_the_same_universe() -> None:
    a, b = build_universe(), build_universe()
    assert a.symbols() == b.symbols()
    assert np.array_equal(a.lot_size, b.lot_size)
    assert np.array_equal(universe_prices(a, 7), universe_prices(b, 7))


def test_stocks_come_first_then_crypto_with_unique_symbols() -> None:
    reg = build_universe(1000, 150)
    assert len(reg) == 1150
    assert (reg.asset_class[:1000] == AssetClass.EQUITY).all()
    assert (reg.asset_class[1000:] == AssetClass.CRYPTO).all()
    assert len(set(reg.symbols())) == 1150
    assert reg[0].symbol == "SPY" and reg[1000].symbol == "BTC/USD"
    assert {"AAPL", "BAC", "IBM", "AIG"} <= set(reg.symbols())


def test_stock_symbols_are_uppercase_tickers_and_pairs_are_base_over_usd() -> None:
    reg = build_universe()
    for inst in reg:
        if inst.asset_class is AssetClass.EQUITY:
            assert re.fullmatch(r"[A-Z]{1,5}", inst.symbol), inst.symbol
        else:
            assert re.fullmatch(r"[A-Z]{2,5}/USD", inst.symbol), inst.symbol


def test_stock_increments_and_fractionable_share() -> None:
    reg = build_universe()
    stocks = reg.indexes_of(AssetClass.EQUITY)
    assert np.all(reg.tick_size[stocks] == 0.01)
    assert np.all(reg.min_notional[stocks] == 1.0)
    frac = reg.fractionable[stocks]
    assert 0.85 < frac.mean() < 0.95
    assert np.all(reg.lot_size[stocks][frac] == 1e-9)
    assert np.all(reg.lot_size[stocks][~frac] == 1.0)


def test_crypto_increments_follow_the_price_level() -> None:
    reg = build_universe()
    prices = universe_prices(reg)
    btc, eth = reg.by_symbol("BTC/USD"), reg.by_symbol("ETH/USD")
    assert btc.lot_size == 1e-5 and btc.tick_size == 0.01
    assert prices[btc.index] == 60_000.0
    crypto = reg.indexes_of(AssetClass.CRYPTO)
    assert np.all((reg.lot_size[crypto] >= 1e-5) & (reg.lot_size[crypto] <= 0.01))
    assert np.all(reg.min_notional[crypto] == 5.0) and reg.fractionable[crypto].all()
    # Five significant digits of tick at most: the tick is a tiny fraction of the price.
    assert np.all(reg.tick_size[crypto] / prices[crypto] <= 2e-4)
    assert eth.tick_size <= 0.01


def test_prices_are_in_range_and_on_the_tick_grid() -> None:
    reg = build_universe()
    prices = universe_prices(reg)
    stocks = reg.indexes_of(AssetClass.EQUITY)
    crypto = reg.indexes_of(AssetClass.CRYPTO)
    assert prices[stocks].min() >= 5.0 and prices[stocks].max() <= 700.0
    assert prices[crypto].min() >= 1e-5 and prices[crypto].max() <= 60_000.0
    units = prices / reg.tick_size
    assert np.allclose(units, np.round(units))
    assert prices[reg.by_symbol("AAPL").index] == 190.0


def test_a_small_universe_is_a_prefix_of_the_famous_names() -> None:
    reg = build_universe(40, 10, seed=3)
    assert len(reg) == 50
    assert reg.symbols()[:3] == ["SPY", "QQQ", "AAPL"]
    assert reg[40].symbol == "BTC/USD"
