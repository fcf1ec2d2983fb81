"""The re-tuning audit trail on every back end: round trips, ordering, what is live."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_helpers import INTEGRITY_ERRORS, Backend

from tickwise.store import Store
from tickwise.tuning.records import Retune

T0 = 1_700_000_000_000_000_000
S = 1_000_000_000
NAMES = ("fast_s", "slow_s")


def retune(
    symbol: str = "SPY",
    at_s: int = 0,
    decision: str = "keep",
    live: tuple[float, ...] = (5.0, 60.0),
    winner: tuple[float, ...] = (10.0, 60.0),
    live_score: float = 0.1,
    winner_score: float = 0.3,
    names: tuple[str, ...] = NAMES,
    **changes: object,
) -> Retune:
    ts = T0 + at_s * S
    row = Retune(
        run_id="run-1",
        instrument=7,
        symbol=symbol,
        strategy="trend",
        ts_ns=ts,
        train_from_ns=ts - 3600 * S,
        train_to_ns=ts - 900 * S,
        valid_from_ns=ts - 900 * S,
        valid_to_ns=ts,
        param_names=names,
        live_params=live,
        winner_params=winner,
        live_score=live_score,
        winner_score=winner_score,
        winner_train_score=0.5,
        winner_trades=42,
        sets_evaluated=16,
        decision=decision,
        reason=f"{decision} at {at_s}",
    )
    return replace(row, **changes) if changes else row  # type: ignore[arg-type]


def same(a: Retune, b: Retune) -> bool:
    """Equality that treats NaN scores as equal."""

    def key(r: Retune) -> tuple[object, ...]:
        scores = (r.live_score, r.winner_score, r.winner_train_score)
        return (
            replace(r, live_score=0.0, winner_score=0.0, winner_train_score=0.0),
            tuple("nan" if math.isnan(x) else x for x in scores),
        )

    return key(a) == key(b)


# --- records ----------------------------------------------------------------------------------


def test_a_record_takes_lists_and_numpy_values_and_checks_its_shape() -> None:
    import numpy as np

    r = retune(live=[np.float32(5), 60], winner=[np.int64(10), 60.0])  # type: ignore[arg-type]
    assert r.live_params == (5.0, 60.0) and r.winner_params == (10.0, 60.0)
    assert r.live == {"fast_s": 5.0, "slow_s": 60.0}
    assert r.winner == {"fast_s": 10.0, "slow_s": 60.0}
    with pytest.raises(ValueError, match="decision 'maybe'"):
        retune(decision="maybe")
    with pytest.raises(ValueError, match="3 live_params values for 2"):
        retune(live=(1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match="a swap must carry"):
        retune(decision="swap", winner=())
    with pytest.raises(ValueError, match="window ends before"):
        retune(valid_to_ns=T0 - 10**15)
    assert retune(decision="failed", winner=()).winner == {}


# --- round trips and ordering -----------------------------------------------------------------


def test_every_field_survives_a_round_trip(store: Store) -> None:
    rows = [
        retune("SPY", 0, "swap"),
        retune("BTC/USD", 5, "keep", reason="margin not met: +0.12 < 0.25", run_id="run-2"),
        retune("SPY", 9, "failed", winner=(), reason="error: ValueError [x]"),
    ]
    assert store.record_retunes(rows) == 3
    back = store.retune_history(limit=10)
    assert back == list(reversed(rows))


def test_nan_and_infinite_scores_are_stored_as_missing_and_read_back_as_nan(
    backend: Backend,
) -> None:
    store = backend.open()
    row = retune(live_score=math.nan, winner_score=math.inf, winner_train_score=-math.inf)
    store.record_retunes([row])
    (back,) = store.retune_history("SPY")
    assert math.isnan(back.live_score)
    assert math.isnan(back.winner_score)
    assert math.isnan(back.winner_train_score)
    assert back.winner_params == row.winner_params
    raw = backend.execute("SELECT live_score, winner_score, winner_train_score FROM retunes")
    assert raw == [(None, None, None)]


def test_history_is_newest_first_per_symbol_and_run_with_a_limit(store: Store) -> None:
    # Recorded out of time order, and two rows at the same instant: the later-recorded is newer.
    store.record_retunes([retune("SPY", 30), retune("SPY", 10), retune("QQQ", 20)])
    store.record_retunes([retune("SPY", 30, "swap", reason="second at 30", run_id="run-2")])
    spy = store.retune_history("SPY")
    assert [(r.ts_ns - T0) // S for r in spy] == [30, 30, 10]
    assert spy[0].reason == "second at 30"
    assert [r.symbol for r in store.retune_history(limit=2)] == ["SPY", "SPY"]
    assert [r.reason for r in store.retune_history(run_id="run-2")] == ["second at 30"]
    assert store.retune_history("SPY", run_id="run-1", limit=1)[0].reason == "keep at 30"
    assert store.retune_history("AAPL") == []
    with pytest.raises(ValueError, match="limit"):
        store.retune_history("SPY", limit=0)


def test_recording_nothing_records_nothing(store: Store) -> None:
    assert store.record_retunes([]) == 0
    assert store.retune_history() == []
    assert store.current_params() == {}


def test_a_batch_with_a_bad_row_records_nothing(store: Store) -> None:
    good = retune()
    bad = replace(good, decision="keep")
    object.__setattr__(bad, "decision", "maybe")  # past the record's own check: the table's
    with pytest.raises(INTEGRITY_ERRORS):
        store.record_retunes([good, bad])
    assert store.retune_history() == []


_symbols = itertools.count()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    scores=st.lists(
        st.tuples(st.floats(allow_nan=True), st.floats(allow_nan=True, allow_infinity=True)),
        min_size=1,
        max_size=6,
    ),
    params=st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=2, max_size=2),
)
def test_any_scores_and_parameters_round_trip(
    store: Store, scores: list[tuple[float, float]], params: list[float]
) -> None:
    symbol = f"S{next(_symbols)}"  # a symbol of its own per example
    rows = [
        retune(symbol, i, "swap", winner=tuple(params), live_score=a, winner_score=b)
        for i, (a, b) in enumerate(scores)
    ]
    store.record_retunes(rows)
    back = store.retune_history(symbol, limit=len(rows))
    assert len(back) == len(rows)
    for got, want in zip(back, reversed(rows), strict=True):
        assert same(got, replace(
            want,
            live_score=want.live_score if math.isfinite(want.live_score) else math.nan,
            winner_score=want.winner_score if math.isfinite(want.winner_score) else math.nan,
        ))  # fmt: skip


# --- what is live -----------------------------------------------------------------------------


def test_current_params_come_from_the_latest_swap_and_every_decision_is_counted(
    store: Store,
) -> None:
    store.record_retunes(
        [
            retune("SPY", 0, "swap", live=(5, 60), winner=(10, 60), winner_score=0.5),
            retune("SPY", 10, "swap", live=(10, 60), winner=(20, 120), winner_score=0.7),
            retune("SPY", 20, "keep", live=(20, 120), winner=(3, 30), live_score=0.4),
            retune("SPY", 30, "failed", live=(20, 120), winner=(), live_score=math.nan),
            retune("QQQ", 5, "swap", live=(5, 60), winner=(8, 90), winner_score=0.9),
            retune("BTC/USD", 7, "keep", live=(5, 60), winner=(6, 60), live_score=0.2),
        ]
    )
    current = store.current_params()
    assert sorted(current) == ["BTC/USD", "QQQ", "SPY"]

    spy = current["SPY"]
    assert spy.params == {"fast_s": 20.0, "slow_s": 120.0}  # the later swap, not the keep's winner
    assert spy.swapped_at_ns == T0 + 10 * S
    assert spy.last_retune_ns == T0 + 30 * S
    assert spy.last_decision == "failed"
    assert spy.retunes == 4
    assert math.isnan(spy.last_score)  # the failed re-tune measured nothing
    assert spy.strategy == "trend" and spy.instrument == 7

    qqq = current["QQQ"]  # last row a swap: its winner's validation score is what is live
    assert qqq.params == {"fast_s": 8.0, "slow_s": 90.0}
    assert qqq.last_score == 0.9 and qqq.retunes == 1 and qqq.last_decision == "swap"

    btc = current["BTC/USD"]  # never swapped: the live parameters of its latest re-tune
    assert btc.swapped_at_ns is None
    assert btc.params == {"fast_s": 5.0, "slow_s": 60.0}
    assert btc.last_score == 0.2 and btc.retunes == 1


def test_a_keep_after_a_swap_scores_the_live_parameters(store: Store) -> None:
    store.record_retunes(
        [
            retune("SPY", 0, "swap", winner=(10, 60), winner_score=0.5),
            retune("SPY", 10, "keep", live=(10, 60), live_score=0.45, winner_score=0.55),
        ]
    )
    spy = store.current_params()["SPY"]
    assert spy.last_score == 0.45 and spy.params == {"fast_s": 10.0, "slow_s": 60.0}


def test_current_params_of_one_strategy(store: Store) -> None:
    store.record_retunes(
        [
            retune("SPY", 0, "swap", winner=(10, 60)),
            retune("SPY", 10, "swap", (1.0,), (0.5,), names=("z",), strategy="revert"),
            retune("QQQ", 5, "keep"),
        ]
    )
    assert store.current_params()["SPY"].strategy == "revert"
    trend = store.current_params("trend")
    assert sorted(trend) == ["QQQ", "SPY"]
    assert trend["SPY"].params == {"fast_s": 10.0, "slow_s": 60.0}
    assert trend["SPY"].retunes == 1
    assert list(store.current_params("revert")) == ["SPY"]
    assert store.current_params("nope") == {}
