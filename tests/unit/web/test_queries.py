"""The query facade over a small store and a live state fed with snapshots."""

from __future__ import annotations

from pathlib import Path

import pytest
from web_world import T0, World, make_world

from tickwise.web.queries import NotFoundError, Queries, QueryError


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


@pytest.fixture
def q(world: World) -> Queries:
    return world.queries()


def test_status_tells_the_run_and_its_size(q: Queries) -> None:
    status = q.status()
    assert status["run_id"] == "run-1" and status["state"] == "running"
    assert status["instruments"] == 10 and status["clients"] == 300
    assert status["store"] == "sqlite" and status["halted"] is False


def test_throughput_points_are_rates_between_snapshots(q: Queries) -> None:
    out = q.throughput(since=0.0)
    (point,) = out["points"]
    assert point["ticks_per_s"] == pytest.approx(500.0)
    assert point["orders_per_s"] == pytest.approx(20.0)
    assert out["totals"]["ticks"] == 600 + 395 + 500
    assert out["rejects_by_reason"]["below_min_notional"] == 3
    assert out["rejects_by_reason"]["tick_bad_price"] == 3
    assert q.throughput(since=T0 + 5)["points"] == []


def test_instrument_search_puts_prefix_matches_first_and_pages(q: Queries) -> None:
    everything = q.instruments(limit=500)
    assert everything["total"] == 10
    symbol = everything["instruments"][3]["symbol"]
    found = q.instruments(q=symbol.lower())
    assert found["instruments"][0]["symbol"] == symbol
    assert len(q.instruments(limit=4, offset=8)["instruments"]) == 2


def test_an_instrument_shows_its_signals_and_fills(q: Queries) -> None:
    symbol = q.registry[0].symbol
    one = q.instrument(symbol)
    assert [s["side"] for s in one["signals"]] == ["buy", "sell"]
    assert one["signals"][0]["orders"] == 2  # signal 1 went to two clients
    assert [(f["price"], f["qty"]) for f in one["fills"]] == [(100.0, 5.0), (110.0, 2.0)]
    assert one["strategy"] == "trend"
    with pytest.raises(NotFoundError):
        q.instrument("NO-SUCH")


def test_client_search_finds_the_exact_id_first_then_prefixes(q: Queries) -> None:
    out = q.clients("12")
    ids = [c["id"] for c in out["clients"]]
    assert ids[0] == 12
    assert all(str(i).startswith("12") for i in ids) and 120 in ids
    assert out["total"] == len([i for i in range(300) if str(i).startswith("12")])
    alpaca = q.clients(venue="alpaca", limit=500)["clients"]
    assert alpaca and all(c["venue"] == "alpaca" for c in alpaca)
    with pytest.raises(QueryError):
        q.clients(venue="nyse")


def test_a_client_shows_the_live_ledger_orders_and_an_equity_curve(q: Queries) -> None:
    one = q.client(1)
    assert one["cash"] == pytest.approx(9000.0) and one["realised_pnl"] == pytest.approx(20.0)
    assert one["fees"] == pytest.approx(0.7)
    (position,) = one["positions"]
    assert position["qty"] == 3.0 and position["last_price"] == 110.0
    assert position["value"] == pytest.approx(330.0)
    assert [o["side"] for o in one["orders"]] == ["sell", "buy"]  # newest first
    assert one["open_orders"] == []
    assert len(one["equity_curve"]) == 2
    assert q.client(2)["open_orders"][0]["state"] == "acked"
    with pytest.raises(NotFoundError):
        q.client(10_000)


def test_without_a_run_a_client_is_read_from_the_recorded_fills(world: World) -> None:
    world.live = None  # type: ignore[assignment]
    q = world.queries()
    one = q.client(1)
    (position,) = one["positions"]
    assert position["qty"] == 3.0 and position["avg_cost"] == pytest.approx(100.0)
    assert q.status()["state"] == "finished" and q.throughput()["points"] == []


def test_venues_are_summed_over_their_lanes_with_the_desk_cap(q: Queries) -> None:
    venues = {v["venue"]: v for v in q.venues()["venues"]}
    assert venues["alpaca"]["lanes"] == 2 and venues["binance"]["lanes"] == 1
    assert venues["alpaca"]["sent"] == 30 + 20 + 10
    assert venues["alpaca"]["rate_limit_per_s"] == 50.0
    assert venues["binance"]["rate_limit_per_s"] is None
    assert venues["alpaca"]["requests_per_s"] == pytest.approx(20.0)


def test_the_kill_switch_halts_and_resumes_a_scope(q: Queries) -> None:
    halted = q.halt("client:007", "fat finger", True, "dashboard")["halt"]
    assert halted["scope"] == "client:7" and halted["cancel_open"] is True
    assert q.status()["halted"] is True and q.client(7)["halted"] is True
    assert q.resume("client:7", "checked", "dashboard")["resumed"] == 1
    assert q.status()["halted"] is False
    assert [h["action"] for h in q.halts()["history"]][:2] == ["resume", "halt"]
    with pytest.raises(QueryError):
        q.halt("everything", "typo", False, "dashboard")
    with pytest.raises(QueryError):
        q.halt("global", "  ", False, "dashboard")


def test_actors_are_counted_per_kind_with_their_restarts(q: Queries) -> None:
    kinds = {a["kind"]: a for a in q.cluster()["actors"]}
    assert kinds["shard"]["count"] == 2 and kinds["shard"]["restarts"] == 1
    assert kinds["router"]["count"] == 3 and "tuner" in kinds
