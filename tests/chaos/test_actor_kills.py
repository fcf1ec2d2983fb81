"""Kill a live actor in the middle of a `tiny` run: Ray restarts it, and nothing is lost or
doubled — every journaled order is answered or expired unsent, no client order id twice, the
ledger's positions equal the venues' for every client.

The venues run as simulator servers over their real wire protocols (`--venues http`), so a
venue's books live apart from the router that talks to it, as they do in production: killing a
router kills a connection, not the exchange.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import ray
from invariants import assert_invariants

from tickwise.config import Config, load
from tickwise.engine.controller import Actors, Engine
from tickwise.model.instruments import Venue

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

KILL_AT_S = 5.0


def _config(tmp_path: Path, duration_s: float = 12.0) -> Config:
    config = load(tier="tiny")
    return replace(
        config,
        run=replace(config.run, duration_s=duration_s, live_panel=False),
        venues=replace(config.venues, mode="http", rate_limits=False),
        tuning=replace(config.tuning, enabled=False),
        store=replace(config.store, url=f"sqlite:///{tmp_path / 'tw.sqlite'}"),
    )


VICTIMS = {
    "strategy_shard": lambda a: a.shards[0],
    "allocator": lambda a: a.allocators[0],
    "venue_router": lambda a: a.routers[Venue.ALPACA][0],
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


@pytest.mark.parametrize("victim", sorted(VICTIMS))
def test_killing_a_live_actor_mid_run_loses_and_doubles_nothing(
    local_ray: None, tmp_path: Path, victim: str
) -> None:
    config = _config(tmp_path)
    summary = _run_with_kill(config, victim)
    assert summary["recovery"]["restarted_actors"] >= 1, summary["recovery"]
    assert_invariants(summary, config.store.url)
