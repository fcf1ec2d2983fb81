"""Allocator properties over random client universes, signal sequences, risk settings and halts
(Hypothesis)."""

from __future__ import annotations

import numpy as np
from execution_helpers import make_registry
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tickwise.execution.allocator import Allocator, AllocatorConfig
from tickwise.model.ids import client_order_ids, signal_ids
from tickwise.model.instruments import Venue
from tickwise.model.orders import ExecutionBatch, OrderBatch, OrderState, RejectReason
from tickwise.model.signals import SignalBatch
from tickwise.store.seeding import SeedingConfig, generate_clients

T0 = 1_700_000_000_000_000_000
REGISTRY = make_registry(12, 4)  # stock 0 and 10 whole shares only; crypto 12..15
N_INST = len(REGISTRY)
INCREMENT = np.vstack([REGISTRY.quantity_increment(v) for v in Venue])
MIN_NOTIONAL = np.vstack([REGISTRY.venue_min_notional(v) for v in Venue])
SEEDING = SeedingConfig(
    equity_portfolio_size=(3, 10), crypto_portfolio_size=(2, 4), invested=(0.3, 0.95)
)
# Sizing rules alone: the stateful controls off, so random prices are never refused.
SIZING = AllocatorConfig(price_band_pct=0.0, max_daily_loss_pct=0.0)
# Where a candidate (client, instrument) pair that is not ordered is counted: exactly one of these.
DROPS = (
    "at_target",
    "below_increment",
    "below_band",
    "below_min_notional",
    "halted",
    "risk_max_daily_loss",
    "risk_max_position",
    "risk_max_order_notional",
    "risk_buying_power",
)
# Where a signal ends: refused as a whole under one of these, or accepted.
SIGNAL_ENDS = (
    "signals_invalid",
    "signals_replayed",
    "signals_stale",
    "signals_price_band",
    "signals_accepted",
)

signal_steps = st.lists(
    st.tuples(
        st.integers(0, N_INST - 1),
        st.floats(0.0, 1.0),
        st.floats(0.5, 5_000.0),
    ),
    min_size=1,
    max_size=12,
)


def make_signals(steps: list[tuple[int, float, float]], micros: int) -> SignalBatch:
    inst = np.array([s[0] for s in steps], dtype=np.uint32)
    ts = T0 + (micros + np.arange(inst.size)) * 1000
    price = np.array([s[2] for s in steps])
    return SignalBatch(
        signal_id=signal_ids(inst, ts),
        instrument=inst,
        target_weight=np.array([s[1] for s in steps]),
        price=price,
        bid=price,
        ask=price,
        ts_event=ts,
        ts_recv=ts,
        ts_signal=ts,
    )


def fill_all(orders: OrderBatch) -> ExecutionBatch:
    n = len(orders)
    return ExecutionBatch(
        client_order_id=orders.client_order_id,
        signal_id=orders.signal_id,
        client=orders.client,
        venue=orders.venue,
        instrument=orders.instrument,
        side=orders.side,
        state=np.full(n, OrderState.FILLED, np.int8),
        reason=np.full(n, RejectReason.NONE, np.int8),
        fill_qty=orders.qty.copy(),
        fill_price=orders.price.copy(),
        fee=np.zeros(n),
        ts_event=orders.ts_event,
        ts_recv=orders.ts_recv,
        ts_sent=orders.ts_alloc,
        ts_ack=orders.ts_alloc,
    )


def check_orders(alloc: Allocator, orders: OrderBatch, held: dict[tuple[int, int], float]) -> None:
    """Every order obeys the rules; `held` (the expected positions) is updated in place."""
    book, band = alloc.book, alloc.config.rebalance_band
    rows = book.rows_of(orders.client)
    venue, inst = orders.venue.astype(np.intp), orders.instrument.astype(np.intp)
    assert set(np.unique(orders.side).tolist()) <= {-1, 1}
    assert (orders.qty > 0).all()
    steps = orders.qty / INCREMENT[venue, inst]
    np.testing.assert_allclose(steps, np.round(steps), rtol=1e-9, atol=1e-6)
    notional = orders.qty * orders.price
    assert (notional >= band * book.equity[rows] * (1 - 1e-12)).all()
    assert (notional >= MIN_NOTIONAL[venue, inst]).all()
    assert (notional <= book.max_order_notional[rows] * (1 + 1e-12)).all()
    expected_ids = client_order_ids(orders.signal_id, orders.client)
    np.testing.assert_array_equal(orders.client_order_id, expected_ids)
    for c, i, side, qty, price, r in zip(
        orders.client.tolist(),
        orders.instrument.tolist(),
        orders.side.tolist(),
        orders.qty.tolist(),
        orders.price.tolist(),
        rows.tolist(),
        strict=True,
    ):
        before = held.get((c, i), 0.0)
        if side < 0:
            assert qty <= before + 1e-9, "never sell more than held"
        after = before + side * qty
        if side > 0:
            limit = book.max_position_weight[r] * book.equity[r] / price
            assert after <= limit * (1 + 1e-9) + 1e-9
        held[(c, i)] = after


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    count=st.integers(1, 80),
    seed=st.integers(0, 10_000),
    rounds=st.lists(signal_steps, min_size=1, max_size=4),
    fill=st.booleans(),
)
def test_every_order_obeys_rounding_band_no_short_and_risk_rules(
    count: int, seed: int, rounds: list[list[tuple[int, float, float]]], fill: bool
) -> None:
    universe = generate_clients(REGISTRY, count, seed, config=SEEDING)
    alloc = Allocator(universe.book, universe.portfolios, REGISTRY, SIZING)
    held: dict[tuple[int, int], float] = {}
    seen_ids: set[bytes] = set()
    for k, steps in enumerate(rounds):
        orders = alloc.on_signals(make_signals(steps, micros=1000 * k), T0)
        check_orders(alloc, orders, held)
        ids = set(orders.client_order_id.tolist())
        assert len(ids) == len(orders) and not ids & seen_ids, "ids unique per (signal, client)"
        seen_ids |= ids
        if fill:
            alloc.apply_executions(fill_all(orders))
        assert min(held.values(), default=0.0) >= -1e-9
        assert (alloc.expected_cash() >= -1e-6).all(), "buys never exceed the expected cash"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    count=st.integers(1, 80),
    seed=st.integers(0, 10_000),
    targets=st.dictionaries(
        st.integers(0, N_INST - 1),
        st.tuples(st.floats(0.0, 1.0), st.floats(0.5, 5_000.0)),
        min_size=1,
        max_size=N_INST,
    ),
    fill=st.booleans(),
)
def test_resending_targets_after_positions_caught_up_yields_no_orders(
    count: int, seed: int, targets: dict[int, tuple[float, float]], fill: bool
) -> None:
    universe = generate_clients(REGISTRY, count, seed, config=SEEDING)
    alloc = Allocator(universe.book, universe.portfolios, REGISTRY, AllocatorConfig())
    steps = [(i, w, p) for i, (w, p) in targets.items()]
    first = alloc.on_signals(make_signals(steps, micros=0), T0)
    if fill:
        alloc.apply_executions(fill_all(first))
    again = alloc.on_signals(make_signals(steps, micros=10_000), T0)  # new signal ids
    assert len(again) == 0
    replay = alloc.on_signals(make_signals(steps, micros=0), T0)  # the same signal ids
    assert len(replay) == 0
    assert alloc.counters["signals_replayed"] == len(steps)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), weight=st.floats(0.05, 1.0), price=st.floats(1.0, 900.0))
def test_a_fan_out_orders_every_holder_at_most_once(seed: int, weight: float, price: float) -> None:
    universe = generate_clients(REGISTRY, 200, seed, config=SEEDING, all_follow_portfolio=True)
    alloc = Allocator(universe.book, universe.portfolios, REGISTRY)
    orders = alloc.on_signals(make_signals([(1, weight, price)], micros=0), T0)
    holders = set(alloc.holders(1).tolist())
    assert set(orders.client.tolist()) <= holders
    assert len(set(orders.client.tolist())) == len(orders)
    dropped = sum(alloc.counters[k] for k in DROPS)
    assert len(orders) + dropped == len(holders), "every holder is ordered or counted as dropped"
    assert alloc.counters["candidates"] == len(holders)


# --- risk controls: band, stale data, daily loss, halts ---------------------------------------

SECOND = 1_000_000_000
BASE_PRICE = np.geomspace(2.0, 3_000.0, N_INST)

risk_configs = st.builds(
    AllocatorConfig,
    price_band_pct=st.sampled_from([0.0, 2.0, 10.0, 50.0]),
    price_band_confirmations=st.integers(1, 3),
    max_quote_age_ms=st.sampled_from([0.0, 200.0, 1_000.0]),
    max_daily_loss_pct=st.sampled_from([0.0, 0.1, 0.5, 2.0]),
    clip_to_buying_power=st.booleans(),
)
# One on_signals call: distinct instruments -> (target weight, price move, age of the data in ms).
risk_rounds = st.dictionaries(
    st.integers(0, N_INST - 1),
    st.tuples(
        st.floats(0.0, 1.0),
        st.one_of(st.floats(0.9, 1.02), st.floats(0.2, 5.0)),  # mostly in band, mostly down
        st.integers(-50, 1_500),
    ),
    min_size=1,
    max_size=8,
)
halt_sets = st.tuples(
    st.integers(0, 5).map(lambda x: x == 0),  # desk-wide halt, now and then
    st.sets(st.integers(0, 8), max_size=3),  # portfolio ids (8 is unknown)
    st.sets(st.integers(0, 90), max_size=10),  # client ids (some beyond the book)
)


def halted_pairs(alloc: Allocator, portfolios: set[int]) -> set[tuple[int, int]]:
    """(client, instrument) pairs some halted portfolio gives the client, from the raw book."""
    book, out = alloc.book, set()
    for p in alloc.portfolios:
        if p.portfolio_id not in portfolios:
            continue
        subs = book.sub_client[(book.sub_portfolio == p.portfolio_id) & (book.sub_allocation > 0)]
        members = [i for i, w in zip(p.instruments, p.weights, strict=True) if w > 0]
        out |= {(int(c), i) for c in subs.tolist() for i in members}
    return out


def expected_positions(alloc: Allocator) -> dict[int, np.ndarray]:
    return {i: alloc.expected_positions(i) for i in range(N_INST)}


def marked_value(
    alloc: Allocator, positions: dict[int, np.ndarray], marks: np.ndarray
) -> np.ndarray:
    """Sum over instruments of position x mark, per client row, the slow way."""
    value = np.zeros(len(alloc.book))
    for i, held in positions.items():
        np.add.at(value, alloc.book.rows_of(alloc.holders(i)), held * marks[i])
    return value


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    count=st.integers(1, 60),
    seed=st.integers(0, 10_000),
    config=risk_configs,
    rounds=st.lists(st.tuples(risk_rounds, halt_sets, st.booleans()), min_size=1, max_size=6),
)
def test_risk_controls_hold_for_random_books_signals_and_halts(
    count: int,
    seed: int,
    config: AllocatorConfig,
    rounds: list[tuple[dict[int, tuple[float, float, int]], tuple[bool, set[int], set[int]], bool]],
) -> None:
    universe = generate_clients(REGISTRY, count, seed, config=SEEDING)
    alloc = Allocator(universe.book, universe.portfolios, REGISTRY, config)
    book = alloc.book
    held: dict[tuple[int, int], float] = {}
    for k, (steps, (desk, portfolios, clients), fill) in enumerate(rounds):
        now = T0 + (k + 1) * 10 * SECOND  # data ages stay < 10 s: signal ids never repeat
        alloc.set_halts(desk, portfolios, clients)
        inst = np.array(sorted(steps), dtype=np.uint32)
        price = BASE_PRICE[inst] * np.array([steps[i][1] for i in inst.tolist()])
        ts = now - np.array([steps[i][2] for i in inst.tolist()], dtype=np.int64) * 1_000_000
        batch = SignalBatch(
            signal_id=signal_ids(inst, ts),
            instrument=inst,
            target_weight=np.array([steps[i][0] for i in inst.tolist()]),
            price=price,
            bid=price,
            ask=price,
            ts_event=ts,
            ts_recv=ts,
            ts_signal=ts,
        )
        before = dict(alloc.counters)
        reference = alloc.reference_prices()[inst]
        cash = alloc.expected_cash()
        start = alloc.day_start_equity()
        positions = expected_positions(alloc)

        orders = alloc.on_signals(batch, now)

        # Stale and out-of-band signals make no order, and each is counted once.
        age_limit = config.max_quote_age_ns
        is_stale = (ts < now - age_limit) if age_limit > 0 else np.zeros(inst.size, np.bool_)
        in_band = np.isnan(reference) | (np.abs(price - reference) <= config.price_band * reference)
        if config.price_band == 0:
            in_band[:] = True
        accepted = ~is_stale & in_band
        ordered = np.isin(batch.signal_id, orders.signal_id)
        assert not (ordered & ~accepted).any(), "an order from a stale or out-of-band signal"
        delta = {name: alloc.counters[name] - before[name] for name in alloc.counters}
        assert delta["signals_stale"] == int(is_stale.sum())
        assert delta["signals_price_band"] == int((~is_stale & ~in_band).sum())
        assert delta["signals_accepted"] == int(accepted.sum())
        assert delta["candidates"] == sum(len(alloc.holders(int(i))) for i in inst[accepted])

        # Every candidate is an order or one refusal; every signal ends under one counter.
        c = alloc.counters
        assert c["signals"] == sum(c[name] for name in SIGNAL_ENDS)
        assert c["candidates"] == c["orders"] + sum(c[name] for name in DROPS)

        # Halts: nothing for a halted desk, client, or pair from a halted portfolio.
        pairs = set(zip(orders.client.tolist(), orders.instrument.tolist(), strict=True))
        assert not (desk and pairs)
        assert not {cl for cl, _ in pairs} & clients
        assert not pairs & halted_pairs(alloc, portfolios)

        # Daily loss: a buy only for a client within its limit, with the marks this call set.
        marks = alloc.marks()
        loss = start - (cash + marked_value(alloc, positions, marks))
        buyers = book.rows_of(orders.client[orders.side > 0])
        limit = config.max_daily_loss * start[buyers]
        if config.max_daily_loss > 0:
            assert (loss[buyers] <= limit + 1e-9 * start[buyers] + 1e-6).all()

        # The incremental equity matches the slow sum, and every order obeys the limits.
        np.testing.assert_allclose(
            alloc.equity(),
            alloc.expected_cash() + marked_value(alloc, expected_positions(alloc), marks),
            rtol=1e-9,
            atol=1e-6,
        )
        check_orders(alloc, orders, held)
        if fill:
            alloc.apply_executions(fill_all(orders))
        assert (alloc.expected_cash() >= -1e-6).all()
