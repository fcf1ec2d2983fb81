"""The simulator's matching core on the wall clock: what the protocol servers build on."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tickwise.data.universe import build_universe
from tickwise.model.instruments import InstrumentRegistry, Venue
from tickwise.model.orders import OrderState, RejectReason, Side
from tickwise.venues.capabilities import OrderType, TimeInForce
from tickwise.venues.sim.config import SimVenueConfig
from tickwise.venues.sim.exchange import (
    OrderNotFoundError,
    OrderRefusedError,
    SimExchange,
)
from tickwise.venues.sim.faults import Fault, FaultInjector, FaultPlan, FaultPlanError

REGISTRY: InstrumentRegistry = build_universe(20, 5)
BTC = 20  # the first crypto pair
AAPL = 0


def exchange(venue: Venue = Venue.BINANCE, cash: float = 100_000.0) -> SimExchange:
    ex = SimExchange(venue, REGISTRY, [1, 2], [cash, cash], SimVenueConfig(ack_delay_ms=0.0))
    ex.mark([BTC, AAPL], [50_000.0, 200.0])
    return ex


def settle(ex: SimExchange) -> None:
    """Release everything the matching delay made due (the delay here is 0 + jitter)."""
    ex.step(2**62)


def test_market_order_fills_at_the_marked_price_across_the_spread() -> None:
    ex = exchange()
    order = ex.submit(1, BTC, Side.BUY, 0.01, "buy1")
    assert order.state is OrderState.ACKED and order.in_matching
    settle(ex)
    assert order.state is OrderState.FILLED
    assert order.filled_qty == pytest.approx(0.01)
    assert order.avg_fill_price > 50_000.0  # a buy pays the half spread
    assert ex.positions(1) == {BTC: pytest.approx(0.01)}
    assert ex.cash(1) == pytest.approx(100_000.0 - order.notional - order.fee)


def test_refusals_on_receipt_carry_the_venue_code() -> None:
    ex = exchange()
    with pytest.raises(OrderRefusedError) as unknown:
        ex.submit(1, 999, Side.BUY, 1.0, "x1")
    assert unknown.value.reason is RejectReason.UNKNOWN_SYMBOL
    with pytest.raises(OrderRefusedError) as tiny:
        ex.submit(1, BTC, Side.BUY, 1e-5, "x2")  # $0.50: below Binance's minimum notional
    assert tiny.value.reason is RejectReason.BELOW_MIN_NOTIONAL
    assert tiny.value.code == -1013
    with pytest.raises(OrderRefusedError) as no_account:
        ex.submit(99, BTC, Side.BUY, 0.01, "x3")
    assert no_account.value.reason is RejectReason.VENUE_ERROR


def test_binance_reuses_an_id_once_the_order_is_closed_alpaca_never() -> None:
    binance = exchange(Venue.BINANCE)
    binance.submit(1, BTC, Side.BUY, 0.01, "same")
    with pytest.raises(OrderRefusedError) as open_dup:
        binance.submit(1, BTC, Side.BUY, 0.01, "same")  # still open: refused
    assert open_dup.value.reason is RejectReason.DUPLICATE_CLIENT_ORDER_ID
    settle(binance)
    again = binance.submit(1, BTC, Side.BUY, 0.01, "same")  # closed: the id is free again
    assert again.order_id > 0
    binance.submit(2, BTC, Side.BUY, 0.01, "same2")  # another account: independent

    alpaca = exchange(Venue.ALPACA)
    alpaca.submit(1, AAPL, Side.BUY, 1.0, "same")
    settle(alpaca)
    with pytest.raises(OrderRefusedError) as forever:
        alpaca.submit(1, AAPL, Side.BUY, 1.0, "same")
    assert forever.value.reason is RejectReason.DUPLICATE_CLIENT_ORDER_ID


def test_a_resting_limit_locks_cash_and_fills_when_the_market_reaches_it() -> None:
    ex = exchange()
    limit = ex.submit(1, BTC, Side.BUY, 0.1, "lim", OrderType.LIMIT, TimeInForce.GTC, 40_000.0)
    assert limit.state is OrderState.ACKED and not limit.in_matching
    assert ex.locked(1) == pytest.approx(4_000.0)
    assert [o.client_order_id for o in ex.orders_of(1, open_only=True)] == ["lim"]
    ex.mark([BTC], [39_950.0])
    settle(ex)
    assert limit.state is OrderState.FILLED
    assert limit.avg_fill_price <= 40_000.0  # never through the limit
    assert ex.locked(1) == 0.0


def test_a_limit_beyond_free_cash_is_refused_for_buying_power() -> None:
    ex = exchange(cash=1_000.0)
    with pytest.raises(OrderRefusedError) as refused:
        ex.submit(1, BTC, Side.BUY, 1.0, "big", OrderType.LIMIT, TimeInForce.GTC, 40_000.0)
    assert refused.value.reason is RejectReason.INSUFFICIENT_BUYING_POWER


def test_cancel_a_resting_order_then_cancel_is_idempotent_and_unknown_ids_raise() -> None:
    ex = exchange()
    limit = ex.submit(1, BTC, Side.BUY, 0.1, "c1", OrderType.LIMIT, TimeInForce.GTC, 40_000.0)
    ex.cancel(1, client_order_id="c1")
    assert limit.state is OrderState.CANCELED and ex.locked(1) == 0.0
    assert ex.cancel(1, order_id=limit.order_id) is limit  # terminal: unchanged
    with pytest.raises(OrderNotFoundError):
        ex.cancel(1, client_order_id="never-sent")
    with pytest.raises(OrderNotFoundError):
        ex.cancel(2, client_order_id="c1")  # another account's order is not found


def test_ioc_limit_that_cannot_trade_expires() -> None:
    ex = exchange()
    order = ex.submit(1, BTC, Side.BUY, 0.1, "ioc", OrderType.LIMIT, TimeInForce.IOC, 1_000.0)
    assert order.state is OrderState.EXPIRED


def test_market_order_without_a_price_yet_is_refused() -> None:
    ex = SimExchange(Venue.BINANCE, REGISTRY, [1], [1e5], SimVenueConfig(ack_delay_ms=0.0))
    with pytest.raises(OrderRefusedError) as refused:
        ex.submit(1, BTC, Side.BUY, 0.01, "nomark")
    assert "no market price" in refused.value.text


def test_subscribers_see_every_change_of_their_account_only() -> None:
    async def scenario() -> list[tuple[str, str]]:
        ex = exchange()
        mine = ex.subscribe(1)
        everyone = ex.subscribe(None)
        ex.submit(1, BTC, Side.BUY, 0.01, "a")
        ex.submit(2, BTC, Side.BUY, 0.01, "b")
        settle(ex)
        assert everyone.qsize() == 4
        return [(e.kind, e.order.client_order_id) for e in _drain(mine)]

    assert asyncio.run(scenario()) == [("new", "a"), ("fill", "a")]


def test_settled_waits_for_the_matching_delay_on_the_running_clock() -> None:
    async def scenario() -> OrderState:
        ex = SimExchange(Venue.BINANCE, REGISTRY, [1], [1e5], SimVenueConfig(ack_delay_ms=5.0))
        ex.mark([BTC], [50_000.0])
        clock = asyncio.create_task(ex.run())
        try:
            order = ex.submit(1, BTC, Side.BUY, 0.01, "w")
            await ex.settled(order, timeout_s=5.0)
            return order.state
        finally:
            clock.cancel()

    assert asyncio.run(scenario()) is OrderState.FILLED


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["market", "limit", "cancel", "mark", "settle"]),
            st.integers(1, 2),  # client
            st.sampled_from([Side.BUY, Side.SELL]),
            st.integers(1, 30),  # qty in 0.001 BTC
            st.floats(45_000.0, 55_000.0),  # price
            st.integers(0, 6),  # client order id pool: reuse on purpose
        ),
        max_size=40,
    )
)
def test_every_order_ends_once_and_locked_cash_matches_resting_buys(ops: list) -> None:  # type: ignore[type-arg]
    async def scenario() -> None:
        ex = exchange()
        events = ex.subscribe(None)
        accepted = 0
        for op, client, side, qty_k, price, coid_n in ops:
            coid = f"id{coid_n}"
            qty = qty_k / 1000.0
            try:
                if op == "market":
                    ex.submit(client, BTC, side, qty, coid)
                    accepted += 1
                elif op == "limit":
                    ex.submit(client, BTC, side, qty, coid, OrderType.LIMIT, TimeInForce.GTC, price)
                    accepted += 1
                elif op == "cancel":
                    ex.cancel(client, client_order_id=coid)
                elif op == "mark":
                    ex.mark([BTC], [price])
                else:
                    settle(ex)
            except (OrderRefusedError, OrderNotFoundError):
                pass
            for c in (1, 2):
                resting = sum(
                    o.qty * o.limit_price
                    for o in ex.orders_of(c, open_only=True)
                    if o.order_type is OrderType.LIMIT and o.side is Side.BUY and not o.in_matching
                )
                assert ex.locked(c) == pytest.approx(resting, abs=1e-6)
                assert ex.cash(c) >= -1e-6
        settle(ex)
        terminal: dict[int, int] = {}
        new = 0
        for e in _drain(events):
            if e.kind == "new":
                new += 1
            else:
                terminal[e.order.order_id] = terminal.get(e.order.order_id, 0) + 1
        assert new == accepted
        assert all(n == 1 for n in terminal.values())  # never two outcomes for one order
        for c in (1, 2):
            for o in ex.orders_of(c):
                if o.open:  # after settling, only resting limits are still working
                    assert o.order_type is OrderType.LIMIT and not o.in_matching
                else:
                    assert terminal.get(o.order_id) == 1

    asyncio.run(scenario())


def _drain(queue: asyncio.Queue) -> list:  # type: ignore[type-arg]
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


def test_fault_plan_parses_and_refuses_what_it_cannot_understand() -> None:
    plan = FaultPlan.parse("5xx=0.01, unknown=0.02,disconnect=0.5")
    assert plan.rates == {Fault.ERROR_5XX: 0.01, Fault.UNKNOWN: 0.02, Fault.DISCONNECT: 0.5}
    assert FaultPlan.parse("").active is False
    for bad, words in (
        ("boom=0.1", "unknown fault"),
        ("5xx", "expected 5xx=RATE"),
        ("5xx=lots", "not a number"),
        ("5xx=1.5", "not in [0, 1]"),
        ("5xx=0.6,unknown=0.6", "add up to"),
    ):
        with pytest.raises(FaultPlanError, match=words.replace("[", r"\[").replace("]", r"\]")):
            FaultPlan.parse(bad)


def test_fault_injector_draws_at_the_planned_rates_and_counts() -> None:
    injector = FaultInjector(FaultPlan.parse("unknown=0.2,5xx=0.1"), seed=3)
    draws = [injector.draw() for _ in range(20_000)]
    unknown = sum(d is Fault.UNKNOWN for d in draws) / len(draws)
    errors = sum(d is Fault.ERROR_5XX for d in draws) / len(draws)
    assert math.isclose(unknown, 0.2, abs_tol=0.02) and math.isclose(errors, 0.1, abs_tol=0.02)
    assert injector.injected["unknown"] == sum(d is Fault.UNKNOWN for d in draws)
    assert Fault.UNKNOWN.order_lands and not Fault.ERROR_5XX.order_lands
    assert np.mean([FaultInjector().draw() is Fault.NONE for _ in range(100)]) == 1.0
