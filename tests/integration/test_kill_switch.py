"""The kill switch on a running engine: a global halt stops new orders from the next batch of
signals on, and a resume lets them flow again; refusals are counted as `halted`."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tickwise.config import Config, load
from tickwise.engine.controller import Engine
from tickwise.engine.halts import halt, resume
from tickwise.store import open_store
from tickwise.store.sqlite import SQLiteStore, executions_path

pytestmark = pytest.mark.integration


def _orders_signalled(path: Path, run_id: str, after_ns: int, before_ns: int) -> int:
    with SQLiteStore(path) as store:
        store.expand_journal()  # the orders the ledger has not yet written out
    with sqlite3.connect(executions_path(str(path))) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM orders WHERE run_id = ? AND ts_signal > ? AND ts_signal < ?",
            (run_id, after_ns, before_ns),
        ).fetchone()
    return int(row[0])


def _run_while(config: Config, operate: Callable[[], None]) -> dict[str, Any]:
    """Run the engine while `operate` works the kill switch from another thread."""
    engine = Engine(config)
    try:
        engine.start()
        operator = threading.Thread(target=operate)
        operator.start()
        summary = engine.run()
        operator.join()
    finally:
        engine.shutdown()
    return summary


def test_a_global_halt_stops_new_orders_until_resumed(local_ray: None, tmp_path: Path) -> None:
    path = tmp_path / "tw.sqlite"
    config = load(tier="tiny")
    config = replace(
        config,
        run=replace(config.run, duration_s=15.0, live_panel=False),
        tuning=replace(config.tuning, enabled=False),
        store=replace(config.store, url=f"sqlite:///{path}"),
    )
    marks: dict[str, int] = {}

    def operate() -> None:
        store = open_store(config.store.url)
        try:
            time.sleep(5.0)
            halt(store, "global", "chaos drill", actor="test")
            marks["halted"] = time.time_ns()  # committed: every later batch sees it
            time.sleep(4.0)
            marks["resuming"] = time.time_ns()
            resume(store, "global", actor="test")
        finally:
            store.close()

    summary = _run_while(config, operate)
    run_id = summary["run_id"]
    assert _orders_signalled(path, run_id, 0, marks["halted"]) > 0  # orders flowed before
    # No order from a signal sized after the halt was committed, until the resume.
    assert _orders_signalled(path, run_id, marks["halted"], marks["resuming"]) == 0
    assert _orders_signalled(path, run_id, marks["resuming"], time.time_ns()) > 0
    assert summary["orders"]["not_sent_by_allocator"]["halted"] > 0
    assert summary["reconciliation"]["position_mismatches"] == 0


def test_a_halt_that_cancels_open_orders_cancels_them_at_the_venues(
    local_ray: None, tmp_path: Path
) -> None:
    # Venues that answer after 3 s hold every order of the last 3 s open: a global halt with
    # cancel_open cancels them there, and the ledger still equals the venues afterwards.
    path = tmp_path / "tw.sqlite"
    config = load(tier="tiny")
    slow = {f"{v}_delay_ms": 3_000.0 for v in ("alpaca", "binance", "etrade")}
    config = replace(
        config,
        run=replace(config.run, duration_s=10.0, live_panel=False),
        venues=replace(config.venues, **slow),
        tuning=replace(config.tuning, enabled=False),
        store=replace(config.store, url=f"sqlite:///{path}"),
    )

    def operate() -> None:
        store = open_store(config.store.url)
        try:
            time.sleep(6.0)
            halt(store, "global", "venue outage drill", cancel_open=True, actor="test")
        finally:
            store.close()

    summary = _run_while(config, operate)
    store = open_store(config.store.url)
    try:
        by_state = store.order_stats(summary["run_id"])["by_state"]
    finally:
        store.close()
    assert by_state.get("canceled", 0) > 0, by_state
    assert by_state.get("filled", 0) > 0, by_state  # what was done before the halt stays done
    assert summary["reconciliation"]["position_mismatches"] == 0
