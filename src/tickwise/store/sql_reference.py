"""Reference data in SQL: instruments, clients, accounts, portfolios and subscriptions.

Functions take an open `Tx` so the caller decides the transaction: a save replaces the whole set
in one transaction (bulk-loaded: 30,000 clients and their subscriptions in one pass), a load
reads one snapshot.
"""

from __future__ import annotations

import numpy as np

from tickwise.model.clients import Account, ClientBook, Portfolio
from tickwise.model.ids import AccountId, ClientId, PortfolioId
from tickwise.model.instruments import AssetClass, Instrument, InstrumentRegistry, Venue
from tickwise.store.base import ClientUniverse
from tickwise.store.tx import Tx

_INSTRUMENTS = (
    "idx",
    "symbol",
    "asset_class",
    "tick_size",
    "lot_size",
    "min_notional",
    "fractionable",
)
_CLIENTS = ("client_id", "name", "venue", "equity", "max_order_notional", "max_position_weight")
_ACCOUNTS = ("account_id", "client_id", "venue")
_PORTFOLIOS = ("portfolio_id", "name", "asset_class")
_WEIGHTS = ("portfolio_id", "position", "instrument", "weight")
_SUBSCRIPTIONS = ("client_id", "portfolio_id", "allocation")
_CLIENT_TABLES = ("clients", "accounts", "portfolios", "portfolio_weights", "subscriptions")


def write_instruments(tx: Tx, registry: InstrumentRegistry) -> None:
    rows = [
        (
            i.index,
            i.symbol,
            int(i.asset_class),
            i.tick_size,
            i.lot_size,
            i.min_notional,
            bool(i.fractionable),
        )
        for i in registry
    ]
    tx.run("DELETE FROM instruments")
    tx.load("instruments", _INSTRUMENTS, rows)


def read_instruments(tx: Tx) -> InstrumentRegistry:
    rows = tx.rows(f"SELECT {', '.join(_INSTRUMENTS)} FROM instruments ORDER BY idx")
    return InstrumentRegistry(
        Instrument(
            index=int(r[0]),
            symbol=r[1],
            asset_class=AssetClass(r[2]),
            tick_size=float(r[3]),
            lot_size=float(r[4]),
            min_notional=float(r[5]),
            fractionable=bool(r[6]),
        )
        for r in rows
    )


def write_clients(tx: Tx, universe: ClientUniverse) -> None:
    book = universe.book
    clients = zip(
        book.client_id.tolist(),
        universe.names,
        book.venue.tolist(),
        book.equity.tolist(),
        book.max_order_notional.tolist(),
        book.max_position_weight.tolist(),
        strict=True,
    )
    accounts = [(str(a.account_id), int(a.client_id), int(a.venue)) for a in universe.accounts]
    portfolios = [(p.portfolio_id, p.name, int(p.asset_class)) for p in universe.portfolios]
    weights = [
        (p.portfolio_id, pos, inst, w)
        for p in universe.portfolios
        for pos, (inst, w) in enumerate(zip(p.instruments, p.weights, strict=True))
    ]
    subs = zip(
        book.sub_client.tolist(),
        book.sub_portfolio.tolist(),
        book.sub_allocation.tolist(),
        strict=True,
    )
    for table in _CLIENT_TABLES:
        tx.run(f"DELETE FROM {table}")
    tx.load("clients", _CLIENTS, clients)
    tx.load("accounts", _ACCOUNTS, accounts)
    tx.load("portfolios", _PORTFOLIOS, portfolios)
    tx.load("portfolio_weights", _WEIGHTS, weights)
    tx.load("subscriptions", _SUBSCRIPTIONS, subs)


def read_client_book(tx: Tx) -> ClientBook:
    clients = tx.rows(
        "SELECT client_id, venue, equity, max_order_notional, max_position_weight "
        "FROM clients ORDER BY client_id"
    )
    subs = tx.rows(
        f"SELECT {', '.join(_SUBSCRIPTIONS)} FROM subscriptions ORDER BY client_id, portfolio_id"
    )
    c = list(zip(*clients, strict=True)) or [()] * 5
    s = list(zip(*subs, strict=True)) or [()] * 3
    return ClientBook(
        client_id=np.array(c[0], dtype=np.int32),
        venue=np.array(c[1], dtype=np.uint8),
        equity=np.array(c[2], dtype=np.float64),
        max_order_notional=np.array(c[3], dtype=np.float64),
        max_position_weight=np.array(c[4], dtype=np.float64),
        sub_client=np.array(s[0], dtype=np.int32),
        sub_portfolio=np.array(s[1], dtype=np.int32),
        sub_allocation=np.array(s[2], dtype=np.float64),
    )


def read_portfolios(tx: Tx) -> tuple[Portfolio, ...]:
    heads = tx.rows(f"SELECT {', '.join(_PORTFOLIOS)} FROM portfolios ORDER BY portfolio_id")
    members: dict[int, list[tuple[int, float]]] = {int(h[0]): [] for h in heads}
    for pid, inst, w in tx.rows(
        "SELECT portfolio_id, instrument, weight FROM portfolio_weights "
        "ORDER BY portfolio_id, position"
    ):
        members[int(pid)].append((int(inst), float(w)))
    return tuple(
        Portfolio(
            portfolio_id=PortfolioId(int(pid)),
            name=name,
            asset_class=AssetClass(cls),
            instruments=tuple(i for i, _ in members[int(pid)]),
            weights=tuple(w for _, w in members[int(pid)]),
        )
        for pid, name, cls in heads
    )


def read_clients(tx: Tx) -> ClientUniverse:
    book = read_client_book(tx)
    names = [r[0] for r in tx.rows("SELECT name FROM clients ORDER BY client_id")]
    accounts = tuple(
        Account(account_id=AccountId(a), client_id=ClientId(int(c)), venue=Venue(v))
        for a, c, v in tx.rows(
            f"SELECT {', '.join(_ACCOUNTS)} FROM accounts ORDER BY client_id, account_id"
        )
    )
    return ClientUniverse(book, read_portfolios(tx), accounts, tuple(names))
