"""A venue router connects its venue on whichever message reaches it first — after a restart
that may be the end-of-run question about the venue's positions rather than an order — and
connects it once however many messages arrive while it connects."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import numpy as np
import pytest
import ray
import ray.cloudpickle

from tickwise.engine.actors import VenueRouterActor
from tickwise.model.orders import ExecutionBatch, OrderBatch

pytestmark = pytest.mark.integration

# The venues below live in this test module, which Ray's workers cannot import.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


class SlowStartVenue:
    """A network venue in miniature: nothing works before `start` has connected."""

    fail_first_starts = 0

    def __init__(self) -> None:
        self.starts = 0
        self.connected = False
        self.submitted = 0

    async def start(self) -> None:
        self.starts += 1
        await asyncio.sleep(0.2)
        if self.starts <= self.fail_first_starts:
            raise ConnectionError("venue unreachable")
        self.connected = True

    def _require_connected(self) -> None:
        if not self.connected:
            raise RuntimeError("the adapter is not started")

    async def submit(self, orders: OrderBatch) -> None:
        self._require_connected()
        self.submitted += len(orders)

    def poll(self, now_ns: int) -> ExecutionBatch:
        return ExecutionBatch.empty()

    def pending(self) -> int:
        return 0

    async def positions(self) -> dict[str, Any]:
        self._require_connected()
        return {"starts": self.starts, "submitted": self.submitted}


class UnreachableOnceVenue(SlowStartVenue):
    fail_first_starts = 1


def _router(venue: type[SlowStartVenue]) -> Any:
    return VenueRouterActor.remote(venue, None, [], np.zeros(1, np.int64))


def test_positions_as_the_first_message_connects_the_venue(local_ray: None) -> None:
    router = _router(SlowStartVenue)
    assert ray.get(router.positions.remote(), timeout=30) == {"starts": 1, "submitted": 0}
    ray.kill(router)


def test_messages_arriving_while_it_connects_share_one_connection(local_ray: None) -> None:
    router = _router(SlowStartVenue)
    refs = [router.submit.remote(OrderBatch.empty()) for _ in range(3)]
    refs.append(router.positions.remote())
    *_, book = ray.get(refs, timeout=30)
    assert book["starts"] == 1
    assert ray.get(router.stats.remote(), timeout=30)["counters"]["venue_errors"] == 0
    ray.kill(router)


def test_a_failed_connection_is_tried_again_by_the_next_message(local_ray: None) -> None:
    router = _router(UnreachableOnceVenue)
    with pytest.raises(ray.exceptions.RayTaskError, match="venue unreachable"):
        ray.get(router.positions.remote(), timeout=30)
    assert ray.get(router.positions.remote(), timeout=30)["starts"] == 2
    ray.kill(router)
