"""Kill a live actor in the middle of a `tiny` run: Ray restarts it, and nothing is lost or
doubled — every journaled order is answered or expired unsent, no client order id twice, the
ledger's positions equal the venues' for every client.

The venues run as simulator servers over their real wire protocols (`--venues http`), so a
venue's books live apart from the router that talks to it, as they do in production: killing a
router kills a connection, not the exchange.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import ray
from invariants import assert_invariants, tiny_http_config

from tickwise.config import Config
from tickwise.engine.controller import Actors, Engine
from tickwise.model.instruments import Venue

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

KILL_AT_S = 5.0


VICTIMS = {
    "feed": lambda a: a.feed,
    "strategy_shard": lambda a: a.shards[0],
    "allocator": lambda a: a.allocators[0],
    "venue_router": lambda a: a.routers[Venue.ALPACA][0],
    "ledger": lambda a: a.ledger,
}


def _run_with_kill(config: Config, victim: str) -> dict[str, Any]:
    engine = Engine(config)
    try:
        engine.start()
        assert engine.actors is not None
        actors: Actors = engine.actors
        handle = VICTIMS[victim](actors)
        # The process dies as if it crashed; Ray restarts the actor (no_restart=False).
        timer = threading.Timer(KILL_AT_S, lambda: ray.kill(handle, no_restart=False))
        timer.start()
        try:
            return engine.run()
        finally:
            timer.cancel()
    finally:
        engine.shutdown()


# Every victim on SQLite; on PostgreSQL the two whose restart reads and settles through the store.
CASES = [(v, "sqlite") for v in sorted(VICTIMS)] + [
    ("allocator", "postgresql"),
    ("venue_router", "postgresql"),
]


@pytest.mark.parametrize(("victim", "store_url"), CASES, indirect=["store_url"])
def test_killing_a_live_actor_mid_run_loses_and_doubles_nothing(
    local_ray: None, store_url: str, victim: str
) -> None:
    config = tiny_http_config(store_url)
    summary = _run_with_kill(config, victim)
    recovery = summary["recovery"]
    assert recovery["restarted_actors"] >= 1, recovery
    if victim == "strategy_shard":
        assert recovery["shards_resumed_from_checkpoint"] == 1, recovery
    assert_invariants(summary, config.store.url)
