"""StrategyShard: live/step parity, batching, look-ahead, hot swap, checkpoints and signals."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickwise.model.ids import signal_ids
from tickwise.model.signals import SignalBatch
from tickwise.model.ticks import TickBatch, TickKind
from tickwise.strategy import get_strategy
from tickwise.strategy.calibration import random_walk_ticks
from tickwise.strategy.checkpoint import snapshot_from_bytes, snapshot_to_bytes
from tickwise.strategy.kernels import WEIGHT
from tickwise.strategy.shard import StrategyShard

S = 1_000_000_000
NOW = 1_800_000_000_000_000_000
FAST = {
    "trend": {"fast_s": 5.0, "slow_s": 30.0, "band": 0.0001, "min_hold_s": 5.0},
    "mean_reversion": {"lookback_s": 30.0, "entry_z": 1.5, "exit_z": 0.0, "min_hold_s": 5.0},
    "breakout": {"lookback_s": 30.0, "entry": 0.0001, "stop": 0.0005, "min_hold_s": 5.0},
}
NAMES = ("trend", "mean_reversion", "breakout")


def fast_params(name: str) -> npt.NDArray[np.float64]:
    return get_strategy(name).params.from_mapping(FAST[name])


def merged_tape(
    seconds: float, instruments: tuple[int, ...], seed: int = 0, resolution_ns: int = 1_000_000
) -> TickBatch:
    """Several instruments' random walks interleaved in time order (volatile, so it trades)."""
    tapes = [
        random_walk_ticks(
            seconds, vol_per_sqrt_s=4e-4, instrument=i, seed=seed + i, resolution_ns=resolution_ns
        )
        for i in instruments
    ]
    tape = TickBatch.concat(tapes)
    return tape.take(np.argsort(tape.ts_event, kind="stable"))


def make_shard(instruments: tuple[int, ...] = (3, 7, 9)) -> StrategyShard:
    names = [NAMES[i % 3] for i in range(len(instruments))]
    return StrategyShard(instruments, names, [fast_params(n) for n in names])


def run_in_batches(shard: StrategyShard, tape: TickBatch, cuts: list[int]) -> SignalBatch:
    bounds = [0, *sorted(set(cuts)), len(tape)]
    out = [shard.on_batch(tape.take(np.arange(a, b)), NOW) for a, b in itertools.pairwise(bounds)]
    return SignalBatch.concat(out)


def assert_same_signals(a: SignalBatch, b: SignalBatch) -> None:
    for field in SignalBatch.__slots__:
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


def test_shard_matches_the_step_function_run_tick_by_tick() -> None:
    tape = merged_tape(600, (3, 7, 9))
    shard = make_shard()
    signals = run_in_batches(shard, tape, [len(tape) // 3])
    assert len(signals) > 10
    for instrument, name in zip((3, 7, 9), NAMES, strict=True):
        spec = get_strategy(name)
        params = fast_params(name)
        state = spec.new_states(params)[0]
        mine = tape.take(np.flatnonzero(tape.instrument == instrument))
        changes_ts, changes_w = [], []
        weight = 0.0
        for price, size, kind, ts in zip(
            mine.price, mine.size, mine.kind, mine.ts_event, strict=True
        ):
            w = spec.step(state, params, float(price), float(size), int(kind), int(ts))
            if w != weight:
                changes_ts.append(int(ts))
                changes_w.append(w)
            weight = w
        got = signals.take(signals.instrument == instrument)
        assert len(got) >= 2
        np.testing.assert_array_equal(got.ts_event, changes_ts)
        np.testing.assert_array_equal(got.target_weight, changes_w)
        np.testing.assert_array_equal(shard.get_state(instrument), state)


@settings(max_examples=15, deadline=None)
@given(cuts=st.lists(st.integers(0, 30_000), max_size=12))
def test_signals_do_not_depend_on_how_the_tape_is_cut_into_batches(cuts: list[int]) -> None:
    tape = TAPE_FOR_CUTS
    whole = run_in_batches(make_shard(), tape, [])
    pieces = run_in_batches(make_shard(), tape, [c % len(tape) for c in cuts])
    assert len(whole) > 5
    assert_same_signals(whole, pieces)


TAPE_FOR_CUTS = merged_tape(300, (3, 7, 9), seed=40)


def test_a_signal_does_not_change_when_later_ticks_are_dropped() -> None:
    tape = merged_tape(600, (3, 7, 9), seed=2)
    full = run_in_batches(make_shard(), tape, [5000, 20000])
    assert len(full) > 10
    for cut_s in (150, 320, 480):
        cutoff = tape.ts_event[0] + cut_s * S
        prefix = tape.take(np.flatnonzero(tape.ts_event < cutoff))
        early = run_in_batches(make_shard(), prefix, [len(prefix) // 2])
        assert_same_signals(early, full.take(full.ts_event < cutoff))


def test_signals_carry_the_tick_ids_times_and_last_quotes() -> None:
    tape = merged_tape(600, (3, 7, 9), seed=4, resolution_ns=1)  # no shared timestamps
    shard = make_shard()
    signals = shard.on_batch(tape, NOW)
    assert len(signals) > 0 and shard.counters()["signals_emitted"] == len(signals)
    np.testing.assert_array_equal(
        signals.signal_id, signal_ids(signals.instrument, signals.ts_event)
    )
    assert (signals.ts_signal == NOW).all()
    for i in range(len(signals)):
        at = np.flatnonzero(
            (tape.instrument == signals.instrument[i]) & (tape.ts_event <= signals.ts_event[i])
        )
        before = tape.take(at)
        last_bid = before.price[before.kind == TickKind.BID][-1]
        last_ask = before.price[before.kind == TickKind.ASK][-1]
        assert (signals.bid[i], signals.ask[i]) == (last_bid, last_ask)
        assert signals.price[i] == before.price[-1] and before.kind[-1] == TickKind.TRADE


def test_without_quotes_the_signal_bid_and_ask_fall_back_to_the_trade_price() -> None:
    tape = random_walk_ticks(600, vol_per_sqrt_s=4e-4, seed=8)
    trades = tape.take(np.flatnonzero(tape.kind == TickKind.TRADE))
    shard = StrategyShard([0], "trend", [fast_params("trend")])
    signals = shard.on_batch(trades, NOW)
    assert len(signals) > 0
    np.testing.assert_array_equal(signals.bid, signals.price)
    np.testing.assert_array_equal(signals.ask, signals.price)


def test_ticks_of_other_instruments_are_counted_and_ignored() -> None:
    tape = merged_tape(300, (3, 5, 7, 9, 4000), seed=6)
    shard = make_shard()
    alone = make_shard()
    signals = shard.on_batch(tape, NOW)
    owned = np.isin(tape.instrument, [3, 7, 9])
    expected = alone.on_batch(tape.take(np.flatnonzero(owned)), NOW)
    assert_same_signals(signals, expected)
    counters = shard.counters()
    assert counters["ticks_ignored"] == int((~owned).sum())
    assert counters["ticks_processed"] == int(owned.sum())
    assert counters["batches"] == 1


def test_hot_swap_keeps_the_state_and_uses_the_new_params_from_the_next_tick() -> None:
    tape = merged_tape(600, (3, 7, 9), seed=9)
    half = len(tape) // 2
    first, second = tape.take(np.arange(half)), tape.take(np.arange(half, len(tape)))
    new = get_strategy("trend").params.from_mapping({"fast_s": 8.0, "slow_s": 20.0})

    shard = make_shard()
    shard.on_batch(first, NOW)
    before = shard.get_state(3)
    shard.set_params(3, new)
    np.testing.assert_array_equal(shard.get_state(3), before)
    np.testing.assert_array_equal(shard.get_params(3), new)
    swapped = shard.on_batch(second, NOW)

    # Reference: the same state, stepped by hand with the new params.
    spec = get_strategy("trend")
    state = before.copy()
    mine = second.take(np.flatnonzero(second.instrument == 3))
    weights = [
        spec.step(state, new, float(p), float(s), int(k), int(t))
        for p, s, k, t in zip(mine.price, mine.size, mine.kind, mine.ts_event, strict=True)
    ]
    np.testing.assert_array_equal(shard.get_state(3), state)
    flips = np.flatnonzero(np.diff(np.concatenate([[before[WEIGHT]], weights])) != 0)
    np.testing.assert_array_equal(
        swapped.take(swapped.instrument == 3).ts_event, mine.ts_event[flips]
    )


def test_rewarm_keeps_weight_and_quotes_and_waits_a_full_window_before_trading() -> None:
    tape = merged_tape(900, (3,), seed=12)
    shard = StrategyShard([3], "trend", [fast_params("trend")])
    first = tape.take(np.flatnonzero(tape.ts_event < tape.ts_event[0] + 400 * S))
    shard.on_batch(first, NOW)
    before = shard.get_state(3)
    slow = get_strategy("trend").params.from_mapping({"slow_s": 200.0, "min_hold_s": 5.0})
    shard.set_params(3, slow, rewarm=True)
    after = shard.get_state(3)
    assert after[WEIGHT] == before[WEIGHT]
    np.testing.assert_array_equal(after[:3], before[:3])  # bid, ask, last trade
    rest = tape.take(np.flatnonzero(tape.ts_event >= first.ts_event[-1] + 1))
    signals = shard.on_batch(rest, NOW)
    first_decision = rest.ts_event[rest.kind == TickKind.TRADE][0]
    assert (signals.ts_event >= first_decision + 200 * S).all()


def test_set_params_rejects_bad_values_and_unknown_instruments() -> None:
    shard = make_shard()
    with pytest.raises(ValueError, match="'fast_s'"):
        shard.set_params(3, [0.1, 30.0, 0.0, 5.0])
    with pytest.raises(ValueError, match="constraint"):
        shard.set_params(3, [60.0, 30.0, 0.0, 5.0])
    with pytest.raises(KeyError, match="instrument 4 is not in this shard"):
        shard.set_params(4, fast_params("trend"))
    np.testing.assert_array_equal(shard.get_params(3), fast_params("trend"))


def test_construction_checks_names_and_lengths() -> None:
    with pytest.raises(KeyError, match="unknown strategy 'momentum'"):
        StrategyShard([1, 2], ["trend", "momentum"])
    with pytest.raises(ValueError, match="appears twice"):
        StrategyShard([1, 1], "trend")
    with pytest.raises(ValueError, match="2 instruments but 1 strategy names"):
        StrategyShard([1, 2], ["trend"])
    shard = StrategyShard([5, 2], "breakout")
    np.testing.assert_array_equal(shard.get_params(2), get_strategy("breakout").defaults())
    assert shard.strategy_of(5) == "breakout"


def test_restore_from_a_snapshot_continues_exactly_where_the_shard_left_off() -> None:
    tape = merged_tape(600, (3, 7, 9), seed=14)
    half = len(tape) // 2
    first, second = tape.take(np.arange(half)), tape.take(np.arange(half, len(tape)))
    live = make_shard()
    live.on_batch(first, NOW)
    checkpoint = live.snapshot()
    expected = live.on_batch(second, NOW)

    restarted = StrategyShard.from_snapshot(checkpoint)
    np.testing.assert_array_equal(restarted.get_params(7), fast_params("mean_reversion"))
    assert_same_signals(restarted.on_batch(second, NOW), expected)
    assert restarted.counters() == live.counters()
    np.testing.assert_array_equal(restarted.target_weights(), live.target_weights())


def test_a_checkpoint_through_bytes_resumes_exactly_and_junk_is_refused() -> None:
    tape = merged_tape(600, (3, 7, 9), seed=15)
    half = len(tape) // 2
    first, second = tape.take(np.arange(half)), tape.take(np.arange(half, len(tape)))
    live = make_shard()
    live.on_batch(first, NOW)
    payload = snapshot_to_bytes(live.snapshot())
    expected = live.on_batch(second, NOW)
    restarted = make_shard()  # a fresh shard of the same layout, as Ray restarts one
    restarted.restore(snapshot_from_bytes(payload))
    assert_same_signals(restarted.on_batch(second, NOW), expected)
    np.testing.assert_array_equal(restarted.target_weights(), live.target_weights())
    for junk in (b"", b"not a checkpoint", payload[: len(payload) // 2]):
        with pytest.raises(ValueError, match="not a strategy checkpoint"):
            snapshot_from_bytes(junk)


def test_snapshot_is_a_copy_and_restore_rejects_another_layout() -> None:
    shard = make_shard()
    snap = shard.snapshot()
    snap["families"]["trend"]["params"][0, 0] = 99.0
    assert shard.get_params(3)[0] == FAST["trend"]["fast_s"]
    with pytest.raises(ValueError, match="other instruments"):
        make_shard((3, 7, 10)).restore(snap)
    snap["version"] = 0
    with pytest.raises(ValueError, match="version"):
        shard.restore(snap)


def test_an_empty_batch_or_one_without_owned_ticks_emits_nothing() -> None:
    shard = make_shard()
    assert len(shard.on_batch(TickBatch.empty(), NOW)) == 0
    foreign = random_walk_ticks(60, instrument=1)
    assert len(shard.on_batch(foreign, NOW)) == 0
    assert shard.counters()["ticks_ignored"] == len(foreign)
