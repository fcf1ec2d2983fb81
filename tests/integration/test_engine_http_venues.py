"""A `tiny` run whose orders travel the venues' real wire protocols to simulator servers."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tickwise.config import Config, load
from tickwise.engine.controller import Engine

pytestmark = pytest.mark.integration


def _tiny_http(tmp_path: Path, faults: str = "") -> Config:
    config = load(tier="tiny")
    return replace(
        config,
        run=replace(config.run, duration_s=12.0, live_panel=False),
        venues=replace(config.venues, mode="http", faults=faults, rate_limits=False),
        tuning=replace(config.tuning, enabled=False),
        store=replace(config.store, url=f"sqlite:///{tmp_path / 'tw.sqlite'}"),
    )


def _run(config: Config) -> dict[str, Any]:
    engine = Engine(config)
    try:
        engine.start()
        return engine.run()
    finally:
        engine.shutdown()


def test_http_run_keeps_every_invariant_through_injected_faults(
    local_ray: None, tmp_path: Path
) -> None:
    # Orders whose answer is lost (unknown outcome, dropped connection) must be resolved by
    # client order id: none lost, none doubled, positions equal at the end.
    summary = _run(_tiny_http(tmp_path, faults="unknown=0.02,drop=0.01,5xx=0.02"))
    dump = json.dumps(summary, indent=1, default=float)
    orders, recon = summary["orders"], summary["reconciliation"]
    assert summary["drained"], dump
    assert orders["journaled"] > 0, dump
    assert orders["sent"] == orders["journaled"], dump
    assert orders["acked"] + orders["rejected"] == orders["sent"], dump
    assert orders["duplicate_client_order_ids"] == 0, dump
    assert recon["clients_checked"] == summary["clients"], dump
    assert recon["position_mismatches"] == 0, dump
    venues = summary["venues"]
    assert venues["mode"] == "http", dump
    assert {s["venue"] for s in venues["servers"]} == {"alpaca", "binance", "etrade"}, dump
    received = sum(s["orders_received"] for s in venues["servers"])
    # Every order that traded reached a server over the wire (E*Trade refuses some at preview,
    # before they reach matching).
    assert received >= orders["acked"], dump
    injected = sum(sum(s["faults_injected"].values()) for s in venues["servers"])
    assert injected > 0, dump  # the faults really happened
