"""The venues' simulator servers of a `--venues http` run, each in its own Ray actor process.

Each server speaks its venue's REST and WebSocket protocols on 127.0.0.1 (on a cluster, on its
node's address, for routers on other nodes) and follows the run's
own market: the feed hands it the validated ticks (as it does the tuner), so its fills happen at
the prices the strategies saw. The routers reach it over real HTTP, like a remote venue.
"""

from __future__ import annotations

from typing import Any

import ray

from tickwise.model.ticks import TickBatch
from tickwise.venues.sim.server.serve import ServerSpec


@ray.remote(num_cpus=0)
class VenueServerActor:
    """One venue's simulator server (see module doc)."""

    def __init__(self, spec: ServerSpec) -> None:
        self._spec = spec
        self._server = spec.build()

    async def start(self) -> dict[str, str]:
        await self._server.start()
        return {"url": self._server.url, "ws_url": self._server.ws_url}

    def append(self, ticks: TickBatch) -> None:
        """The feed's tap: the run's validated ticks become this venue's market."""
        self._server.context.market.publish(ticks)

    def stats(self) -> dict[str, Any]:
        ctx = self._server.context
        return {
            "venue": self._spec.venue.label,
            "url": self._server.url,
            "orders_received": ctx.exchange.orders_received,
            "faults_injected": dict(ctx.faults.injected),
            "events_dropped": ctx.exchange.events_dropped,
            "ticks_marked": ctx.market.ticks_published,
        }

    async def stop(self) -> None:
        await self._server.stop()
