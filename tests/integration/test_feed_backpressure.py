"""The feed's back-pressure: at most `max_inflight` batches unanswered per strategy shard.

A shard that keeps up gets the feed's every batch (the feed asks Ray which batches are done when
a shard's list is full, before it waits); a shard that falls behind stalls the feed, and the
ticks wait in the source, in larger batches, instead of being lost. Either way every tick
reaches the shard once."""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
import pytest
import ray
import ray.cloudpickle

from tickwise.engine.actors import FeedActor
from tickwise.model.ticks import TickBatch

pytestmark = pytest.mark.integration

# The source, validator and shard below live in this test module, which Ray's workers cannot
# import.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

TICKS_PER_MS = 2  # ticks the source makes per millisecond, on one instrument


class SteadySource:
    """Two ticks a millisecond on instrument 0: every call returns those made since the last."""

    def __init__(self) -> None:
        self._last_ns = time.time_ns()

    def next_batch(self, now_ns: int) -> TickBatch:
        n = max(0, (now_ns - self._last_ns) // 1_000_000 * TICKS_PER_MS)
        self._last_ns += n // TICKS_PER_MS * 1_000_000
        ts = np.full(n, now_ns, np.int64)
        return TickBatch(
            instrument=np.zeros(n, np.uint32),
            ts_event=ts,
            ts_recv=ts,
            price=np.full(n, 100.0),
            size=np.ones(n),
            kind=np.zeros(n, np.uint8),
        )


class PassValidator:
    counts: dict[str, int] = {}

    def validate(self, batch: TickBatch) -> TickBatch:
        return batch


@ray.remote(num_cpus=0)
class Shard:
    def __init__(self, seconds_per_batch: float) -> None:
        self._seconds = seconds_per_batch
        self.ticks = 0
        self.batches = 0

    def on_ticks(self, batch: TickBatch) -> None:
        time.sleep(self._seconds)
        self.ticks += len(batch)
        self.batches += 1

    def seen(self) -> tuple[int, int]:
        return self.ticks, self.batches


def _run(seconds_per_batch: float, max_inflight: int) -> tuple[dict[str, Any], tuple[int, int]]:
    shard = Shard.remote(seconds_per_batch)
    feed = FeedActor.remote(
        SteadySource, PassValidator, [shard], np.zeros(1, np.int64), 1, 2.0, 0.0, max_inflight, 0
    )
    stats = ray.get(feed.run.remote(1.5, None), timeout=60)
    seen = ray.get(shard.seen.remote(), timeout=30)
    ray.kill(feed)
    ray.kill(shard)
    return stats["counters"], seen


def test_a_shard_that_keeps_up_gets_every_batch(local_ray: None) -> None:
    counters, (ticks, batches) = _run(0.0, max_inflight=8)
    # A batch every 2 ms for 1.5 s, give or take: far more than a stalled feed sends (below).
    assert batches == counters["batches"] > 100
    # Answered batches leave the in-flight list before the feed would wait: a stall needs 8
    # batches (16 ms) unanswered, which a shard doing nothing rarely leaves (waiting on the
    # oldest whenever 8 were sent would stall one batch in 8).
    assert counters["stalls"] < counters["batches"] / 20
    assert ticks == counters["ticks_forwarded"] == counters["ticks_received"] > 0


def test_a_shard_that_falls_behind_stalls_the_feed_and_loses_no_tick(local_ray: None) -> None:
    counters, (ticks, batches) = _run(0.05, max_inflight=2)
    assert counters["stalls"] > 0
    # 50 ms a batch for 1.5 s: about 30 batches reach the shard, not the 750 a 2 ms feed makes.
    assert batches == counters["batches"] <= 1.5 / 0.05 + 10
    assert ticks == counters["ticks_forwarded"] == counters["ticks_received"] > 0
