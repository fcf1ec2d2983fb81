"""What a venue refuses on receipt, for a whole batch at once, and its client order id rule.

`static_rejects` is everything decidable from the order and the venue's static rules (symbol,
increments, minimum notional, id format, account); buying power and positions depend on the
fills before it and are decided in arrival order by `fills.fill_in_arrival_order`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tickwise.model.instruments import VENUE_RULES, InstrumentRegistry, Venue
from tickwise.model.orders import OrderBatch, RejectReason
from tickwise.venues.sim.config import DuplicateIdScope


class VenueRulebook:
    """A venue's static rules as per-instrument columns, looked up for a batch at a time."""

    def __init__(self, venue: Venue, registry: InstrumentRegistry, qty_tolerance: float) -> None:
        self.venue = venue
        self.n_instruments = len(registry)
        self.tradable = registry.tradable_at(venue)
        self.increment = registry.quantity_increment(venue)
        self.min_notional = registry.venue_min_notional(venue)
        self.qty_tolerance = qty_tolerance
        rules = VENUE_RULES[venue]
        self._max_id_len = rules.max_client_order_id_len
        self._id_alnum_only = rules.client_order_id_alnum_only

    def static_rejects(
        self, orders: OrderBatch, known_account: npt.NDArray[np.bool_]
    ) -> npt.NDArray[np.int8]:
        """Reject reason per order (NONE where it passes); the first failing rule wins."""
        n = len(orders)
        reason = np.zeros(n, np.int8)

        def flag(bad: npt.NDArray[np.bool_], why: RejectReason) -> None:
            reason[bad & (reason == RejectReason.NONE)] = why

        flag(~known_account, RejectReason.VENUE_ERROR)
        flag(~self._well_formed_ids(orders.client_order_id), RejectReason.VENUE_ERROR)
        price_ok = np.isfinite(orders.price) & (orders.price > 0.0)
        side_ok = (orders.side == 1) | (orders.side == -1)
        flag(~(price_ok & side_ok), RejectReason.VENUE_ERROR)
        inst = orders.instrument.astype(np.intp)
        listed = inst < self.n_instruments
        safe = np.where(listed, inst, 0)
        flag(~(listed & self.tradable[safe]), RejectReason.UNKNOWN_SYMBOL)
        qty = orders.qty
        inc = self.increment[safe]
        with np.errstate(invalid="ignore", divide="ignore"):
            steps = np.round(qty / inc)
            off_grid = np.abs(qty - steps * inc) > self.qty_tolerance * np.maximum(qty, inc)
        flag(~np.isfinite(qty) | (steps < 1) | off_grid, RejectReason.INVALID_QUANTITY_INCREMENT)
        with np.errstate(invalid="ignore"):
            flag(qty * orders.price < self.min_notional[safe], RejectReason.BELOW_MIN_NOTIONAL)
        return reason

    def _well_formed_ids(self, coid: npt.NDArray[np.bytes_]) -> npt.NDArray[np.bool_]:
        if coid.size == 0:
            return np.ones(0, np.bool_)
        width = coid.dtype.itemsize
        chars = coid.view(np.uint8).reshape(coid.size, width)
        present = chars != 0
        length = present.sum(axis=1)
        ok = (length >= 1) & (length <= self._max_id_len)
        if self._id_alnum_only:
            alnum = (
                ((chars >= ord("0")) & (chars <= ord("9")))
                | ((chars >= ord("A")) & (chars <= ord("Z")))
                | ((chars >= ord("a")) & (chars <= ord("z")))
            )
            ok &= (alnum | ~present).all(axis=1)
        return np.asarray(ok, dtype=np.bool_)


def account_keys(client: npt.NDArray[np.int32], coid: npt.NDArray[np.bytes_]) -> npt.NDArray:
    """One fixed-width bytes key per (account, client order id): ids are unique per account."""
    width = coid.dtype.itemsize
    raw = np.empty((coid.size, 4 + width), np.uint8)
    raw[:, :4] = client.astype(">i4").view(np.uint8).reshape(-1, 4)
    raw[:, 4:] = coid.view(np.uint8).reshape(-1, width)
    return raw.view(f"S{4 + width}").ravel()


class ClientOrderIdRule:
    """The venue's duplicate-id rule: remembers the ids in scope and flags repeats.

    The ids in scope are a set of bytes: one membership test per order, which measures at a
    fraction of a microsecond each, cheaper than keeping a sorted array that only grows.
    """

    def __init__(self, scope: DuplicateIdScope) -> None:
        self.scope = scope
        self._ids: set[bytes] = set()

    def claim(self, keys: npt.NDArray, eligible: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        """Flag duplicates among the eligible keys and take the others into scope."""
        duplicate = np.zeros(keys.size, np.bool_)
        rows = np.flatnonzero(eligible)
        if rows.size == 0:
            return duplicate
        batch = keys[rows]
        listed = batch.tolist()
        repeat_in_batch = np.zeros(rows.size, np.bool_)
        if len(set(listed)) != len(listed):
            _, first = np.unique(batch, return_index=True)
            repeat_in_batch[:] = True
            repeat_in_batch[first] = False
        seen = self._ids
        again = seen.intersection(listed)
        known = np.isin(batch, np.array(list(again), batch.dtype)) if again else False
        duplicate[rows] = known | repeat_in_batch
        seen.update(listed)
        return duplicate

    def release(self, keys: npt.NDArray) -> None:
        """The orders with these keys are done: under OPEN_ORDERS their ids are free again."""
        if self.scope is DuplicateIdScope.OPEN_ORDERS and keys.size:
            self._ids.difference_update(keys.tolist())

    def __len__(self) -> int:
        return len(self._ids)
