"""Validation at the door: bad ticks are rejected and counted, never raised on."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tickwise.data.corruption import corrupt
from tickwise.data.validation import REJECT_REASONS, TickValidator
from tickwise.model.ticks import TickBatch, TickKind


def _batch(rows: list[tuple[int, int, float, float, int]]) -> TickBatch:
    inst, ts, price, size, kind = zip(*rows, strict=True)
    return TickBatch.from_arrays(inst, ts, price, size, kind)


def test_each_kind_of_bad_tick_is_counted_under_its_reason() -> None:
    v = TickValidator(3)
    good = v.validate(
        _batch(
            [
                (0, 100, 10.0, 5.0, TickKind.TRADE),
                (5, 101, 10.0, 5.0, TickKind.TRADE),  # unknown instrument
                (0, 102, 10.0, 5.0, 9),  # unknown kind
                (0, 103, float("nan"), 5.0, TickKind.BID),
                (0, 104, float("inf"), 5.0, TickKind.BID),
                (0, 105, 0.0, 5.0, TickKind.ASK),
                (0, 106, -1.0, 5.0, TickKind.ASK),
                (0, 107, 10.0, -1.0, TickKind.TRADE),
                (0, 108, 10.0, float("nan"), TickKind.TRADE),
                (0, 109, 10.0, 0.0, TickKind.TRADE),  # a trade of nothing
                (0, 110, 10.0, 0.0, TickKind.BID),  # an empty side: accepted
                (0, 90, 10.0, 5.0, TickKind.TRADE),  # earlier than the last accepted
                (0, 110, 10.0, 0.0, TickKind.BID),  # replay of the last accepted
                (0, 110, 10.0, 0.0, TickKind.ASK),  # same time, other side: fine
            ]
        )
    )
    assert good.ts_event.tolist() == [100, 110, 110]
    assert v.counts == {
        "unknown_instrument": 1,
        "unknown_kind": 1,
        "bad_price": 2,
        "non_positive_price": 2,
        "bad_size": 3,
        "out_of_order": 1,
        "duplicate": 1,
    }
    assert v.accepted == 3 and v.rejected == 11


def test_state_carries_across_batches() -> None:
    v = TickValidator(2)
    v.validate(_batch([(1, 1_000, 5.0, 1.0, TickKind.TRADE)]))
    late = v.validate(
        _batch([(1, 999, 5.0, 1.0, TickKind.TRADE), (1, 1_000, 5.0, 1.0, TickKind.TRADE)])
    )
    assert len(late) == 0
    assert v.counts["out_of_order"] == 1 and v.counts["duplicate"] == 1
    # Another instrument has its own clock.
    assert len(v.validate(_batch([(0, 5, 5.0, 1.0, TickKind.TRADE)]))) == 1


def test_a_clean_batch_passes_untouched() -> None:
    batch = _batch([(0, 1, 1.0, 1.0, 0), (1, 1, 1.0, 1.0, 1), (0, 2, 1.0, 1.0, 2)])
    v = TickValidator(2)
    assert len(v.validate(batch)) == 3 and v.rejected == 0


def test_corrupted_feed_damage_is_all_caught() -> None:
    rng = np.random.default_rng(1)
    n = 5_000
    clean = TickBatch.from_arrays(
        rng.integers(0, 50, n),
        np.arange(n) * 1_000,
        rng.uniform(1, 100, n),
        rng.uniform(1, 10, n),
        rng.integers(0, 3, n),
    )
    damaged = corrupt(clean, 0.05, rng, 50)
    v = TickValidator(50)
    good = v.validate(damaged)
    assert v.accepted + v.rejected == len(damaged)
    assert v.rejected > 0.04 * n
    assert np.isfinite(good.price).all() and (good.price > 0).all() and (good.size >= 0).all()


@settings(max_examples=200, deadline=None)
@given(
    inst=hnp.arrays(np.int64, st.shared(st.integers(0, 60), key="n"), elements=st.integers(-3, 8)),
    ts=hnp.arrays(np.int64, st.shared(st.integers(0, 60), key="n"), elements=st.integers(0, 6)),
    price=hnp.arrays(np.float64, st.shared(st.integers(0, 60), key="n")),
    size=hnp.arrays(np.float64, st.shared(st.integers(0, 60), key="n")),
    kind=hnp.arrays(np.int64, st.shared(st.integers(0, 60), key="n"), elements=st.integers(-1, 4)),
    batches=st.integers(1, 3),
)
def test_any_input_is_split_into_accepted_and_counted_rejects(
    inst: np.ndarray,
    ts: np.ndarray,
    price: np.ndarray,
    size: np.ndarray,
    kind: np.ndarray,
    batches: int,
) -> None:
    n_instruments = 5
    v = TickValidator(n_instruments)
    last: dict[int, tuple[int, int, float, float]] = {}
    total = 0
    for _ in range(batches):
        batch = TickBatch(inst, ts, ts.copy(), price, size, kind)  # deliberately odd dtypes
        good = v.validate(batch)
        total += len(inst)
        assert v.accepted + v.rejected == total
        for j in range(len(good)):
            i, t = int(good.instrument[j]), int(good.ts_event[j])
            p, s, k = float(good.price[j]), float(good.size[j]), int(good.kind[j])
            assert 0 <= i < n_instruments and k in (0, 1, 2)
            assert np.isfinite(p) and p > 0 and np.isfinite(s) and s >= 0
            assert not (k == TickKind.TRADE and s == 0)
            if i in last:
                lt, lk, lp, ls = last[i]
                assert t >= lt
                assert (t, k, p, s) != (lt, lk, lp, ls)
            last[i] = (t, k, p, s)
    assert set(v.counts) == {r.label for r in REJECT_REASONS}
    assert sum(v.counts.values()) == v.rejected
