"""Latency histograms and counters that every stage keeps and the engine merges.

Histograms use fixed log-spaced buckets (50 per decade from 1 µs to 1,000 s), so they are
cheap to record into with numpy, exact to merge across actors (add the counts) and give
percentiles within about 5 % of the true value. The maximum is kept exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

_BUCKETS_PER_DECADE = 50
_MIN_NS = 1_000.0  # 1 µs
_DECADES = 9  # up to 1,000 s
EDGES_NS: npt.NDArray[np.float64] = _MIN_NS * np.power(
    10.0, np.arange(_DECADES * _BUCKETS_PER_DECADE + 1) / _BUCKETS_PER_DECADE
)


@dataclass(slots=True)
class LatencyHistogram:
    """A mergeable latency histogram over nanosecond durations."""

    counts: npt.NDArray[np.int64] = field(
        default_factory=lambda: np.zeros(len(EDGES_NS) + 1, dtype=np.int64)
    )
    max_ns: int = 0
    total: int = 0

    def record(self, durations_ns: npt.ArrayLike) -> None:
        d = np.asarray(durations_ns, dtype=np.int64).ravel()
        if d.size == 0:
            return
        idx = np.searchsorted(EDGES_NS, d, side="right")
        self.counts += np.bincount(idx, minlength=self.counts.size)
        self.max_ns = max(self.max_ns, int(d.max()))
        self.total += int(d.size)

    def merge(self, other: LatencyHistogram) -> None:
        self.counts += other.counts
        self.max_ns = max(self.max_ns, other.max_ns)
        self.total += other.total

    def percentile_ns(self, q: float) -> float:
        """The q-th percentile (0..100), at the upper edge of its bucket (never optimistic)."""
        if self.total == 0:
            return 0.0
        rank = max(1, int(np.ceil(self.total * q / 100.0)))
        bucket = int(np.searchsorted(np.cumsum(self.counts), rank))
        upper = EDGES_NS[bucket] if bucket < len(EDGES_NS) else float(self.max_ns)
        return float(min(upper, self.max_ns))

    def since(self, earlier: LatencyHistogram | None) -> LatencyHistogram:
        """What was recorded after `earlier`, a past state of this cumulative histogram (all
        of it when there is none, or when this one began again: its actor restarted). The
        maximum stays the cumulative one, an upper bound."""
        recent = LatencyHistogram(self.counts.copy(), self.max_ns, self.total)
        if earlier is not None and not (self.counts < earlier.counts).any():
            recent.counts -= earlier.counts
            recent.total = int(recent.counts.sum())
        return recent

    def summary_ms(self) -> dict[str, float]:
        return {
            "p50": round(self.percentile_ns(50) / 1e6, 3),
            "p99": round(self.percentile_ns(99) / 1e6, 3),
            "max": round(self.max_ns / 1e6, 3),
            "count": self.total,
        }

    def to_dict(self) -> dict[str, object]:
        nz = np.flatnonzero(self.counts)
        return {"buckets": nz.tolist(), "counts": self.counts[nz].tolist(), "max_ns": self.max_ns}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> LatencyHistogram:
        hist = cls()
        buckets = np.asarray(data["buckets"], dtype=np.int64)
        hist.counts[buckets] = np.asarray(data["counts"], dtype=np.int64)
        hist.max_ns = int(data["max_ns"])  # type: ignore[call-overload]
        hist.total = int(hist.counts.sum())
        return hist


class StageTimer:
    """Named latency histograms of one actor, e.g. {"signal": ..., "alloc": ...}."""

    def __init__(self, stages: Iterable[str] = ()) -> None:
        self.histograms: dict[str, LatencyHistogram] = {s: LatencyHistogram() for s in stages}

    def record(self, stage: str, durations_ns: npt.ArrayLike) -> None:
        hist = self.histograms.get(stage)
        if hist is None:
            hist = self.histograms[stage] = LatencyHistogram()
        hist.record(durations_ns)

    def merge(self, other: StageTimer) -> None:
        for stage, hist in other.histograms.items():
            mine = self.histograms.get(stage)
            if mine is None:
                mine = self.histograms[stage] = LatencyHistogram()
            mine.merge(hist)


def merge_counters(parts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in parts:
        for key, value in part.items():
            out[key] = out.get(key, 0) + int(value)
    return out
