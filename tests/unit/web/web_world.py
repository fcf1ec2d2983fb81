"""A small store with clients, orders and fills, and a live state fed with snapshots: what
the facade and the API are tested against (no Ray)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from snapshots import full_snapshot

from tickwise.data.universe import build_universe
from tickwise.ledger.ledger import ClientSnapshot
from tickwise.model.ids import client_order_ids
from tickwise.model.instruments import AssetClass
from tickwise.model.orders import ExecutionBatch, OrderBatch, OrderState
from tickwise.store import SQLiteStore, Store, seed_clients
from tickwise.web.live import LiveState, RunInfo
from tickwise.web.queries import Queries

T0 = 1_790_000_000.0  # the fake clock's epoch seconds


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def orders(signal: int, clients: list[int], instrument: int, side: int, qty: float, price: float,
           ts_s: float) -> OrderBatch:  # fmt: skip
    n = len(clients)
    ts = np.full(n, int(ts_s * 1e9), np.int64)
    return OrderBatch(
        client_order_id=client_order_ids(np.full(n, signal), clients),
        signal_id=np.full(n, signal, np.int64),
        client=np.array(clients, np.int32),
        venue=np.zeros(n, np.uint8),
        instrument=np.full(n, instrument, np.uint32),
        side=np.full(n, side, np.int8),
        qty=np.full(n, qty),
        price=np.full(n, price),
        ts_event=ts,
        ts_recv=ts,
        ts_signal=ts,
        ts_alloc=ts,
        ts_journal=ts,
        ts_sent=np.zeros(n, np.int64),
    )


@dataclass
class World:
    store: Store
    url: str
    live: LiveState
    clock: Clock
    accounts: dict[int, ClientSnapshot]

    def queries(self) -> Queries:
        return Queries(
            self.store,
            store_url=self.url,
            live=self.live,
            strategies={AssetClass.EQUITY: "trend", AssetClass.CRYPTO: "trend"},
            clock=self.clock,
        )


def make_world(tmp_path: Path, clients: int = 300) -> World:
    """300 clients over 10 instruments; client 1 bought 5 of instrument 0 at 100 then sold 2
    at 110; client 2's buy is acknowledged and still open; a live state with two snapshots a
    second apart."""
    path = tmp_path / "tickwise.sqlite"
    store = SQLiteStore(path)
    registry = build_universe(8, 2, seed=3)
    store.save_instruments(registry)
    seed_clients(store, registry, clients, 5)
    buy = orders(1, [1, 2], 0, 1, 5.0, 100.0, T0 - 60)
    sell = orders(2, [1], 0, -1, 2.0, 110.0, T0 - 30)
    store.journal_orders(buy, "run-1")
    store.journal_orders(sell, "run-1")
    ack = (int((T0 - 59) * 1e9),)
    store.record_executions(
        ExecutionBatch.answering(
            buy.take(np.array([0])), OrderState.FILLED, fill_qty=5.0, fill_price=100.0,
            fee=0.5, ts_ack=ack,
        )
    )  # fmt: skip
    store.record_executions(  # client 2's buy is working at the venue
        ExecutionBatch.answering(buy.take(np.array([1])), OrderState.ACKED, ts_ack=ack)
    )
    store.record_executions(
        ExecutionBatch.answering(
            sell, OrderState.FILLED, fill_qty=2.0, fill_price=110.0, fee=0.2,
            ts_ack=(int((T0 - 29) * 1e9),),
        )
    )  # fmt: skip
    clock = Clock()
    accounts = {
        1: ClientSnapshot(1, 9_000_000_000, 20_000_000, 5_000_000, 700_000, {0: 3.0}, {0: 100.0})
    }
    live = LiveState(account=accounts.get, cluster=lambda: {"nodes": [], "resources": {}},
                     clock=clock)  # fmt: skip
    live.started(
        RunInfo("run-1", "tiny", 15.0, len(registry), clients, f"sqlite:///{path}",
                router_venues=("alpaca", "alpaca", "binance"), venue_rate_caps={"alpaca": 50.0})
    )  # fmt: skip
    first = full_snapshot()
    live.record(1.0, first)
    clock.now += 1.0
    live.record(2.0, grown(first))
    return World(store, f"sqlite:///{path}", live, clock, accounts)


def grown(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The same snapshot a second later: 500 more ticks processed, 20 more orders sent."""
    out = {**snapshot}
    shard = dict(snapshot["shards"][0])
    shard["counters"] = {
        **shard["counters"],
        "ticks_processed": shard["counters"]["ticks_processed"] + 500,
    }
    router = dict(snapshot["routers"][0])
    router["counters"] = {
        **router["counters"],
        "orders_sent": router["counters"]["orders_sent"] + 20,
    }
    out["shards"] = [shard, *snapshot["shards"][1:]]
    out["routers"] = [router, *snapshot["routers"][1:]]
    return out
