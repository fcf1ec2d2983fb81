"""The invariants every chaos test checks after a run, from the store and the run summary.

A plain module (not `conftest`), so test files import it by a name no other test folder uses.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from tickwise.config import Config, load
from tickwise.store import open_store

# Order states without a final answer from the venue: none may be left once a run has drained.
UNANSWERED = ("journaled", "sent", "unknown", "acked", "partially_filled")


def assert_invariants(summary: dict[str, Any], store_url: str) -> dict[str, Any]:
    """Nothing lost, nothing doubled, positions equal: every journaled order was answered by its
    venue or expired unsent, no client order id twice, ledger positions = venue positions for
    every client. Returns the run's order counts from the store."""
    dump = json.dumps(summary, indent=1, default=float)
    assert summary["drained"], dump
    store = open_store(store_url)
    try:
        stats = store.order_stats(summary["run_id"])
    finally:
        store.close()
    by_state = stats["by_state"]
    assert stats["journaled"] > 0, dump
    left = {state: by_state[state] for state in UNANSWERED if by_state.get(state)}
    assert not left, f"orders journaled without an answer: {left}\n{dump}"
    assert stats["duplicate_client_order_ids"] == 0, stats
    assert stats["executions_without_order"] == 0, stats
    assert summary["invariants"]["ok"], summary["invariants"]
    recon = summary["reconciliation"]
    assert recon["clients_checked"] == summary["clients"], dump
    assert recon["position_mismatches"] == 0, dump
    return stats


def tiny_http_config(store_url: str, duration_s: float = 12.0, faults: str = "") -> Config:
    """A `tiny` run whose venues are simulator servers over the wire (their books live apart
    from the routers), with `faults` injected, storing in `store_url`."""
    config = load(tier="tiny")
    return replace(
        config,
        run=replace(config.run, duration_s=duration_s, live_panel=False),
        venues=replace(config.venues, mode="http", rate_limits=False, faults=faults),
        tuning=replace(config.tuning, enabled=False),
        store=replace(config.store, url=store_url),
    )
