"""Deliberately malformed ticks, for proving that validation at the door holds.

`corrupt(batch, fraction, rng)` damages about `fraction` of a batch's ticks the ways real feeds
go wrong: NaN, zero and negative prices, negative sizes, unknown instruments, ticks replayed
out of order, and exact duplicates. The engine can run with it switched on
(`[market] malformed_fraction`), so a live run shows that bad ticks are counted, never passed on.
"""

from __future__ import annotations

import numpy as np

from tickwise.model.ticks import TickBatch

DAMAGE_KINDS = ("nan_price", "zero_price", "negative_price", "negative_size", "bad_instrument")


def corrupt(
    batch: TickBatch, fraction: float, rng: np.random.Generator, n_instruments: int
) -> TickBatch:
    """A copy of `batch` with about `fraction` of its ticks damaged, plus replayed duplicates."""
    n = len(batch)
    if n == 0 or fraction <= 0.0:
        return batch
    out = batch.take(np.arange(n))
    hit = np.flatnonzero(rng.random(n) < fraction)
    if hit.size == 0:
        return out
    how = rng.integers(0, len(DAMAGE_KINDS) + 2, size=hit.size)
    out.price[hit[how == 0]] = np.nan
    out.price[hit[how == 1]] = 0.0
    out.price[hit[how == 2]] = -np.abs(out.price[hit[how == 2]])
    out.size[hit[how == 3]] = -1.0
    out.instrument[hit[how == 4]] = np.uint32(n_instruments + 17)
    # Replays: a copy of a good tick re-sent later (a duplicate), or stamped back in time.
    replay = hit[how >= len(DAMAGE_KINDS)]
    late = out.take(replay)
    back = how[how >= len(DAMAGE_KINDS)] == len(DAMAGE_KINDS) + 1
    late.ts_event[back] -= 1_000_000_000
    merged = TickBatch.concat([out, late])
    return merged.take(np.argsort(merged.ts_recv, kind="stable"))
