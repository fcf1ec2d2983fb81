"""Reference data in SQLite: instruments, clients, accounts, portfolios and subscriptions.

Functions take an open connection so the caller decides the transaction: a save replaces the
whole set in one transaction, a load reads one snapshot.
"""

from __future__ import annotations

import sqlite3

import numpy as np

from tickwise.model.clients import Account, ClientBook, Portfolio
from tickwise.model.ids import AccountId, ClientId, PortfolioId
from tickwise.model.instruments import AssetClass, Instrument, InstrumentRegistry, Venue
from tickwise.store.base import ClientUniverse


def write_instruments(conn: sqlite3.Connection, registry: InstrumentRegistry) -> None:
    rows = [
        (
            i.index,
            i.symbol,
            int(i.asset_class),
            i.tick_size,
            i.lot_size,
            i.min_notional,
            int(i.fractionable),
        )
        for i in registry
    ]
    conn.execute("DELETE FROM instruments")
    conn.executemany("INSERT INTO instruments VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


def read_instruments(conn: sqlite3.Connection) -> InstrumentRegistry:
    rows = conn.execute(
        "SELECT idx, symbol, asset_class, tick_size, lot_size, min_notional, fractionable "
        "FROM instruments ORDER BY idx"
    ).fetchall()
    return InstrumentRegistry(
        Instrument(
            index=r[0],
            symbol=r[1],
            asset_class=AssetClass(r[2]),
            tick_size=r[3],
            lot_size=r[4],
            min_notional=r[5],
            fractionable=bool(r[6]),
        )
        for r in rows
    )


def write_clients(conn: sqlite3.Connection, universe: ClientUniverse) -> None:
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
    for table in ("clients", "accounts", "portfolios", "portfolio_weights", "subscriptions"):
        conn.execute(f"DELETE FROM {table}")
    conn.executemany("INSERT INTO clients VALUES (?, ?, ?, ?, ?, ?)", clients)
    conn.executemany("INSERT INTO accounts VALUES (?, ?, ?)", accounts)
    conn.executemany(
        "INSERT INTO portfolios VALUES (?, ?, ?)",
        [(p.portfolio_id, p.name, int(p.asset_class)) for p in universe.portfolios],
    )
    conn.executemany("INSERT INTO portfolio_weights VALUES (?, ?, ?, ?)", weights)
    conn.executemany("INSERT INTO subscriptions VALUES (?, ?, ?)", subs)


def read_client_book(conn: sqlite3.Connection) -> ClientBook:
    clients = conn.execute(
        "SELECT client_id, venue, equity, max_order_notional, max_position_weight "
        "FROM clients ORDER BY client_id"
    ).fetchall()
    subs = conn.execute(
        "SELECT client_id, portfolio_id, allocation FROM subscriptions "
        "ORDER BY client_id, portfolio_id"
    ).fetchall()
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


def read_portfolios(conn: sqlite3.Connection) -> tuple[Portfolio, ...]:
    heads = conn.execute(
        "SELECT portfolio_id, name, asset_class FROM portfolios ORDER BY portfolio_id"
    ).fetchall()
    members: dict[int, list[tuple[int, float]]] = {int(h[0]): [] for h in heads}
    for pid, inst, w in conn.execute(
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


def read_clients(conn: sqlite3.Connection) -> ClientUniverse:
    book = read_client_book(conn)
    names = [r[0] for r in conn.execute("SELECT name FROM clients ORDER BY client_id")]
    accounts = tuple(
        Account(account_id=AccountId(a), client_id=ClientId(c), venue=Venue(v))
        for a, c, v in conn.execute(
            "SELECT account_id, client_id, venue FROM accounts ORDER BY client_id, account_id"
        )
    )
    return ClientUniverse(book, read_portfolios(conn), accounts, tuple(names))
