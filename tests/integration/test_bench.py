"""`tickwise bench` at the tiny tier: the fan-out stress reaches every follower of the core
portfolios, and the report carries every figure WORKLOAD.md asks for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tickwise.cli import main
from tickwise.store import open_store

pytestmark = pytest.mark.integration


def test_the_tiny_bench_fans_one_signal_out_to_every_follower(
    local_ray: None, tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    store_dir = tmp_path / "store"
    status = main(
        ["bench", "--tier", "tiny", "--duration", "24", "--stress-at", "6",
         "--dir", str(store_dir), "--out", str(out)]
    )  # fmt: skip
    result = json.loads(out.read_text())

    assert status == 0, result["correctness"]
    assert result["run"]["drained"] is True
    store = open_store(f"sqlite:///{store_dir / 'bench.sqlite'}")
    try:
        portfolios = store.load_portfolios()
        book = store.load_client_book()
    finally:
        store.close()
    core = {p.portfolio_id for p in portfolios if p.name.startswith("Core ")}
    followers = {int(c) for c, p in zip(book.sub_client, book.sub_portfolio, strict=True)
                 if int(p) in core}  # fmt: skip
    assert len(followers) == len(book)  # every client follows a core portfolio
    buy, sell = result["fanout"]
    assert buy["signal"] == "buy all" and sell["signal"] == "sell all"
    for stress in (buy, sell):
        assert stress["orders"] > 0 and stress["answered"] == stress["orders"]
        assert 0 < stress["last_sized_ms"] <= stress["last_journaled_ms"]
        assert 0 < stress["first_journaled_ms"] <= stress["last_journaled_ms"]
        assert stress["first_journaled_ms"] <= stress["first_sent_ms"] <= stress["last_sent_ms"]
        assert stress["last_journaled_ms"] <= stress["last_sent_ms"] <= stress["last_ack_ms"]
    assert sell["orders"] >= 0.9 * len(book)  # the sell reaches (nearly) every holder
    cost, throughput = result["cost"], result["throughput"]
    assert cost["cpu_s_per_million_ticks"] > 0 and cost["peak_rss_mb"] > 100
    assert throughput["ticks_per_s"] > 0 and throughput["orders_per_s"] > 0
    assert result["machine"]["cores"] >= 1 and result["config"]["clients"]["all_follow"]
    for figure in ("signal (ts_signal - ts_recv)", "sent (ts_sent - ts_recv)"):
        assert result["latency_ms"][figure]["count"] > 0
