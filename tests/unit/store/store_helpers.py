"""Shared helpers for the store tests: the back end under test, registries, orders, executions."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg

from tickwise.model.ids import client_order_ids
from tickwise.model.instruments import AssetClass, Instrument, InstrumentRegistry
from tickwise.model.orders import ExecutionBatch, OrderBatch, OrderState, RejectReason
from tickwise.store.base import Store
from tickwise.store.migrations import Migration, statements
from tickwise.store.sqlite import executions_path
from tickwise.store.sqlite_schema import EXECUTIONS_SCHEMA

T0 = 1_700_000_000_000_000_000

# A constraint a write breaks surfaces as the engine's own integrity error.
INTEGRITY_ERRORS: tuple[type[Exception], ...] = (sqlite3.IntegrityError, psycopg.IntegrityError)


@dataclass
class Backend:
    """One back end with one empty database for one test.

    `open()` opens (and migrates) a store on that database, as often as a test likes; `execute`
    runs raw SQL on it outside any store, the way an older release or an operator would.
    """

    name: str
    opener: Callable[[], Store]
    execute: Callable[[str], list[tuple[Any, ...]]]
    migrations: tuple[Migration, ...]
    opened: list[Store] = field(default_factory=list)

    def open(self) -> Store:
        store = self.opener()
        self.opened.append(store)
        return store

    def run_script(self, script: str) -> None:
        for statement in statements(script):
            self.execute(statement)

    def close_all(self) -> None:
        for store in self.opened:
            store.close()


def sqlite_executor(path: str) -> Callable[[str], list[tuple[Any, ...]]]:
    """Raw SQL on a SQLite store with its executions' file attached, as the store reads it."""

    def execute(statement: str) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute(f"ATTACH DATABASE ? AS {EXECUTIONS_SCHEMA}", (executions_path(path),))
            return conn.execute(statement).fetchall()
        finally:
            conn.close()

    return execute


def postgres_executor(url: str) -> Callable[[str], list[tuple[Any, ...]]]:
    def execute(statement: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(url, autocommit=True) as conn:
            cursor = conn.execute(statement.encode())
            return cursor.fetchall() if cursor.description is not None else []

    return execute


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


def make_orders(signal: int, clients: list[int], side: int = 1, qty: float = 2.0) -> OrderBatch:
    """One order per client for `signal`, on instrument 3 at 100."""
    n = len(clients)
    ts = np.full(n, T0, np.int64)
    return OrderBatch(
        client_order_id=client_order_ids(np.full(n, signal), clients),
        signal_id=np.full(n, signal, np.int64),
        client=np.array(clients, np.int32),
        venue=np.zeros(n, np.uint8),
        instrument=np.full(n, 3, np.uint32),
        side=np.full(n, side, np.int8),
        qty=np.full(n, qty),
        price=np.full(n, 100.0),
        ts_event=ts,
        ts_recv=ts + 1,
        ts_signal=ts + 2,
        ts_alloc=ts + 3,
        ts_journal=ts + 4,
        ts_sent=np.zeros(n, np.int64),
    )


def make_execs(
    orders: OrderBatch,
    state: OrderState,
    fill_qty: float = 0.0,
    fill_price: float = 0.0,
    reason: RejectReason = RejectReason.NONE,
) -> ExecutionBatch:
    """The same outcome for every order of `orders`."""
    return ExecutionBatch.answering(
        orders,
        state,
        reason=reason,
        fill_qty=fill_qty,
        fill_price=fill_price,
        fee=0.01 if fill_qty else 0.0,
        ts_sent=orders.ts_alloc + 10,
        ts_ack=orders.ts_alloc + 20,
    )
