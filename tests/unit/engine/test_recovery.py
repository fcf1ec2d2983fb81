"""Settling journaled orders with the venue by client order id (no Ray: the venue simulator)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tickwise.engine.recovery import OUTCOMES, resolve_orders
from tickwise.model.ids import ClientOrderId, client_order_ids
from tickwise.model.instruments import AssetClass, Instrument, InstrumentRegistry, Venue
from tickwise.model.orders import OrderBatch, OrderState, RejectReason
from tickwise.model.positions import PositionBook
from tickwise.venues.base import OrderStatus, VenueError
from tickwise.venues.sim import SimVenue, SimVenueConfig

T0 = 1_700_000_000_000_000_000
S = 1_000_000_000


def _registry() -> InstrumentRegistry:
    return InstrumentRegistry(
        [Instrument(0, "AAPL", AssetClass.EQUITY, 0.01, 1e-6, 0.0, fractionable=True)]
    )


def _orders(signals: list[int], clients: list[int], ts_event: int, qty: float = 1.0) -> OrderBatch:
    n = len(clients)
    ts = np.full(n, ts_event, np.int64)
    return OrderBatch(
        client_order_id=client_order_ids(signals, clients),
        signal_id=np.asarray(signals, np.int64),
        client=np.asarray(clients, np.int32),
        venue=np.full(n, Venue.ALPACA, np.uint8),
        instrument=np.zeros(n, np.uint32),
        side=np.ones(n, np.int8),
        qty=np.full(n, qty),
        price=np.full(n, 100.0),
        ts_event=ts,
        ts_recv=ts,
        ts_signal=ts,
        ts_alloc=ts,
        ts_journal=ts,
        ts_sent=ts,
    )


@pytest.fixture
def venue() -> SimVenue:
    return SimVenue(
        Venue.ALPACA,
        _registry(),
        [1, 2, 3],
        [1e6, 1e6, 1e6],
        SimVenueConfig(ack_delay_ms=1.0, jitter_ms=0.0),
    )


def test_known_orders_are_adopted_fresh_unseen_resent_stale_unseen_expired(
    venue: SimVenue,
) -> None:
    landed = _orders([10, 11], [1, 2], T0)
    asyncio.run(venue.submit(landed))
    answered = venue.poll(T0 + S)
    assert (answered.state == OrderState.FILLED).all()
    fresh = _orders([20], [3], T0 + 2 * S)
    stale = _orders([5], [3], T0 - 60 * S)
    ask = OrderBatch.concat([landed, fresh, stale])

    res = asyncio.run(resolve_orders(venue, ask, fresh_after_ns=T0, now_ns=T0 + 3 * S))

    assert res.counts() == dict(zip(OUTCOMES, [2, 1, 1, 0], strict=True))
    assert sorted(res.adopted.client_order_id.tolist()) == sorted(landed.client_order_id.tolist())
    assert (res.adopted.state == OrderState.FILLED).all()
    # The venue's own fill is adopted: same quantity, price and fee it answered live.
    by_id = {bytes(c): i for i, c in enumerate(answered.client_order_id)}
    for row, coid in enumerate(res.adopted.client_order_id):
        live = by_id[bytes(coid)]
        assert res.adopted.fill_qty[row] == answered.fill_qty[live]
        assert res.adopted.fill_price[row] == pytest.approx(answered.fill_price[live])
        assert res.adopted.fee[row] == pytest.approx(answered.fee[live])
    assert res.resend.client_order_id.tolist() == fresh.client_order_id.tolist()
    assert res.expired.client_order_id.tolist() == stale.client_order_id.tolist()
    assert (res.expired.state == OrderState.EXPIRED).all()
    assert (res.expired.fill_qty == 0).all()
    assert (res.adopted.ts_ack == T0 + 3 * S).all()


def test_an_order_still_working_is_adopted_as_acked_without_a_fill(venue: SimVenue) -> None:
    working = _orders([30], [1], T0)
    asyncio.run(venue.submit(working))  # not polled: still in flight at the venue
    res = asyncio.run(resolve_orders(venue, working, fresh_after_ns=T0, now_ns=T0))
    assert res.counts()["adopted"] == 1
    assert res.adopted.state.tolist() == [OrderState.ACKED]
    assert res.adopted.fill_qty.tolist() == [0.0]


class _FlakyVenue:
    """A venue whose look-ups fail for some ids (a lost connection, a venue error)."""

    venue = Venue.ALPACA

    def __init__(self, inner: SimVenue, failing: set[str]) -> None:
        self.inner = inner
        self.failing = failing

    async def query(self, client_order_id: ClientOrderId) -> OrderStatus | None:
        if client_order_id in self.failing:
            if client_order_id.endswith("1"):
                raise ConnectionResetError("connection reset by peer")
            raise VenueError(Venue.ALPACA, 500, "internal error", retryable=True)
        return await self.inner.query(client_order_id)

    async def positions(self) -> PositionBook:
        return await self.inner.positions()


def test_a_failed_look_up_leaves_the_order_unresolved_never_guessed(venue: SimVenue) -> None:
    ask = _orders([40, 41, 42], [1, 2, 3], T0)
    asyncio.run(venue.submit(ask.take(np.array([0]))))
    venue.poll(T0 + S)
    failing = {bytes(c).decode() for c in ask.client_order_id[1:]}
    flaky = _FlakyVenue(venue, failing)
    res = asyncio.run(resolve_orders(flaky, ask, fresh_after_ns=T0, now_ns=T0))  # type: ignore[arg-type]
    assert res.counts() == dict(zip(OUTCOMES, [1, 0, 0, 2], strict=True))
    assert sorted(res.unresolved.client_order_id.tolist()) == sorted(ask.client_order_id[1:])


def test_a_rejected_order_is_adopted_with_the_venues_reason(venue: SimVenue) -> None:
    too_big = _orders([50], [2], T0, qty=1e9)  # far beyond the account's cash
    asyncio.run(venue.submit(too_big))
    answered = venue.poll(T0 + S)
    assert answered.state.tolist() == [OrderState.REJECTED]
    res = asyncio.run(resolve_orders(venue, too_big, fresh_after_ns=T0, now_ns=T0 + S))
    assert res.adopted.state.tolist() == [OrderState.REJECTED]
    assert res.adopted.reason.tolist() == [int(answered.reason[0])]
    assert res.adopted.reason[0] != RejectReason.NONE


def test_nothing_to_settle_asks_nothing(venue: SimVenue) -> None:
    res = asyncio.run(resolve_orders(venue, OrderBatch.empty(), fresh_after_ns=T0, now_ns=T0))
    assert res.counts() == dict.fromkeys(OUTCOMES, 0)


def test_working_lists_the_orders_in_flight_until_they_are_answered(venue: SimVenue) -> None:
    sent = _orders([60, 61], [1, 2], T0)
    asyncio.run(venue.submit(sent))
    ids = [bytes(c).decode() for c in sent.client_order_id]
    assert sorted(venue.working()) == sorted([(ids[0], 1, 0), (ids[1], 2, 0)])
    asyncio.run(venue.cancel(ClientOrderId(ids[0])))
    assert venue.working() == [(ids[1], 2, 0)]
    answered = venue.poll(T0 + S)
    assert sorted(answered.state.tolist()) == sorted([OrderState.CANCELED, OrderState.FILLED])
    assert venue.working() == []


def test_look_ups_follow_the_history_as_it_grows(venue: SimVenue) -> None:
    first, second = _orders([70], [1], T0), _orders([71], [2], T0 + S)
    asyncio.run(venue.submit(first))
    venue.poll(T0 + S)
    found = asyncio.run(venue.query(ClientOrderId(bytes(first.client_order_id[0]).decode())))
    assert found is not None and found.state == OrderState.FILLED
    assert (
        asyncio.run(venue.query(ClientOrderId(bytes(second.client_order_id[0]).decode()))) is None
    )
    asyncio.run(venue.submit(second))
    venue.poll(T0 + 2 * S)  # answered after the index was first built
    later = asyncio.run(venue.query(ClientOrderId(bytes(second.client_order_id[0]).decode())))
    assert later is not None and later.state == OrderState.FILLED and later.client == 2
