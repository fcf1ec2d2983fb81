"""Every venue fault at once, on both stores: refusals (5xx, 429), answers lost after the order
landed (unknown outcome, timeout, dropped connection) and stream disconnects. The adapters settle
each order by client order id (venues.md), so the invariants hold: nothing lost, nothing
doubled, ledger positions equal the venues' for every client."""

from __future__ import annotations

import pytest
from invariants import assert_invariants, tiny_http_config

from tickwise.engine.controller import Engine

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

EVERY_FAULT = "5xx=0.02,429=0.02,unknown=0.02,timeout=0.005,drop=0.01,disconnect=0.05"


def test_every_venue_fault_is_survived(local_ray: None, store_url: str) -> None:
    config = tiny_http_config(store_url, faults=EVERY_FAULT)
    engine = Engine(config)
    try:
        engine.start()
        summary = engine.run()
    finally:
        engine.shutdown()
    assert_invariants(summary, config.store.url)
    injected: dict[str, int] = {}
    for server in summary["venues"]["servers"]:
        for fault, count in server["faults_injected"].items():
            injected[fault] = injected.get(fault, 0) + count
    # Each kind of fault really happened somewhere (the streams of all three venues count
    # toward "disconnect"; E*Trade has none and polls).
    assert {f for f, n in injected.items() if n > 0} >= {"5xx", "429", "unknown", "drop"}, injected
