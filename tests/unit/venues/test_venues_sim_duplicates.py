"""Each venue's client order id rule: a repeated id never trades where the venue forbids it."""

from __future__ import annotations

import asyncio

import pytest
from venue_orders import AAPL, BTC, MS, T0, OrderFactory

from tickwise.model.instruments import InstrumentRegistry, Venue
from tickwise.model.orders import OrderState, RejectReason
from tickwise.venues.sim import SimVenue, SimVenueConfig

FILLED, REJECTED = OrderState.FILLED, OrderState.REJECTED
INSTRUMENT = {Venue.ALPACA: AAPL, Venue.BINANCE: BTC, Venue.ETRADE: AAPL}


def venue_and_order(
    registry: InstrumentRegistry, make_orders: OrderFactory, venue: Venue
) -> tuple[SimVenue, OrderFactory]:
    sim = SimVenue(venue, registry, [1, 2], [1e6, 1e6], SimVenueConfig(jitter_ms=0.0))

    def order(client: int = 1, ts: int = T0):  # type: ignore[no-untyped-def]
        return make_orders(
            [client], [INSTRUMENT[venue]], [1], [1.0], [100.0], venue=venue, ts_sent=ts
        )

    return sim, order


@pytest.mark.parametrize("venue", list(Venue))
def test_a_repeat_while_the_first_is_open_is_refused_everywhere(
    registry: InstrumentRegistry, make_orders: OrderFactory, venue: Venue
) -> None:
    sim, order = venue_and_order(registry, make_orders, venue)
    sim.accept(order())
    sim.accept(order())
    out = sim.poll(T0 + 100 * MS)
    assert out.state.tolist() == [FILLED, REJECTED]
    assert out.reason[1] == RejectReason.DUPLICATE_CLIENT_ORDER_ID
    assert asyncio.run(sim.positions()).of_client(1) == {INSTRUMENT[venue]: 1.0}
    status = asyncio.run(sim.query(out.client_order_id[0].decode()))
    assert status is not None and status.state is FILLED  # the original, not the refused repeat


@pytest.mark.parametrize(
    ("venue", "second_outcome"),
    [(Venue.ALPACA, REJECTED), (Venue.BINANCE, FILLED), (Venue.ETRADE, REJECTED)],
)
def test_reusing_an_id_after_the_order_is_done_depends_on_the_venue(
    registry: InstrumentRegistry,
    make_orders: OrderFactory,
    venue: Venue,
    second_outcome: OrderState,
) -> None:
    sim, order = venue_and_order(registry, make_orders, venue)
    sim.accept(order())
    assert sim.poll(T0 + 100 * MS).state.tolist() == [FILLED]
    later = T0 + 1000 * MS
    sim.accept(order(ts=later))
    assert sim.poll(later + 100 * MS).state.tolist() == [second_outcome]
    expected = 2.0 if second_outcome is FILLED else 1.0
    assert asyncio.run(sim.positions()).of_client(1) == {INSTRUMENT[venue]: expected}


@pytest.mark.parametrize("venue", list(Venue))
def test_ids_are_unique_per_account_not_across_accounts(
    registry: InstrumentRegistry, make_orders: OrderFactory, venue: Venue
) -> None:
    sim, order = venue_and_order(registry, make_orders, venue)
    first, second = order(client=1), order(client=2)
    second.client_order_id[:] = first.client_order_id
    sim.accept(first)
    sim.accept(second)
    assert sim.poll(T0 + 100 * MS).state.tolist() == [FILLED, FILLED]


def test_an_order_refused_on_receipt_does_not_use_up_its_id(
    registry: InstrumentRegistry, make_orders: OrderFactory
) -> None:
    sim = SimVenue(Venue.ALPACA, registry, [1], [1e6], SimVenueConfig(jitter_ms=0.0))
    tiny = make_orders([1], [AAPL], [1], [0.001], [100.0])
    sim.accept(tiny)
    assert sim.poll(T0 + 100 * MS).reason.tolist() == [RejectReason.BELOW_MIN_NOTIONAL]
    fixed = make_orders([1], [AAPL], [1], [1.0], [100.0], ts_sent=T0 + 500 * MS)
    sim.accept(fixed)
    assert sim.poll(T0 + 600 * MS).state.tolist() == [FILLED]
