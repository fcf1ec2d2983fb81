"""Shared pieces of the venue tests: a small instrument universe and an order-batch builder.

A plain module (not `conftest`), so test files import it by a name no other test folder uses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from tickwise.model.ids import client_order_ids
from tickwise.model.instruments import AssetClass, Instrument, InstrumentRegistry, Venue
from tickwise.model.orders import OrderBatch

AAPL, BRK, BTC, ETH = 0, 1, 2, 3
T0 = 1_700_000_000_000_000_000  # a fixed "now" in ns; tests move a fake clock from here
MS = 1_000_000

OrderFactory = Callable[..., OrderBatch]


def small_registry() -> InstrumentRegistry:
    return InstrumentRegistry(
        [
            Instrument(AAPL, "AAPL", AssetClass.EQUITY, 0.01, 1e-6, 0.0, fractionable=True),
            Instrument(BRK, "BRK.B", AssetClass.EQUITY, 0.01, 1e-6, 0.0, fractionable=False),
            Instrument(BTC, "BTC/USD", AssetClass.CRYPTO, 0.01, 1e-5, 0.0, fractionable=True),
            Instrument(ETH, "ETH/USD", AssetClass.CRYPTO, 0.01, 1e-4, 0.0, fractionable=True),
        ]
    )


def orders(
    client: Sequence[int],
    instrument: Sequence[int],
    side: Sequence[int],
    qty: Sequence[float],
    price: Sequence[float],
    *,
    signal: Sequence[int] | int = 1,
    venue: Venue = Venue.ALPACA,
    ts_sent: int = T0,
    coid: Sequence[bytes] | None = None,
) -> OrderBatch:
    n = len(client)
    sig = np.broadcast_to(np.asarray(signal, np.int64), (n,)).copy()
    ids = client_order_ids(sig, np.asarray(client)) if coid is None else np.array(coid, "S18")
    return OrderBatch(
        client_order_id=ids,
        signal_id=sig,
        client=np.asarray(client, np.int32),
        venue=np.full(n, venue, np.uint8),
        instrument=np.asarray(instrument, np.uint32),
        side=np.asarray(side, np.int8),
        qty=np.asarray(qty, np.float64),
        price=np.asarray(price, np.float64),
        ts_event=np.full(n, ts_sent - 5 * MS, np.int64),
        ts_recv=np.full(n, ts_sent - 4 * MS, np.int64),
        ts_signal=np.full(n, ts_sent - 3 * MS, np.int64),
        ts_alloc=np.full(n, ts_sent - 2 * MS, np.int64),
        ts_journal=np.full(n, ts_sent - 1 * MS, np.int64),
        ts_sent=np.full(n, ts_sent, np.int64),
    )
