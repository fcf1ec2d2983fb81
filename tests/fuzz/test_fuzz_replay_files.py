"""Fuzzing the recorded-data readers and the import path: Binance captures, LEAN tick zips,
tick tables, the tick store's part files and compaction journal, and the tick validator.

Documented failures: a recorded file that cannot be read is `ReplayFileError` (the replay
feed passes it on as is); an import is `TickImportError`; a store file is `TickStoreError`.
Ticks that are read but bad are the validator's to count: every tick it sees is accepted or
counted under exactly one reason. Run deeper with `TICKWISE_FUZZ_EXAMPLES=5000`.
"""

from __future__ import annotations

import gzip
import io
import json
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fuzzing import DEEP_OBJECT, ODD_TEXTS, budget, mutated, raw_bytes
from hypothesis import example, given
from hypothesis import strategies as st

from tickwise.data.importer import TickImportError, import_binance, import_lean, import_table
from tickwise.data.readers import (
    INT64_END,
    ReplayFileError,
    SymbolTicks,
    binance_source,
    lean_source,
    read_binance_capture,
    read_lean_quotes,
    read_lean_trades,
)
from tickwise.data.replay import ReplayFeed, replay_registry
from tickwise.data.tickfiles import (
    COMPACT_JOURNAL,
    SCHEMA,
    PartFile,
    TickStoreError,
    read_part,
    scan_partition,
)
from tickwise.data.tickstore import TickStore
from tickwise.data.validation import TickValidator
from tickwise.model.ticks import TickBatch

T = TypeVar("T")
RECEIVED = 1_723_161_254_087_891_268
TRADE: dict[str, Any] = {
    "stream": "btcusdt@trade",
    "data": {
        "e": "trade",
        "E": 1,
        "s": "BTCUSDT",
        "t": 7,
        "p": "61837.63",
        "q": "0.02",
        "T": 1_723_161_255_342,
    },
}
BOOK: dict[str, Any] = {
    "stream": "btcusdt@bookTicker",
    "data": {"u": 9, "s": "BTCUSDT", "b": "61837.63", "B": "3.788", "a": "61837.64", "A": "1.546"},
}
LEAN_TRADE_ROW = "34200000,1674100,100,P,@,0"
LEAN_QUOTE_ROW = "14400547,491800,300,492000,3000,P,1,0"
LEAN_BAR_ROW = "34200000,1674100,1675000,1673000,1674500,2300"
KLINE_ROW = (
    "1723161240000,61800.1,61850.0,61790.5,61837.6,12.5,1723161299999,772000.1,900,6.1,377000.2,0"
)
GOOD_CSV_ROW = "SPY,2024-08-08T14:30:00Z,530.10,100,trade"
lean_cells = st.one_of(
    st.integers(-(2**64), 2**64).map(str), st.sampled_from(ODD_TEXTS), st.text(max_size=6)
)


@contextmanager
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def assert_ticks(ticks: SymbolTicks) -> None:
    n = len(ticks)
    assert ticks.price.shape == ticks.size.shape == ticks.kind.shape == (n,)
    assert (np.diff(ticks.ts_event) >= 0).all(), "ticks are not in time order"
    assert ((ticks.ts_event >= 0) & (ticks.ts_event < INT64_END)).all()
    assert np.isin(ticks.kind, (0, 1, 2)).all()


def outcome(read: Callable[[], T], *errors: type[Exception]) -> T | None:
    """What `read` returns, or None when it raised one of the documented `errors`."""
    try:
        return read()
    except errors:
        return None


# -- Binance captures ---------------------------------------------------------------------------


def capture_line(doc: Any, received: int) -> bytes:
    return f"{received} ".encode() + json.dumps(doc).encode() + b"\n"


capture_lines = st.lists(
    st.one_of(
        st.builds(capture_line, mutated(TRADE), st.one_of(st.just(RECEIVED), st.integers())),
        st.builds(capture_line, mutated(BOOK), st.just(RECEIVED)),
        st.builds(lambda junk: junk + b' "@trade" \n', raw_bytes),
    ),
    min_size=1,
    max_size=6,
)


def write_capture(root: Path, lines: list[bytes], *, damage: int | None = None) -> Path:
    path = root / "btcusdt_20240808.gz"
    packed = gzip.compress(b"".join([capture_line(TRADE, RECEIVED), *lines]))
    path.write_bytes(packed if damage is None else packed[: max(0, len(packed) - damage)])
    return path


@budget()
@given(capture_lines)
@example([capture_line({**TRADE, "data": {**TRADE["data"], "T": 2**62}}, RECEIVED)])
@example(
    [capture_line(BOOK, 2**63 - 1), capture_line({**TRADE, "data": {**TRADE["data"], "T": 0}}, 0)]
)
@example([b"1 " + DEEP_OBJECT[:-1] + b', "x": "@trade"}\n'])
@example([capture_line(TRADE, RECEIVED).replace(b"1723161254", b"\xb2\xb3")])
@example([b"9" * 5000 + b' {"stream": "btcusdt@trade"}\n'])
def test_a_capture_reads_to_ordered_ticks_or_a_replay_file_error(lines: list[bytes]) -> None:
    with folder() as root:
        ticks = outcome(lambda: read_binance_capture(write_capture(root, lines)), ReplayFileError)
    if ticks is not None:
        assert_ticks(ticks)


@budget(0.5)
@given(st.integers(1, 60), raw_bytes)
def test_a_damaged_capture_archive_is_a_replay_file_error(cut: int, junk: bytes) -> None:
    with folder() as root:
        path = write_capture(root, [capture_line(BOOK, RECEIVED)] * 20, damage=cut)
        ticks = outcome(lambda: read_binance_capture(path), ReplayFileError)
        if ticks is not None:
            assert_ticks(ticks)
        path.write_bytes(junk)
        outcome(lambda: binance_source(path), ReplayFileError)
        outcome(lambda: read_binance_capture(path), ReplayFileError)


@budget(0.5)
@given(st.one_of(raw_bytes, st.integers().map(lambda n: str(n).encode())))
@example(b"9" * 5000)
@example("²".encode())
def test_a_capture_starts_at_its_first_receive_time_or_is_a_replay_file_error(first: bytes) -> None:
    with folder() as root:
        path = root / "btcusdt_20240808.gz"
        path.write_bytes(gzip.compress(first + b" " + json.dumps(TRADE).encode() + b"\n"))
        source = outcome(partial(binance_source, path), ReplayFileError)
    assert source is None or isinstance(source.start_ns, int)


@budget(0.5)
@given(capture_lines)
def test_the_replay_feed_plays_a_capture_or_stops_with_a_replay_file_error(
    lines: list[bytes],
) -> None:
    with folder() as root:
        source = outcome(lambda: binance_source(write_capture(root, lines)), ReplayFileError)
        if source is None:
            return
        registry = replay_registry(["BTC/USDT"])
        feed = ReplayFeed([source], registry, speed=None, restamp=False, batch_ticks=4)
        last = -1
        for now in range(1, 50):
            batch = outcome(partial(feed.next_batch, now), ReplayFileError)
            if batch is None:
                return  # the file turned out unreadable when opened: a clear error
            times = batch.ts_event.tolist()
            assert times == sorted(times) and all(t >= last for t in times), "out of order"
            assert (batch.instrument < len(registry)).all()
            last = times[-1] if times else last
            if feed.exhausted:
                break
        assert feed.exhausted, "a readable capture plays to its end"


# -- LEAN tick zips -----------------------------------------------------------------------------


def lean_zip(
    root: Path, kind: str, rows: list[str], raw: bytes | None = None, resolution: str = "tick"
) -> Path:
    path = root / f"equities/us/lean/{resolution}/spy" / f"20131010_{kind}.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    text = "\n".join(rows) + "\n"
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("20131010_spy_Trade_Tick.csv", text.encode("utf-8", "surrogatepass"))
    path.write_bytes(buffer.getvalue() if raw is None else raw)
    return path


def lean_rows(seed: str) -> st.SearchStrategy[list[str]]:
    cells = seed.split(",")
    row = st.lists(lean_cells, min_size=len(cells) - 2, max_size=len(cells) + 1).map(",".join)
    mutated_row = st.tuples(st.integers(0, len(cells) - 1), lean_cells).map(
        lambda swap: ",".join([*cells[: swap[0]], swap[1], *cells[swap[0] + 1 :]])
    )
    return st.lists(st.one_of(st.just(seed), mutated_row, row), min_size=1, max_size=5)


@budget()
@given(lean_rows(LEAN_TRADE_ROW), lean_rows(LEAN_QUOTE_ROW))
@example([LEAN_TRADE_ROW.replace("34200000", "9" * 18)], [LEAN_QUOTE_ROW])
@example([LEAN_TRADE_ROW.replace("34200000", "-1")], [LEAN_QUOTE_ROW.replace("491800", "9" * 30)])
def test_lean_zips_read_to_ordered_ticks_or_a_replay_file_error(
    trades: list[str], quotes: list[str]
) -> None:
    with folder() as root:
        for kind, rows, read in (
            ("trade", trades, read_lean_trades),
            ("quote", quotes, read_lean_quotes),
        ):
            path = lean_zip(root, kind, rows)
            ticks = outcome(partial(read, path), ReplayFileError)
            if ticks is not None:
                assert_ticks(ticks)
            assert lean_source(path).symbol == "SPY"


@budget(0.5)
@given(raw_bytes, st.integers(1, 40))
def test_a_damaged_lean_zip_is_a_replay_file_error(junk: bytes, cut: int) -> None:
    with folder() as root:
        whole = lean_zip(root, "trade", [LEAN_TRADE_ROW] * 10).read_bytes()
        for raw in (junk, whole[:-cut], whole[: len(whole) // 2] + junk):
            path = lean_zip(root, "trade", [], raw=raw)
            outcome(partial(read_lean_trades, path), ReplayFileError)


# -- imports into the tick store ------------------------------------------------------------


def assert_report_adds_up(report: Any) -> None:
    assert report.rows_read == report.imported + report.already_stored + report.rejected_total
    assert all(count > 0 for count in report.rejected.values())


csv_cells = st.one_of(st.text(max_size=10), st.sampled_from(ODD_TEXTS), st.integers().map(str))
# Times of every shape: integers of any size, ISO dates of any year, any text.
ts_cells = st.one_of(
    st.integers().map(str),
    st.from_regex(r"\d{4}-\d\d-\d\d([T ]\d\d:\d\d(:\d\d)?)?Z?", fullmatch=True),
    st.text(st.characters(exclude_characters=",\n\r"), max_size=8),
)


@st.composite
def csv_rows(draw: st.DrawFn) -> str:
    cells = GOOD_CSV_ROW.split(",")
    for i in draw(st.sets(st.integers(0, 4), max_size=5)):
        cells[i] = draw(ts_cells if i == 1 else csv_cells)
    return ",".join(cells)


def write_table(root: Path, rows: list[str]) -> Path:
    path = root / "t.csv"
    text = "symbol,ts,price,size,kind\n" + "\n".join(rows) + "\n"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    return path


@budget()
@given(st.lists(csv_rows(), max_size=6))
@example(["SPY,2024-08-08T14:30:00+99:99,530.1,100,trade"])
@example(["SPY,2024-08-08T14:30:00Z,nan,inf,ask", "SPY,2024-08-08T14:30:00Z,1e400,-0,9"])
def test_a_tick_table_imports_with_counted_rejections_or_a_tick_import_error(
    rows: list[str],
) -> None:
    with folder() as root:
        path = write_table(root, rows)
        report = outcome(lambda: import_table(path, TickStore(root / "ticks")), TickImportError)
    if report is not None:
        assert_report_adds_up(report)


@pytest.mark.parametrize("ts", ["²", "99999999999999999999999", "9999-12-31T00:00:00Z", "9" * 5000])
def test_a_time_the_table_reader_cannot_hold_is_a_counted_bad_timestamp(ts: str) -> None:
    with folder() as root:
        path = write_table(root, [GOOD_CSV_ROW, f"SPY,{ts},530.1,100,trade"])
        report = import_table(path, TickStore(root / "ticks"))
    assert report.rejected == {"bad_timestamp": 1} and report.imported == 1


def assert_stored_times(store: TickStore) -> None:
    for symbol in store.symbols():
        ticks = store.read_symbol(symbol, 0, 2**63 - 1)
        assert ((ticks.ts_event >= 0) & (ticks.ts_event < INT64_END)).all()


@budget(0.5)
@given(capture_lines, lean_rows(LEAN_TRADE_ROW), lean_rows(LEAN_BAR_ROW), lean_rows(KLINE_ROW))
@example([], [LEAN_TRADE_ROW], [LEAN_BAR_ROW.replace("34200000", "1e30")], [KLINE_ROW])
@example([], [LEAN_TRADE_ROW], [LEAN_BAR_ROW], [KLINE_ROW.replace("1723161299999", "-5e30")])
def test_capture_lean_and_kline_imports_count_or_fail_with_a_tick_import_error(
    lines: list[bytes], ticks: list[str], bars: list[str], klines: list[str]
) -> None:
    with folder() as root:
        store = TickStore(root / "ticks")
        kline = root / "BTCUSDT-1m-2024-08-08.csv"
        kline.write_bytes("\n".join(klines).encode("utf-8", "surrogatepass"))
        for path, read in (
            (write_capture(root, lines), import_binance),
            (kline, import_binance),
            (lean_zip(root, "trade", ticks), import_lean),
            (lean_zip(root, "trade", bars, resolution="minute"), import_lean),
        ):
            report = outcome(partial(read, path, store), TickImportError)
            if report is not None:
                assert_report_adds_up(report)
        assert_stored_times(store)


# -- the tick store's own files -------------------------------------------------------------


@budget(0.5)
@given(
    st.one_of(
        raw_bytes,
        st.builds(lambda doc: json.dumps(doc).encode(), mutated({"new": "a", "old": ["b"]})),
    )
)
@example(DEEP_OBJECT)
def test_a_compaction_journal_is_read_or_a_tick_store_error(journal: bytes) -> None:
    with folder() as root:
        (root / COMPACT_JOURNAL).write_bytes(journal)
        parts = outcome(lambda: scan_partition(root), TickStoreError)
    assert parts is None or parts == []


@budget(0.5)
@given(raw_bytes, st.integers(1, 200))
def test_a_part_file_is_read_or_a_tick_store_error(junk: bytes, cut: int) -> None:
    with folder() as root:
        table = pa.Table.from_arrays([pa.array([1, 2], t.type) for t in SCHEMA], schema=SCHEMA)
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        whole = buffer.getvalue()
        for raw in (junk, whole[:-cut], whole[: len(whole) // 2] + junk):
            path = root / "foreign.parquet"
            path.write_bytes(raw)
            outcome(partial(read_part, PartFile(path, 0, 2**62, 2), 0, 2**62), TickStoreError)
            outcome(lambda: scan_partition(root), TickStoreError)


# -- the validator ------------------------------------------------------------------------------


def column(values: st.SearchStrategy[Any], n: int) -> st.SearchStrategy[list[Any]]:
    return st.lists(values, min_size=n, max_size=n)


@st.composite
def batches(draw: st.DrawFn) -> TickBatch:
    n = draw(st.integers(0, 8))
    return TickBatch(
        instrument=np.array(draw(column(st.integers(0, 5), n)), np.uint32),
        ts_event=np.array(draw(column(st.integers(-(2**63), 2**63 - 1), n)), np.int64),
        ts_recv=np.zeros(n, np.int64),
        price=np.array(draw(column(st.floats(), n)), np.float64),
        size=np.array(draw(column(st.floats(), n)), np.float64),
        kind=np.array(draw(column(st.integers(0, 255), n)), np.uint8),
    )


@budget()
@given(st.lists(batches(), min_size=1, max_size=3))
def test_every_tick_is_accepted_valid_or_counted_under_one_reason(chunks: list[TickBatch]) -> None:
    validator = TickValidator(4)
    seen = 0
    for batch in chunks:
        good = validator.validate(batch)
        seen += len(batch)
        assert (good.instrument < 4).all() and np.isin(good.kind, (0, 1, 2)).all()
        assert np.isfinite(good.price).all() and (good.price > 0).all()
        assert np.isfinite(good.size).all() and (good.size >= 0).all()
    assert validator.accepted + validator.rejected == seen
    assert sum(validator.counts.values()) == validator.rejected
