"""Synthetic clients: the distribution WORKLOAD.md asks for, determinism, tiny registries."""

from __future__ import annotations

import re

import numpy as np
import pytest
from store_helpers import make_registry

from tickwise.model.instruments import VENUE_RULES, AssetClass, InstrumentRegistry, Venue
from tickwise.store import (
    ClientUniverse,
    Store,
    core_instruments,
    generate_clients,
    seed_clients,
)


@pytest.fixture(scope="module")
def dev_universe(dev_registry: InstrumentRegistry) -> ClientUniverse:
    return generate_clients(dev_registry, count=30_000, seed=11)


def test_venue_mix_follows_the_workload(dev_universe: ClientUniverse) -> None:
    shares = np.bincount(dev_universe.book.venue, minlength=3) / len(dev_universe)
    assert shares[Venue.ALPACA] == pytest.approx(0.55, abs=0.005)
    assert shares[Venue.ETRADE] == pytest.approx(0.20, abs=0.005)
    assert shares[Venue.BINANCE] == pytest.approx(0.25, abs=0.005)


def test_equity_is_log_normal_around_25k_within_bounds(dev_universe: ClientUniverse) -> None:
    equity = dev_universe.book.equity
    assert np.median(equity) == pytest.approx(25_000, rel=0.05)
    assert equity.min() >= 1_000 and equity.max() <= 5_000_000
    assert np.percentile(equity, 90) > 2.5 * np.median(equity)  # a long right tail
    np.testing.assert_allclose(dev_universe.book.max_order_notional, 0.25 * equity, atol=0.005)
    assert (dev_universe.book.max_position_weight == 0.20).all()


def test_eight_portfolios_sized_as_the_workload_says(dev_universe: ClientUniverse) -> None:
    equity = [p for p in dev_universe.portfolios if p.asset_class is AssetClass.EQUITY]
    crypto = [p for p in dev_universe.portfolios if p.asset_class is AssetClass.CRYPTO]
    assert len(equity) == 6 and len(crypto) == 2
    assert all(100 <= len(p.instruments) <= 300 for p in equity)
    assert all(50 <= len(p.instruments) <= 150 for p in crypto)
    for p in dev_universe.portfolios:
        assert sum(p.weights) == pytest.approx(1.0)
        assert list(p.weights) == sorted(p.weights, reverse=True)  # cap-like decay


def test_each_client_follows_one_to_three_portfolios_it_can_trade(
    dev_universe: ClientUniverse,
) -> None:
    book = dev_universe.book
    per_client = np.bincount(book.sub_client, minlength=len(book))
    assert per_client.min() == 1 and per_client.max() == 3
    assert set(np.unique(per_client[book.venue == Venue.BINANCE])) <= {1, 2}
    total = np.bincount(book.sub_client, weights=book.sub_allocation, minlength=len(book))
    assert (book.sub_allocation > 0).all() and total.max() <= 1.0 + 1e-12
    asset_class = {int(p.portfolio_id): p.asset_class for p in dev_universe.portfolios}
    for client, portfolio in zip(book.sub_client, book.sub_portfolio, strict=True):
        venue = Venue(int(book.venue[client]))
        assert VENUE_RULES[venue].trades(asset_class[int(portfolio)])
    alpaca_crypto = [
        c
        for c, p in zip(book.sub_client, book.sub_portfolio, strict=True)
        if book.venue[c] == Venue.ALPACA and asset_class[int(p)] is AssetClass.CRYPTO
    ]
    assert alpaca_crypto, "Alpaca clients may hold crypto portfolios too"


def test_account_ids_look_like_each_venues_own(dev_universe: ClientUniverse) -> None:
    patterns = {
        Venue.ALPACA: r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        Venue.BINANCE: r"[a-z0-9]{10}_virtual@[0-9a-f]{8}noemail\.com",
        Venue.ETRADE: r"[A-Za-z0-9_-]{22}",
    }
    for row, account in enumerate(dev_universe.accounts[:3000]):
        assert account.client_id == dev_universe.book.client_id[row]
        assert account.venue == dev_universe.book.venue[row]
        assert re.fullmatch(patterns[account.venue], account.account_id), account
    assert len({a.account_id for a in dev_universe.accounts}) == len(dev_universe)


def test_the_same_seed_gives_the_same_universe(tiny_registry: InstrumentRegistry) -> None:
    a = generate_clients(tiny_registry, count=500, seed=5)
    b = generate_clients(tiny_registry, count=500, seed=5)
    c = generate_clients(tiny_registry, count=500, seed=6)
    np.testing.assert_array_equal(a.book.equity, b.book.equity)
    np.testing.assert_array_equal(a.book.sub_portfolio, b.book.sub_portfolio)
    assert a.accounts == b.accounts and a.portfolios == b.portfolios and a.names == b.names
    assert not np.array_equal(a.book.equity, c.book.equity)


def test_portfolios_shrink_to_a_tiny_registry(tiny_registry: InstrumentRegistry) -> None:
    universe = generate_clients(tiny_registry, count=1_000, seed=11)
    sizes = {p.asset_class: len(p.instruments) for p in universe.portfolios}
    assert sizes == {AssetClass.EQUITY: 43, AssetClass.CRYPTO: 7}
    assert np.bincount(universe.book.sub_client, minlength=1000).min() >= 1


def test_a_registry_without_crypto_leaves_binance_clients_unsubscribed() -> None:
    universe = generate_clients(make_registry(30, 0), count=200, seed=1)
    assert all(p.asset_class is AssetClass.EQUITY for p in universe.portfolios)
    binance = np.flatnonzero(universe.book.venue == Venue.BINANCE)
    assert not np.isin(universe.book.sub_client, binance).any()


def test_all_follow_portfolio_reaches_every_client_through_core_instruments(
    tiny_registry: InstrumentRegistry,
) -> None:
    universe = generate_clients(tiny_registry, count=1_000, seed=11, all_follow_portfolio=True)
    cores = [p for p in universe.portfolios if p.name.startswith("Core ")]
    assert [p.asset_class for p in cores] == [AssetClass.EQUITY, AssetClass.CRYPTO]
    book = universe.book
    followers = set(book.sub_client[np.isin(book.sub_portfolio, [p.portfolio_id for p in cores])])
    assert followers == set(book.client_id.tolist())
    total = np.bincount(book.sub_client, weights=book.sub_allocation)
    assert total.max() <= 1.0 + 1e-12
    equity_head, crypto_head = core_instruments(universe)
    reaches = {equity_head: {Venue.ALPACA, Venue.ETRADE}, crypto_head: {Venue.BINANCE}}
    for head, venues in reaches.items():
        (core,) = [p for p in cores if head in p.instruments]
        follows = book.sub_client[book.sub_portfolio == core.portfolio_id]
        expected = book.client_id[np.isin(book.venue, [int(v) for v in venues])]
        np.testing.assert_array_equal(np.sort(follows), expected)


def test_seed_clients_saves_clients_and_instruments(
    store: Store, tiny_registry: InstrumentRegistry
) -> None:
    universe = seed_clients(store, tiny_registry, count=1_000, seed=11)
    assert store.client_count() == 1_000
    assert list(store.load_instruments()) == list(tiny_registry)
    assert store.load_portfolios() == universe.portfolios


def test_client_counts_out_of_range_are_refused(tiny_registry: InstrumentRegistry) -> None:
    with pytest.raises(ValueError):
        generate_clients(tiny_registry, count=0)
    with pytest.raises(ValueError):
        generate_clients(tiny_registry, count=36**4 + 1)
