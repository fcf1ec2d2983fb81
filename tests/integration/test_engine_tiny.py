"""A `tiny` run on local Ray, end to end: ticks in, orders journaled, sent, acked, reconciled."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tickwise.config import Config, load
from tickwise.engine.controller import Engine
from tickwise.store import open_store

pytestmark = pytest.mark.integration


def _tiny(tmp_path: Path, **market: Any) -> Config:
    config = load(tier="tiny")
    return replace(
        config,
        run=replace(config.run, duration_s=12.0, live_panel=False),
        market=replace(config.market, **market),
        store=replace(config.store, url=f"sqlite:///{tmp_path / 'tw.sqlite'}"),
    )


def _run(config: Config) -> dict[str, Any]:
    engine = Engine(config)
    try:
        engine.start()
        return engine.run()
    finally:
        engine.shutdown()


def _assert_invariants(summary: dict[str, Any]) -> None:
    dump = json.dumps(summary, indent=1, default=float)
    ticks, orders, recon = summary["ticks"], summary["orders"], summary["reconciliation"]
    assert summary["drained"], dump
    assert ticks["processed"] > 0 and ticks["unaccounted"] == 0, dump
    assert summary["signals"] > 0, dump
    assert orders["journaled"] > 0, dump
    assert orders["sent"] == orders["journaled"], dump
    assert orders["acked"] + orders["rejected"] == orders["sent"], dump
    assert orders["duplicate_client_order_ids"] == 0, dump
    assert recon["clients_checked"] == summary["clients"], dump
    assert recon["position_mismatches"] == 0, dump
    assert summary["invariants"] == {
        "unsettled_orders": 0,
        "duplicate_client_order_ids": 0,
        "position_mismatches": 0,
        "venue_books_unread": 0,
        "ticks_unaccounted": 0,
        "ok": True,
    }, dump
    for stage in ("signal", "sent", "ack"):
        assert summary["latency_ms"][stage]["count"] > 0, dump


def test_tiny_run_keeps_every_invariant(local_ray: None, tmp_path: Path) -> None:
    config = _tiny(tmp_path)
    summary = _run(config)
    _assert_invariants(summary)
    assert summary["ticks"]["rejected"] == 0
    # The store agrees with the engine: every journaled order is in it exactly once.
    store = open_store(config.store.url)
    try:
        stats = store.order_stats(summary["run_id"])
    finally:
        store.close()
    assert stats["journaled"] == summary["orders"]["journaled"]
    assert stats["duplicate_client_order_ids"] == 0
    # The tuner re-tuned every instrument while the run went on, and the store has every row.
    tuning = summary["tuning"]
    assert tuning["instruments_tuned"] == summary["instruments"], tuning
    assert tuning["errors"] == 0 and tuning["store_errors"] == 0, tuning
    assert tuning["swaps_sent"] == tuning["swaps"], tuning
    store = open_store(config.store.url)
    try:
        rows = store.retune_history(limit=100_000, run_id=summary["run_id"])
        live = store.current_params("trend")
    finally:
        store.close()
    assert len(rows) == tuning["runs"]
    assert sum(1 for r in rows if r.decision == "swap") == tuning["swaps"]
    assert len(live) == summary["instruments"]


def test_malformed_ticks_are_counted_and_the_run_goes_on(local_ray: None, tmp_path: Path) -> None:
    summary = _run(_tiny(tmp_path, malformed_fraction=0.02))
    _assert_invariants(summary)
    rejected = summary["ticks"]["rejected_by_reason"]
    assert summary["ticks"]["rejected"] > 0
    assert sum(1 for count in rejected.values() if count > 0) >= 3, rejected
