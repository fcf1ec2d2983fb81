"""The ledger: fills -> positions, cash, average cost and PnL per client, idempotently.

Cash, cost basis, fees and realised PnL are integer micro-dollars (µ$): a fill's notional
(`fill_qty * fill_price`) and its fee are rounded half-even to the µ$ once, on entry, and all
further arithmetic is exact (see `accounting`). A fill stream may deliver the same execution
twice after a reconnect, so each order's fill is applied once, by client order id; repeats are
counted and ignored. Each order is expected to arrive as one fill row (the venues fill market
orders whole); partial fills would need an execution id to be told apart from replays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tickwise.ledger.accounting import apply_fills
from tickwise.model.ids import MAX_INSTRUMENTS
from tickwise.model.orders import ExecutionBatch
from tickwise.model.positions import PositionBook

MICROS = 1_000_000
# Cost bases are whole µ$ held in float64, exact while below 2**53 µ$ (~$9 billion).
_EXACT_LIMIT = float(2**53)


def to_micros(usd: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """USD amounts to integer µ$, rounded half-even."""
    return np.rint(np.asarray(usd, dtype=np.float64) * MICROS).astype(np.int64)


@dataclass(frozen=True, slots=True)
class ClientSnapshot:
    """One client's account in the ledger; money in µ$ (`*_usd` properties for display)."""

    client: int
    cash_u: int
    realised_u: int
    unrealised_u: int
    fees_u: int
    positions: dict[int, float]
    avg_cost: dict[int, float]  # USD per unit, per instrument held

    @property
    def cash_usd(self) -> float:
        return self.cash_u / MICROS

    @property
    def realised_usd(self) -> float:
        return self.realised_u / MICROS

    @property
    def unrealised_usd(self) -> float:
        return self.unrealised_u / MICROS


class Ledger:
    """Positions, cash and PnL for a fixed set of clients, fed by execution batches."""

    def __init__(self, client_ids: npt.ArrayLike, initial_cash: npt.ArrayLike) -> None:
        ids = np.asarray(client_ids, dtype=np.int32).ravel()
        cash = np.asarray(initial_cash, dtype=np.float64).ravel()
        if ids.shape != cash.shape:
            raise ValueError("client_ids and initial_cash must have the same length")
        if np.unique(ids).size != ids.size:
            raise ValueError("client ids must be unique")
        if not np.isfinite(cash).all():
            raise ValueError("initial cash must be finite")
        order = np.argsort(ids, kind="stable")
        self._client = ids[order]
        self._initial_u = to_micros(cash[order])
        self._cash_u = self._initial_u.copy()
        self._realised_u = np.zeros(ids.size, np.int64)
        self._fees_u = np.zeros(ids.size, np.int64)
        self._book = PositionBook(self._client)
        # Same keys as `_book`, always: every update goes through `slots` on both.
        self._cost = PositionBook(self._client)
        self._mark = np.full(MAX_INSTRUMENTS, np.nan)
        self._applied: set[bytes] = set()
        self.counters = {"fills_applied": 0, "duplicate_fills": 0}

    # -- updates ---------------------------------------------------------------------------

    def apply(self, execs: ExecutionBatch) -> int:
        """Apply the fills in `execs` (rows with fill_qty > 0) in order; returns how many.

        A fill whose (client, client order id) was applied before, here or earlier in the same
        batch, is ignored and counted in `counters["duplicate_fills"]`. Raises ValueError, with
        nothing applied, if a fill is for a client this ledger does not keep.
        """
        fills = np.flatnonzero(execs.fill_qty > 0.0)
        if fills.size == 0:
            return 0
        client = execs.client[fills]
        rows = np.searchsorted(self._client, client)
        known = rows < self._client.size
        known[known] = self._client[rows[known]] == client[known]
        if not known.all():
            raise ValueError(f"fill for unknown client {int(client[~known][0])}")
        fresh = self._claim(client, execs.client_order_id[fills])
        self.counters["duplicate_fills"] += int(fills.size - fresh.sum())
        take = fills[fresh]
        if take.size == 0:
            return 0
        client, instrument = execs.client[take], execs.instrument[take]
        qty, price = execs.fill_qty[take], execs.fill_price[take]
        slot = self._book.slots(client, instrument)
        if not np.array_equal(self._cost.slots(client, instrument), slot):
            raise AssertionError("ledger cost and position books out of step")
        apply_fills(
            rows[fresh].astype(np.intp),
            slot,
            qty * execs.side[take],
            to_micros(qty * price),
            to_micros(execs.fee[take]),
            self._book.quantities,
            self._cost.quantities,
            self._cash_u,
            self._realised_u,
            self._fees_u,
        )
        if np.abs(self._cost.quantities).max(initial=0.0) >= _EXACT_LIMIT:
            raise OverflowError("a position's cost basis exceeds the exact float64 range")
        self.counters["fills_applied"] += int(take.size)
        return int(take.size)

    def mark(self, instrument: npt.ArrayLike, price: npt.ArrayLike) -> None:
        """Record the latest prices, for unrealised PnL (the last of repeated rows wins)."""
        inst = np.asarray(instrument, dtype=np.intp).ravel()
        px = np.asarray(price, dtype=np.float64).ravel()
        if inst.shape != px.shape:
            raise ValueError("instrument and price must have the same length")
        if inst.size and (inst.min() < 0 or inst.max() >= MAX_INSTRUMENTS):
            raise ValueError("instrument index out of range")
        self._mark[inst] = px

    def _claim(
        self, client: npt.NDArray[np.int32], coid: npt.NDArray[np.bytes_]
    ) -> npt.NDArray[np.bool_]:
        """True for fills not seen before; takes them into the applied set."""
        width = coid.dtype.itemsize
        raw = np.empty((coid.size, 4 + width), np.uint8)
        raw[:, :4] = client.astype(">i4").view(np.uint8).reshape(-1, 4)
        raw[:, 4:] = coid.view(np.uint8).reshape(-1, width)
        keys = raw.view(f"S{4 + width}").ravel()
        listed = keys.tolist()
        fresh = np.ones(keys.size, np.bool_)
        if len(set(listed)) != len(listed):
            _, first = np.unique(keys, return_index=True)
            fresh[:] = False
            fresh[first] = True
        again = self._applied.intersection(listed)
        if again:
            fresh &= ~np.isin(keys, np.array(list(again), keys.dtype))
        self._applied.update(listed)
        return fresh

    # -- reads -----------------------------------------------------------------------------

    @property
    def positions(self) -> PositionBook:
        """A copy of the position book (safe to hand to another process)."""
        return self._book.copy()

    @property
    def clients(self) -> npt.NDArray[np.int32]:
        return self._client.copy()

    def unrealised_u(self) -> npt.NDArray[np.int64]:
        """Unrealised PnL per client (µ$, rows in client order); unmarked positions count 0."""
        client, instrument, qty = self._book.items()
        cost = self._cost.get(client, instrument)
        mark = self._mark[instrument]
        marked = np.isfinite(mark)
        pnl = np.where(marked, to_micros(qty * np.where(marked, mark, 0.0)) - cost, 0.0)
        rows = np.searchsorted(self._client, client)
        return np.rint(np.bincount(rows, weights=pnl, minlength=self._client.size)).astype(np.int64)

    def snapshot(self, client: int) -> ClientSnapshot:
        row = int(np.searchsorted(self._client, client))
        if row >= self._client.size or self._client[row] != client:
            raise KeyError(f"client {client} is not in this ledger")
        positions = self._book.of_client(client)
        inst = np.fromiter(positions, np.uint32, count=len(positions))
        qty = np.fromiter(positions.values(), np.float64, count=len(positions))
        ids = np.full(inst.size, client, np.int32)
        cost = self._cost.get(ids, inst)
        mark = self._mark[inst.astype(np.intp)]
        marked = np.isfinite(mark)
        unrealised = np.where(marked, to_micros(qty * np.where(marked, mark, 0.0)) - cost, 0.0)
        return ClientSnapshot(
            client=client,
            cash_u=int(self._cash_u[row]),
            realised_u=int(self._realised_u[row]),
            unrealised_u=int(np.rint(unrealised.sum())),
            fees_u=int(self._fees_u[row]),
            positions=positions,
            avg_cost={
                int(i): float(c / MICROS / q) for i, c, q in zip(inst, cost, qty, strict=True)
            },
        )

    def cost_basis_u(self) -> npt.NDArray[np.int64]:
        """Total cost basis per client (µ$, rows in client order)."""
        client, _, cost = self._cost.items()
        rows = np.searchsorted(self._client, client)
        return np.rint(np.bincount(rows, weights=cost, minlength=self._client.size)).astype(
            np.int64
        )

    def totals(self) -> dict[str, float | int]:
        """Whole-book figures for the run summary (USD as floats, counts as ints)."""
        return {
            "clients": int(self._client.size),
            "positions": len(self._book),
            "cash_usd": int(self._cash_u.sum()) / MICROS,
            "cost_basis_usd": int(self.cost_basis_u().sum()) / MICROS,
            "realised_pnl_usd": int(self._realised_u.sum()) / MICROS,
            "unrealised_pnl_usd": int(self.unrealised_u().sum()) / MICROS,
            "fees_usd": int(self._fees_u.sum()) / MICROS,
            "fills_applied": self.counters["fills_applied"],
            "duplicate_fills": self.counters["duplicate_fills"],
        }
