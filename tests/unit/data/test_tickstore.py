"""Tick store: round trips, windows, merge order, pruning, compaction, bad files, recording."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickwise.config import ConfigError, load, ticks_dir
from tickwise.data.recorder import TickRecorder
from tickwise.data.replay import replay_registry
from tickwise.data.tickstore import COMPACT_JOURNAL, DAY_NS, TickStore, TickStoreError
from tickwise.model.instruments import InstrumentRegistry
from tickwise.model.ticks import TickBatch, TickKind

SEC = 1_000_000_000
HOUR = 3600 * SEC
DAY0 = int(dt.datetime(2024, 8, 8, tzinfo=dt.UTC).timestamp()) * SEC  # 2024-08-08 00:00 UTC
SYMBOLS = ["AAA", "BBB", "BTC/USD"]


@pytest.fixture
def registry() -> InstrumentRegistry:
    return replay_registry(SYMBOLS)  # AAA=0, BBB=1, BTC/USD=2


@pytest.fixture
def store(tmp_path: Path) -> TickStore:
    return TickStore(tmp_path / "ticks")


def _batch(
    instrument: list[int] | npt.NDArray[np.int64],
    ts: list[int] | npt.NDArray[np.int64],
    price: list[float] | npt.NDArray[np.float64] | None = None,
) -> TickBatch:
    n = len(ts)
    return TickBatch.from_arrays(
        instrument,
        ts,
        price if price is not None else 100.0 + np.arange(n),
        np.arange(1, n + 1, dtype=np.float64),
        np.arange(n) % 3,
        ts_recv=np.asarray(ts, dtype=np.int64) + 7,
    )


def _rows(batch: TickBatch) -> list[tuple[int, int, int, float, float, int]]:
    return list(
        zip(
            batch.instrument.tolist(),
            batch.ts_event.tolist(),
            batch.ts_recv.tolist(),
            batch.price.tolist(),
            batch.size.tolist(),
            batch.kind.tolist(),
            strict=True,
        )
    )


def _everything(store: TickStore, registry: InstrumentRegistry) -> TickBatch:
    return store.read(registry.symbols(), 0, 2**62, registry)


def test_round_trip_over_two_days_and_three_symbols(
    store: TickStore, registry: InstrumentRegistry
) -> None:
    ts = [DAY0 + 5 * SEC, DAY0 + DAY_NS + 1, DAY0 + 2 * SEC, DAY0 + 3 * SEC, DAY0 + DAY_NS + 9]
    batch = _batch([0, 0, 1, 2, 2], ts)
    assert store.write(batch, registry) == 5
    back = _everything(store, registry)
    assert _rows(back) == _rows(batch.take(np.argsort(batch.ts_event, kind="stable")))
    assert back.ts_event.dtype == np.int64 and back.kind.dtype == np.uint8
    assert store.symbols() == SYMBOLS
    assert store.dates() == [dt.date(2024, 8, 8), dt.date(2024, 8, 9)]
    assert store.dates("BBB") == [dt.date(2024, 8, 8)]
    assert store.span("AAA") == (DAY0 + 5 * SEC, DAY0 + DAY_NS + 1)
    assert store.span("ZZZ") is None
    assert store.count() == 5 and store.count("BTC/USD") == 2
    assert store.count(date=dt.date(2024, 8, 9)) == 2
    assert (store.root / "date=2024-08-08" / "symbol=BTC%2FUSD").is_dir()


def test_a_window_includes_its_start_and_excludes_its_end(
    store: TickStore, registry: InstrumentRegistry
) -> None:
    ts = DAY0 + np.arange(10) * HOUR
    store.write(_batch(np.zeros(10, np.int64), ts), registry)
    window = store.read(["AAA"], DAY0 + 2 * HOUR, DAY0 + 5 * HOUR, registry)
    assert window.ts_event.tolist() == [DAY0 + 2 * HOUR, DAY0 + 3 * HOUR, DAY0 + 4 * HOUR]
    assert len(store.read(["AAA"], DAY0 + 5 * HOUR, DAY0 + 5 * HOUR, registry)) == 0
    one_ns = store.read_symbol("AAA", DAY0 + 9 * HOUR, DAY0 + 9 * HOUR + 1)
    assert one_ns.ts_event.tolist() == [DAY0 + 9 * HOUR] and one_ns.symbol == "AAA"


def test_a_window_across_midnight_joins_both_days(
    store: TickStore, registry: InstrumentRegistry
) -> None:
    ts = [DAY0 + DAY_NS - 2, DAY0 + DAY_NS - 1, DAY0 + DAY_NS, DAY0 + DAY_NS + 1]
    store.write(_batch([1, 1, 1, 1], ts), registry)
    assert len(store.dates("BBB")) == 2
    window = store.read_symbol("BBB", DAY0 + DAY_NS - 1, DAY0 + DAY_NS + 1)
    assert window.ts_event.tolist() == ts[1:3]


def test_symbols_merge_in_time_order_and_ties_keep_the_requested_symbol_order(
    store: TickStore, registry: InstrumentRegistry
) -> None:
    store.write(_batch([0, 0, 0], [DAY0 + 1, DAY0 + 5, DAY0 + 5]), registry)
    store.write(_batch([1, 1], [DAY0 + 3, DAY0 + 5]), registry)
    merged = store.read(["BBB", "AAA"], DAY0, DAY0 + SEC, registry)
    assert merged.ts_event.tolist() == [DAY0 + 1, DAY0 + 3, DAY0 + 5, DAY0 + 5, DAY0 + 5]
    assert merged.instrument.tolist() == [0, 1, 1, 0, 0]
    # AAA's two ticks at the same time stay in the order they were written.
    assert merged.price[merged.instrument == 0].tolist() == [100.0, 101.0, 102.0]


def test_the_instrument_index_comes_from_the_reading_registry(
    store: TickStore, registry: InstrumentRegistry
) -> None:
    store.write(_batch([0, 1], [DAY0 + 1, DAY0 + 2]), registry)
    other = replay_registry(["AAA", "BBB", "AAB"])  # BBB is index 2 here
    back = store.read(["BBB"], 0, 2**62, other)
    assert back.instrument.tolist() == [2]
    with pytest.raises(TickStoreError, match="ZZZ not in the registry"):
        store.read(["ZZZ"], 0, 2**62, other)


def _spoil(path: Path) -> None:
    path.write_bytes(b"PAR1 this is not parquet at all PAR1")


def test_a_one_day_read_opens_only_that_days_files_of_the_symbols_asked(
    store: TickStore, registry: InstrumentRegistry
) -> None:
    for day in range(3):
        base = DAY0 + day * DAY_NS
        store.write(
            _batch([0, 1, 0, 1], [base + HOUR, base + HOUR, base + 9 * HOUR, base]), registry
        )
    # Any file a read opens but should have pruned would now raise.
    for part in store.parts():
        in_day_one = "date=2024-08-09" in str(part.path)
        if not in_day_one or "symbol=BBB" in str(part.path):
            _spoil(part.path)
    day_one = store.read(["AAA"], DAY0 + DAY_NS, DAY0 + 2 * DAY_NS, registry)
    assert day_one.ts_event.tolist() == [DAY0 + DAY_NS + HOUR, DAY0 + DAY_NS + 9 * HOUR]
    with pytest.raises(TickStoreError, match=r"date=2024-08-10.*symbol=AAA"):
        store.read(["AAA"], DAY0 + DAY_NS, DAY0 + 2 * DAY_NS + HOUR + 1, registry)


def test_a_read_skips_part_files_outside_the_window_by_their_names(
    store: TickStore, registry: InstrumentRegistry
) -> None:
    store.write(_batch([0, 0], [DAY0 + HOUR, DAY0 + 2 * HOUR]), registry)
    store.write(_batch([0, 0], [DAY0 + 5 * HOUR, DAY0 + 6 * HOUR]), registry)
    late = [p for p in store.parts("AAA") if p.first_ns == DAY0 + 5 * HOUR]
    _spoil(late[0].path)
    early = store.read_symbol("AAA", DAY0, DAY0 + 3 * HOUR)
    assert early.ts_event.tolist() == [DAY0 + HOUR, DAY0 + 2 * HOUR]


def test_compaction_keeps_every_row_and_the_read_order(
    store: TickStore, registry: InstrumentRegistry
) -> None:
    rng = np.random.default_rng(3)
    for _ in range(6):  # overlapping small flushes with ties, as live recording makes
        ts = np.sort(DAY0 + rng.integers(0, 2 * DAY_NS, 40) // 1000 * 1000)
        store.write(_batch(rng.integers(0, 3, 40), ts, rng.uniform(1, 2, 40)), registry)
    before = _everything(store, registry)
    files_before = len(store.parts())
    report = store.compact()
    assert report.rows == len(before) == store.count()
    assert report.files_before == files_before
    assert len(store.parts()) == report.files_after == len(store.dates()) * len(SYMBOLS)
    assert _rows(_everything(store, registry)) == _rows(before)
    assert store.compact().partitions == 0  # nothing left to merge


def test_compaction_of_one_date_leaves_the_others(
    store: TickStore, registry: InstrumentRegistry
) -> None:
    for _ in range(2):
        store.write(_batch([0, 0], [DAY0 + 1, DAY0 + DAY_NS + 1]), registry)
    store.compact(date=dt.date(2024, 8, 9))
    assert len(store.parts("AAA", dt.date(2024, 8, 8))) == 2
    assert len(store.parts("AAA", dt.date(2024, 8, 9))) == 1


def test_a_compaction_cut_short_after_the_swap_never_doubles_rows(
    store: TickStore, registry: InstrumentRegistry, tmp_path: Path
) -> None:
    for k in range(3):
        store.write(_batch([0], [DAY0 + k]), registry)
    olds = store.parts("AAA")
    saved = tmp_path / "saved"
    saved.mkdir()
    for part in olds:
        shutil.copy(part.path, saved / part.path.name)
    store.compact()
    (new,) = store.parts("AAA")
    # As if the process died after the new file was in place, before the old ones went.
    for part in olds:
        shutil.copy(saved / part.path.name, part.path)
    journal = f'{{"new": "{new.path.name}", "old": {[p.path.name for p in olds]}}}'
    (new.path.parent / COMPACT_JOURNAL).write_text(journal.replace("'", '"'))
    assert store.count("AAA") == 3 and len(store.read_symbol("AAA", 0, 2**62)) == 3
    store.compact()  # finishes the interrupted one
    assert not (new.path.parent / COMPACT_JOURNAL).exists()
    assert [p.path for p in store.parts("AAA")] == [new.path]


def test_a_corrupt_file_raises_a_tick_store_error_naming_it(
    store: TickStore, registry: InstrumentRegistry
) -> None:
    store.write(_batch([0, 0], [DAY0 + 1, DAY0 + 2]), registry)
    (part,) = store.parts("AAA")
    part.path.write_bytes(part.path.read_bytes()[: part.path.stat().st_size // 2])
    with pytest.raises(TickStoreError, match=part.path.name) as info:
        store.read_symbol("AAA", 0, 2**62)
    assert "\n" not in str(info.value)


def test_a_foreign_parquet_file_is_refused_by_name(
    store: TickStore, registry: InstrumentRegistry
) -> None:
    store.write(_batch([0], [DAY0 + 1]), registry)
    (part,) = store.parts("AAA")
    foreign = part.path.parent / "orders.parquet"
    pq.write_table(pa.table({"ts_event": [DAY0], "qty": [1.0]}), foreign)
    with pytest.raises(TickStoreError, match=r"orders\.parquet: not a tick store file"):
        store.read_symbol("AAA", 0, 2**62)


def test_a_parquet_file_in_the_store_schema_under_another_name_is_read(
    store: TickStore, registry: InstrumentRegistry
) -> None:
    store.write(_batch([0], [DAY0 + 1]), registry)
    (part,) = store.parts("AAA")
    table = pa.table(
        {
            "ts_event": pa.array([DAY0 + 9, DAY0 + 2], pa.int64()),
            "ts_recv": pa.array([DAY0 + 9, DAY0 + 2], pa.int64()),
            "price": [5.0, 6.0],
            "size": [1.0, 1.0],
            "kind": pa.array([0, 0], pa.uint8()),
        }
    )
    pq.write_table(table, part.path.parent / "part-0.parquet")
    assert store.read_symbol("AAA", 0, 2**62).ts_event.tolist() == [DAY0 + 1, DAY0 + 2, DAY0 + 9]
    assert store.read_symbol("AAA", DAY0 + 5, 2**62).price.tolist() == [5.0]
    assert store.count("AAA") == 3 and store.span("AAA") == (DAY0 + 1, DAY0 + 9)


def test_writing_the_same_ticks_twice_with_skip_existing_stores_them_once(
    store: TickStore, registry: InstrumentRegistry
) -> None:
    batch = _batch([0, 0, 1], [DAY0 + 1, DAY0 + 1, DAY0 + 2], [10.0, 10.5, 3.0])
    assert store.write(batch, registry, skip_existing=True) == 3
    assert store.write(batch, registry, skip_existing=True) == 0
    more = _batch([0, 0], [DAY0 + 1, DAY0 + 3], [10.0, 11.0])  # first row equals a stored row
    assert store.write(more, registry, skip_existing=True) == 1
    assert store.count() == 4


def test_bad_input_to_write_is_refused(store: TickStore, registry: InstrumentRegistry) -> None:
    with pytest.raises(TickStoreError, match="before 1970"):
        store.write(_batch([0], [-5]), registry)
    with pytest.raises(TickStoreError, match="instrument index 7"):
        store.write(_batch([7], [DAY0]), registry)
    assert store.write(TickBatch.empty(), registry) == 0
    assert store.symbols() == [] and store.count() == 0


_PROPERTY_BATCH = st.integers(1, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 2), min_size=n, max_size=n),
        st.lists(st.integers(0, 3 * DAY_NS // SEC), min_size=n, max_size=n),
        st.lists(st.floats(0.01, 1e6, allow_nan=False), min_size=n, max_size=n),
        st.lists(st.sampled_from(list(TickKind)), min_size=n, max_size=n),
    )
)


@settings(max_examples=40, deadline=None)
@given(_PROPERTY_BATCH, st.integers(1, 3))
def test_any_batch_reads_back_in_stable_time_order(
    data: tuple[list[int], list[int], list[float], list[TickKind]], writes: int
) -> None:
    instrument, seconds, price, kind = data
    registry = replay_registry(SYMBOLS)
    ts = DAY0 + np.asarray(seconds, np.int64) * SEC // 7
    batch = TickBatch.from_arrays(instrument, ts, price, np.ones(len(ts)), kind)
    with tempfile.TemporaryDirectory() as root:
        store = TickStore(root)
        chunks = np.array_split(np.arange(len(batch)), writes)
        for chunk in chunks:
            store.write(batch.take(chunk), registry)
        asked = ["BTC/USD", "AAA", "BBB"]
        back = store.read(asked, 0, 2**62, registry)
        rank = np.array([asked.index(s) for s in registry.symbols()])[batch.instrument]
        # Stable within a symbol: each write was sorted by time; ties between writes keep
        # write order (files are ordered by first tick, then by when they were written).
        expected = batch.take(np.lexsort((np.arange(len(batch)), rank, batch.ts_event)))
        assert sorted(_rows(back)) == sorted(_rows(batch))
        assert back.ts_event.tolist() == expected.ts_event.tolist()
        if writes == 1:
            assert _rows(back) == _rows(expected)
        store.compact()
        assert _rows(store.read(asked, 0, 2**62, registry)) == _rows(back)


# -- the recorder ------------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_recorder_buffers_until_rows_or_time_are_due(
    store: TickStore, registry: InstrumentRegistry
) -> None:
    clock = _Clock()
    recorder = TickRecorder(store, registry, flush_every_s=60.0, max_rows=5, clock=clock)
    assert recorder.append(_batch([0, 1], [DAY0 + 1, DAY0 + 2])) == 0
    assert recorder.append(_batch([2], [DAY0 + 3])) == 0
    assert store.count() == 0 and recorder.pending == 3
    clock.now = 61.0
    assert recorder.append(_batch([0], [DAY0 + 4])) == 4
    assert store.count() == 4 and recorder.pending == 0
    assert recorder.append(_batch([0] * 5, DAY0 + 10 + np.arange(5))) == 5  # max_rows
    assert recorder.counters["rows_written"] == 9 and recorder.counters["flushes"] == 2


def test_a_new_recorder_skips_ticks_the_store_already_has(
    store: TickStore, registry: InstrumentRegistry
) -> None:
    first = TickRecorder(store, registry)
    first.append(_batch([0, 0, 1], [DAY0 + 10, DAY0 + 20, DAY0 + 15]))
    first.flush()
    # A second run whose warm-up history overlaps the first run's recording.
    second = TickRecorder(store, registry)
    second.append(_batch([0, 0, 0, 1, 2], [DAY0 + 5, DAY0 + 20, DAY0 + 21, DAY0 + 16, DAY0 + 1]))
    assert second.flush() == 3
    assert second.counters["rows_already_stored"] == 2
    assert store.read_symbol("AAA", 0, 2**62).ts_event.tolist() == [DAY0 + 10, DAY0 + 20, DAY0 + 21]
    # Its own later ticks at an equal time are kept: the floor is fixed when it starts.
    second.append(_batch([0], [DAY0 + 21]))
    assert second.flush() == 1


def test_a_failed_recording_is_counted_and_retried(
    tmp_path: Path, registry: InstrumentRegistry
) -> None:
    blocker = tmp_path / "ticks"
    blocker.write_text("a file where the store folder should be")
    recorder = TickRecorder(TickStore(blocker), registry, max_rows=2)
    recorder.append(_batch([0], [DAY0 + 1]))
    assert recorder.append(_batch([0], [DAY0 + 2])) == 0
    assert recorder.counters["write_errors"] == 1 and recorder.pending == 2
    blocker.unlink()
    assert recorder.flush() == 2
    assert TickStore(blocker).count() == 2


def test_the_ticks_dir_is_the_flag_the_config_the_env_then_beside_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TICKWISE_TICKS", raising=False)
    config = load()
    assert ticks_dir(config) == Path("var/ticks")
    scratch = replace(config, store=replace(config.store, url=f"sqlite:///{tmp_path}/tw.sqlite"))
    assert ticks_dir(scratch) == tmp_path / "ticks"
    monkeypatch.setenv("TICKWISE_TICKS", str(tmp_path / "env"))
    assert ticks_dir(scratch) == tmp_path / "env"
    path = tmp_path / "t.toml"
    path.write_text('[ticks]\ndir = "elsewhere"\nrecord = false\n')
    assert ticks_dir(load(path)) == Path("elsewhere") and not load(path).ticks.record
    assert ticks_dir(load(path), "flag") == Path("flag")
    path.write_text("[ticks]\nflush_rows = 0\n")
    with pytest.raises(ConfigError, match=r"\[ticks\] flush_rows: 0 is out of range"):
        load(path)
