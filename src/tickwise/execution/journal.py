"""The write-ahead order journal: the only way orders reach a venue router.

`Journal.write` commits a batch of orders to the store in one transaction before anything is
sent, and returns only the rows it inserted: an order whose client order id is already journaled
(a replayed signal, a retry after a crash) is counted as a duplicate and dropped, so it can never
be sent twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from tickwise.model.orders import OrderBatch
from tickwise.store.base import Store


class Journal:
    """Write-ahead journal of one run's orders in `store`.

    `clock` (ns) stamps the rows returned by `write` with the moment their commit returned, the
    time the orders became durable; the stored rows keep `now_ns`, when the write began.
    """

    def __init__(self, store: Store, run_id: str, clock: Callable[[], int] = time.time_ns) -> None:
        if not run_id:
            raise ValueError("a journal needs a run id")
        self.store = store
        self.run_id = run_id
        self._clock = clock
        self.counters: dict[str, int] = {"orders_journaled": 0, "duplicate_client_order_ids": 0}

    def write(self, orders: OrderBatch, now_ns: int) -> OrderBatch:
        """Journal `orders` (committed when this returns); the rows inserted, in batch order."""
        if len(orders) == 0:
            return orders
        orders.ts_journal[:] = now_ns
        inserted = self.store.journal_orders(orders, self.run_id)
        durable_ns = self._clock()
        fresh = orders if inserted.all() else orders.take(np.flatnonzero(inserted))
        fresh.ts_journal[:] = durable_ns
        n = len(fresh)
        self.counters["orders_journaled"] += n
        self.counters["duplicate_client_order_ids"] += len(orders) - n
        return fresh

    @property
    def duplicates(self) -> int:
        return self.counters["duplicate_client_order_ids"]
