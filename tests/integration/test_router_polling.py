"""A venue router polls a venue that knows when its next answer is due (the in-process
simulator) only then, or when a send may have brought an earlier answer: an idle router does
not wake every millisecond, and an order sent while it sleeps is answered on time."""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
import pytest
import ray
import ray.cloudpickle

from tickwise.engine.actors import VenueRouterActor
from tickwise.model.ids import client_order_ids
from tickwise.model.orders import ExecutionBatch, OrderBatch, OrderState

pytestmark = pytest.mark.integration

# The venue and ledger below live in this test module, which Ray's workers cannot import.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

ANSWER_AFTER_NS = 20_000_000  # the venue answers an order 20 ms after it arrives
NEVER = 2**62


class ScheduledVenue:
    """Fills every order `ANSWER_AFTER_NS` after it arrives; counts the polls."""

    def __init__(self) -> None:
        self.polls = 0
        self._orders: list[tuple[int, OrderBatch]] = []

    @property
    def next_due_ns(self) -> int:
        return min((due for due, _ in self._orders), default=NEVER)

    async def submit(self, orders: OrderBatch) -> None:
        self._orders.append((time.time_ns() + ANSWER_AFTER_NS, orders))

    def poll(self, now_ns: int) -> ExecutionBatch:
        self.polls += 1
        due = [o for d, o in self._orders if d <= now_ns]
        self._orders = [(d, o) for d, o in self._orders if d > now_ns]
        if not due:
            return ExecutionBatch.empty()
        orders = OrderBatch.concat(due)
        return ExecutionBatch.answering(
            orders, OrderState.FILLED, fill_qty=orders.qty, fill_price=orders.price, ts_ack=now_ns
        )

    def pending(self) -> int:
        return sum(len(o) for _, o in self._orders)

    async def positions(self) -> dict[str, Any]:
        return {"polls": self.polls}


@ray.remote(num_cpus=0)
class Ledger:
    def __init__(self) -> None:
        self.answers: list[tuple[int, int]] = []  # (ts_sent, ts_ack)

    def apply(self, execs: ExecutionBatch) -> None:
        self.answers.extend(zip(execs.ts_sent.tolist(), execs.ts_ack.tolist(), strict=True))

    def seen(self) -> list[tuple[int, int]]:
        return self.answers


def _order() -> OrderBatch:
    now = np.full(1, time.time_ns(), np.int64)
    return OrderBatch(
        client_order_id=client_order_ids(np.array([1]), np.array([7])),
        signal_id=np.array([1], np.int64),
        client=np.array([7], np.int32),
        venue=np.zeros(1, np.uint8),
        instrument=np.zeros(1, np.uint32),
        side=np.ones(1, np.int8),
        qty=np.ones(1),
        price=np.full(1, 100.0),
        ts_event=now,
        ts_recv=now,
        ts_signal=now,
        ts_alloc=now,
        ts_journal=now,
        ts_sent=np.zeros(1, np.int64),
    )


def test_an_idle_router_does_not_poll_every_millisecond(local_ray: None) -> None:
    router = VenueRouterActor.remote(ScheduledVenue, Ledger.remote(), [], np.zeros(1, np.int64))
    before = ray.get(router.positions.remote(), timeout=30)["polls"]
    time.sleep(1.0)
    after = ray.get(router.positions.remote(), timeout=30)["polls"]
    # Nothing due: one poll per `idle_poll_s` (0.25 s), against 1,000 a second at 1 ms.
    assert after - before <= 20
    ray.kill(router)


def test_an_order_sent_while_the_router_sleeps_is_answered_when_due(local_ray: None) -> None:
    ledger = Ledger.remote()
    # Asleep for up to a minute with nothing due: only the send can wake it in time.
    router = VenueRouterActor.remote(
        ScheduledVenue, ledger, [], np.zeros(1, np.int64), idle_poll_s=60.0
    )
    ray.get(router.start.remote(), timeout=30)
    time.sleep(0.3)  # the loop is waiting now
    ray.get(router.submit.remote(_order()), timeout=30)
    deadline = time.monotonic() + 20.0
    while not (answers := ray.get(ledger.seen.remote(), timeout=30)):
        assert time.monotonic() < deadline, "the answer never came: the send did not wake the poll"
        time.sleep(0.05)
    (sent, acked) = answers[0]
    assert acked - sent >= ANSWER_AFTER_NS  # never polled before it was due
    assert acked - sent < 20e9
    ray.kill(router)
