"""Candidate parameter sets for re-tuning: a low-discrepancy sample of a search space.

A search space names, per parameter, the range the tuner may explore (`"fast_s=2:120,..."`),
usually narrower than the strategy's declared bounds: a time constant longer than the tuning
window cannot be judged on it. Parameters not named keep their default. Time constants (names
ending in `_s`) are sampled on a log scale, the rest uniformly; integer parameters are rounded.

Points come from a Halton sequence with a seeded random shift: evenly spread in every dimension
(a grid of 512 points in 4 dimensions would give each axis under 5 values), deterministic for a
seed. Sets that break the strategy's constraint are dropped and more points drawn; the
strategy's defaults are always the first set.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from tickwise.strategy.api import StrategySpec

DEFAULT_SEARCH: dict[str, str] = {
    "trend": "fast_s=2:120,slow_s=10:600,band=0:0.001,min_hold_s=2:120",
    "mean_reversion": "lookback_s=10:600,entry_z=0.5:3,exit_z=-0.5:1,min_hold_s=2:120",
    "breakout": "lookback_s=10:600,entry=0:0.002,stop=0.0002:0.005,min_hold_s=2:120",
}
_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)


class SearchSpaceError(ValueError):
    """A search space that cannot be read, or that has no valid point."""


def parse_search(spec: StrategySpec, text: str) -> dict[str, tuple[float, float]]:
    """`"name=low:high,..."` -> {name: (low, high)}, checked against the strategy's bounds."""
    out: dict[str, tuple[float, float]] = {}
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        name, sep, rng = (s.strip() for s in item.partition("="))
        parts = rng.split(":")
        if not sep or len(parts) != 2:
            raise SearchSpaceError(f"search item {item!r} must look like name=low:high")
        try:
            spec.params.index(name)
        except ValueError as exc:
            raise SearchSpaceError(f"strategy {spec.name!r}: {exc}") from None
        try:
            low, high = float(parts[0]), float(parts[1])
        except ValueError:
            raise SearchSpaceError(f"search item {item!r}: bounds must be numbers") from None
        p = spec.params.params[spec.params.index(name)]
        if not (math.isfinite(low) and math.isfinite(high) and low <= high):
            raise SearchSpaceError(f"search item {item!r}: need finite low <= high")
        if low < p.low or high > p.high:
            raise SearchSpaceError(
                f"search item {item!r} leaves {name}'s bounds [{p.low:g}, {p.high:g}]"
            )
        out[name] = (low, high)
    return out


def halton(n: int, dims: int, seed: int) -> npt.NDArray[np.float64]:
    """n points of the Halton sequence in [0, 1)^dims, shifted by a seeded random offset."""
    if dims > len(_PRIMES):
        raise SearchSpaceError(f"at most {len(_PRIMES)} tuned parameters")
    out = np.empty((n, dims))
    index = np.arange(1, n + 1)
    for d in range(dims):
        base = _PRIMES[d]
        value = np.zeros(n)
        f = 1.0
        i = index.copy()
        while np.any(i > 0):
            f /= base
            value += f * (i % base)
            i //= base
        out[:, d] = value
    shift = np.random.default_rng(seed).random(dims)
    return np.asarray((out + shift) % 1.0, np.float64)


def sample_sets(
    spec: StrategySpec, n: int, search: str | None = None, seed: int = 0
) -> npt.NDArray[np.float64]:
    """`n` valid parameter sets (defaults first) spread over the search space."""
    if n < 1:
        raise SearchSpaceError("the tuner needs at least one parameter set")
    ranges = parse_search(spec, DEFAULT_SEARCH.get(spec.name, "") if search is None else search)
    names = list(ranges)
    defaults = spec.defaults()
    rows = [defaults]
    drawn = 0
    attempts = 0
    while len(rows) < n and attempts < 8:
        want = 2 * (n - len(rows)) + 16
        u = halton(drawn + want, max(1, len(names)), seed)[drawn:]
        drawn += want
        attempts += 1
        cand = np.tile(defaults, (want, 1))
        for d, name in enumerate(names):
            low, high = ranges[name]
            col = spec.params.index(name)
            if name.endswith("_s") and low > 0:
                cand[:, col] = np.exp(np.log(low) + u[:, d] * (np.log(high) - np.log(low)))
            else:
                cand[:, col] = low + u[:, d] * (high - low)
            if spec.params.params[col].integer:
                cand[:, col] = np.round(cand[:, col])
        cand = np.round(cand, 6)
        for row in cand:
            if spec.constraint is None or spec.constraint(row):
                rows.append(row)
                if len(rows) == n:
                    break
    sets = np.unique(np.stack(rows), axis=0)
    if len(sets) < min(n, 2) and n > 1:
        raise SearchSpaceError(
            f"strategy {spec.name!r}: the search space {search!r} has no valid point "
            "besides the defaults (check its ranges against the strategy's constraint)"
        )
    # keep the defaults first, then the sample in drawing order
    order = [int(np.flatnonzero((sets == r).all(axis=1))[0]) for r in rows]
    first = list(dict.fromkeys(order))
    return np.ascontiguousarray(spec.validate(sets[first]))
