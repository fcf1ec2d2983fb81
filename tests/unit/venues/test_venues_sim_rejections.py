"""The simulator refuses what each real venue would, with the normalised reason and its own text."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from venue_orders import AAPL, BRK, BTC, MS, T0, OrderFactory

from tickwise.model.instruments import InstrumentRegistry, Venue
from tickwise.model.orders import OrderState, RejectReason
from tickwise.venues.sim import SimVenue, SimVenueConfig

R = RejectReason
UNLISTED = 99

# (venue, client cash, order: instrument, side, qty, price, expected reason, venue text fragment)
CASES = [
    (Venue.ALPACA, 1e4, (UNLISTED, 1, 1.0, 10.0), R.UNKNOWN_SYMBOL, "asset not found"),
    (Venue.ALPACA, 1e4, (BRK, 1, 1.5, 10.0), R.INVALID_QUANTITY_INCREMENT, "not fractionable"),
    (Venue.ALPACA, 1e4, (AAPL, 1, 0.001, 100.0), R.BELOW_MIN_NOTIONAL, "minimal amount"),
    (Venue.ALPACA, 50.0, (AAPL, 1, 1.0, 100.0), R.INSUFFICIENT_BUYING_POWER, "buying power"),
    (Venue.ALPACA, 1e4, (AAPL, -1, 1.0, 100.0), R.INSUFFICIENT_POSITION, "insufficient qty"),
    (Venue.BINANCE, 1e4, (AAPL, 1, 1.0, 100.0), R.UNKNOWN_SYMBOL, "Invalid symbol"),
    (Venue.BINANCE, 1e4, (BTC, 1, 0.000015, 60_000.0), R.INVALID_QUANTITY_INCREMENT, "LOT_SIZE"),
    (Venue.BINANCE, 1e4, (BTC, 1, 0.00005, 60_000.0), R.BELOW_MIN_NOTIONAL, "NOTIONAL"),
    (Venue.BINANCE, 1e3, (BTC, 1, 0.1, 60_000.0), R.INSUFFICIENT_BUYING_POWER, "balance"),
    (Venue.BINANCE, 1e4, (BTC, -1, 0.1, 60_000.0), R.INSUFFICIENT_POSITION, "balance"),
    (Venue.ETRADE, 1e4, (BTC, 1, 0.1, 60_000.0), R.UNKNOWN_SYMBOL, "symbol"),
    (Venue.ETRADE, 1e4, (AAPL, 1, 1.5, 100.0), R.INVALID_QUANTITY_INCREMENT, "whole number"),
    (Venue.ETRADE, 1e4, (AAPL, 1, 1.0, 0.5), R.BELOW_MIN_NOTIONAL, "minimum"),
    (Venue.ETRADE, 99.0, (AAPL, 1, 1.0, 100.0), R.INSUFFICIENT_BUYING_POWER, "buying power"),
    (Venue.ETRADE, 1e4, (AAPL, -1, 1.0, 100.0), R.INSUFFICIENT_POSITION, "enough shares"),
]


@pytest.mark.parametrize(
    ("venue", "cash", "order", "reason", "text"),
    CASES,
    ids=[f"{c[0].label}-{c[3].name.lower()}" for c in CASES],
)
def test_venue_refuses_the_order(
    registry: InstrumentRegistry,
    make_orders: OrderFactory,
    venue: Venue,
    cash: float,
    order: tuple[int, int, float, float],
    reason: RejectReason,
    text: str,
) -> None:
    sim = SimVenue(venue, registry, [1], [cash], SimVenueConfig(jitter_ms=0.0))
    inst, side, qty, price = order
    orders = make_orders([1], [inst], [side], [qty], [price], venue=venue)
    asyncio.run(sim.submit(orders))
    out = sim.poll(T0 + 100 * MS)
    assert out.state.tolist() == [OrderState.REJECTED]
    assert out.reason.tolist() == [reason]
    assert out.fill_qty.tolist() == [0.0]
    assert text in sim.venue_message(reason)
    assert sim.reject_counts == {reason: 1}
    status = asyncio.run(sim.query(orders.client_order_id[0].decode()))
    assert status is not None and status.reason is reason and text in status.venue_message
    assert len(asyncio.run(sim.positions())) == 0
    assert asyncio.run(sim.balances()).of(1) == cash


def test_buying_power_is_spent_in_arrival_order(
    registry: InstrumentRegistry, make_orders: OrderFactory
) -> None:
    sim = SimVenue(Venue.ALPACA, registry, [1], [150.0], SimVenueConfig(jitter_ms=0.0))
    # Both fit alone; only the first fits after it, and the third (cheap) still fits after that.
    orders = make_orders(
        [1, 1, 1], [AAPL] * 3, [1] * 3, [1.0, 1.0, 0.2], [100.0] * 3, signal=[1, 2, 3]
    )
    sim.accept(orders)
    out = sim.poll(T0 + 100 * MS)
    assert out.state.tolist() == [OrderState.FILLED, OrderState.REJECTED, OrderState.FILLED]
    assert out.reason[1] == R.INSUFFICIENT_BUYING_POWER
    assert asyncio.run(sim.positions()).of_client(1) == {AAPL: pytest.approx(1.2)}


def test_a_sell_may_use_a_position_bought_earlier_in_the_same_batch(
    registry: InstrumentRegistry, make_orders: OrderFactory
) -> None:
    sim = SimVenue(Venue.ETRADE, registry, [1], [1_000.0], SimVenueConfig(jitter_ms=0.0))
    sim.accept(
        make_orders([1, 1], [AAPL, AAPL], [1, -1], [3.0, 3.0], [100.0, 100.0], signal=[1, 2])
    )
    out = sim.poll(T0 + 100 * MS)
    assert (out.state == OrderState.FILLED).all()
    assert len(asyncio.run(sim.positions())) == 0


def test_orders_for_accounts_elsewhere_and_malformed_orders_are_venue_errors(
    registry: InstrumentRegistry, make_orders: OrderFactory
) -> None:
    sim = SimVenue(Venue.ALPACA, registry, [1], [1e4], SimVenueConfig(jitter_ms=0.0))
    orders = make_orders(
        [2, 1, 1], [AAPL] * 3, [1, 1, 1], [1.0, 1.0, 1.0], [100.0, np.nan, 100.0], signal=[1, 2, 3]
    )
    orders.client_order_id[2] = b"bad id with spaces!"[:18]
    etrade = SimVenue(Venue.ETRADE, registry, [1], [1e4], SimVenueConfig(jitter_ms=0.0))
    etrade.accept(orders.take(np.array([2])))
    sim.accept(orders.take(np.array([0, 1])))
    assert sim.poll(T0 + 100 * MS).reason.tolist() == [R.VENUE_ERROR, R.VENUE_ERROR]
    assert etrade.poll(T0 + 100 * MS).reason.tolist() == [R.VENUE_ERROR]
