"""Shared helpers for the execution tests: a small registry, client books, portfolios,
signal and execution batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tickwise.execution.allocator import Allocator, AllocatorConfig
from tickwise.model.clients import ClientBook, Portfolio
from tickwise.model.ids import PortfolioId, signal_ids
from tickwise.model.instruments import AssetClass, Instrument, InstrumentRegistry, Venue
from tickwise.model.orders import ExecutionBatch, OrderBatch, OrderState
from tickwise.model.signals import SignalBatch


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


T0 = 1_700_000_000_000_000_000
REGISTRY = make_registry(10, 2)  # stocks 0..9 (0 whole shares only), crypto 10, 11


def make_book(
    venues: Sequence[Venue],
    equity: Sequence[float],
    subs: Sequence[tuple[int, int, float]],
    max_position_weight: float = 1.0,
    max_order_fraction: float = 1.0,
) -> ClientBook:
    eq = np.array(equity, dtype=np.float64)
    return ClientBook(
        client_id=np.arange(len(venues), dtype=np.int32),
        venue=np.array([int(v) for v in venues], dtype=np.uint8),
        equity=eq,
        max_order_notional=eq * max_order_fraction,
        max_position_weight=np.full(len(venues), max_position_weight),
        sub_client=np.array([s[0] for s in subs], dtype=np.int32),
        sub_portfolio=np.array([s[1] for s in subs], dtype=np.int32),
        sub_allocation=np.array([s[2] for s in subs], dtype=np.float64),
    )


def portfolio(
    pid: int, members: dict[int, float], cls: AssetClass = AssetClass.EQUITY
) -> Portfolio:
    return Portfolio(PortfolioId(pid), f"p{pid}", cls, tuple(members), tuple(members.values()))


def signals(
    instruments: Sequence[int], weights: Sequence[float], prices: Sequence[float], micros: int
) -> SignalBatch:
    inst = np.array(instruments, dtype=np.uint32)
    ts = np.full(inst.size, T0 + micros * 1000, dtype=np.int64)
    price = np.array(prices, dtype=np.float64)
    return SignalBatch(
        signal_id=signal_ids(inst, ts),
        instrument=inst,
        target_weight=np.array(weights, dtype=np.float64),
        price=price,
        bid=price * 0.999,
        ask=price * 1.001,
        ts_event=ts,
        ts_recv=ts + 10,
        ts_signal=ts + 20,
    )


def outcomes(
    orders: OrderBatch,
    state: OrderState,
    fill_qty: np.ndarray | None = None,
    fill_price: float | None = None,
    fee: float = 0.0,
) -> ExecutionBatch:
    return ExecutionBatch.answering(
        orders,
        state,
        fill_qty=0.0 if fill_qty is None else fill_qty,
        fill_price=orders.price.copy() if fill_price is None else fill_price,
        fee=fee,
        ts_sent=orders.ts_alloc + 1,
        ts_ack=orders.ts_alloc + 2,
    )


def one_stock_allocator(
    equity: float = 10_000.0, venue: Venue = Venue.ALPACA, **config: Any
) -> Allocator:
    """One client, 50% of equity in a portfolio holding stock 1 at weight 0.2 (coef 0.1)."""
    book = make_book([venue], [equity], [(0, 0, 0.5)])
    return Allocator(book, [portfolio(0, {1: 0.2, 2: 0.8})], REGISTRY, AllocatorConfig(**config))
