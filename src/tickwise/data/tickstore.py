"""The tick store: live and imported ticks on disk, read back by window (instrument, time range).

Layout, a Hive-partitioned Parquet dataset (so `pyarrow.dataset` and other engines read it too):

    root/date=YYYY-MM-DD/symbol=<SYM>/part-<first_ns>-<last_ns>-<rows>-<token>.parquet

Partitions are by UTC date of `ts_event` and by *symbol*, which is stable across universes (the
dense instrument index is not). Symbols are URI-encoded in directory names (`BTC%2FUSDT`). Each
part file holds one symbol-day slice sorted by `ts_event` (stable: ties keep arrival order) in one
row group, with columns ts_event, ts_recv (int64 ns UTC), price, size (float64), kind (uint8),
zstd-compressed, timestamps delta-encoded. The file name carries the first and last `ts_event`
and the row count, so listing a partition is enough to prune files by time, count rows or find
a symbol's span; only the files a window needs are opened. Parquet files with another name are
accepted when their columns match (their footer statistics are read instead).

Writes only add files: each is written under a hidden temporary name and renamed into place, so
a reader never sees half a file. `compact()` merges a partition's small files (live recording
makes one per flush) into one; a journal in the partition (`_compacting.json`) makes the swap
safe against a crash: the old files stay valid until the new one is in place, and are ignored
from then on. One compaction at a time per store.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from tickwise.data.readers import SymbolTicks
from tickwise.data.tickfiles import (
    COLUMNS,
    COMPACT_JOURNAL,
    SCHEMA,
    PartFile,
    TickStoreError,
    compact_partition,
    drop_stored,
    empty_columns,
    finish_compaction,
    part_name,
    read_part,
    scan_partition,
    write_atomically,
)
from tickwise.model.instruments import InstrumentRegistry
from tickwise.model.ticks import TickBatch

__all__ = [
    "COMPACT_JOURNAL",
    "DAY_NS",
    "EPOCH",
    "SCHEMA",
    "CompactReport",
    "PartFile",
    "SymbolSummary",
    "TickStore",
    "TickStoreError",
    "day_of",
]

DAY_NS = 86_400_000_000_000
EPOCH = dt.date(1970, 1, 1)
_DATE_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True, slots=True)
class SymbolSummary:
    """What the store holds for one symbol (from file names: nothing is opened)."""

    symbol: str
    first_date: dt.date
    last_date: dt.date
    dates: int
    files: int
    rows: int
    first_ns: int
    last_ns: int


@dataclass(frozen=True, slots=True)
class CompactReport:
    partitions: int
    files_before: int
    files_after: int
    rows: int


def day_of(ts_ns: int) -> dt.date:
    """The UTC date of a nanosecond timestamp."""
    return EPOCH + dt.timedelta(days=ts_ns // DAY_NS)


class TickStore:
    """Ticks on disk, partitioned by (UTC date, symbol); see the module docstring."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"TickStore({str(self.root)!r})"

    # -- discovery (names only: no file is opened) -----------------------------------------

    def _date_dirs(
        self, first: dt.date | None = None, last: dt.date | None = None
    ) -> list[tuple[dt.date, Path]]:
        try:
            entries = list(os.scandir(self.root))
        except (FileNotFoundError, NotADirectoryError):
            return []
        out: list[tuple[dt.date, Path]] = []
        for entry in entries:
            match = _DATE_DIR.match(entry.name)
            if not match or not entry.is_dir():
                continue
            try:
                day = dt.date.fromisoformat(match.group(1))
            except ValueError:
                continue
            if (first is None or day >= first) and (last is None or day <= last):
                out.append((day, Path(entry.path)))
        out.sort()
        return out

    @staticmethod
    def _symbol_dirs(date_dir: Path) -> Iterator[tuple[str, Path]]:
        try:
            entries = list(os.scandir(date_dir))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if entry.name.startswith("symbol=") and entry.is_dir():
                yield unquote(entry.name.removeprefix("symbol=")), Path(entry.path)

    def partition_dir(self, day: dt.date, symbol: str) -> Path:
        return self.root / f"date={day.isoformat()}" / f"symbol={quote(symbol, safe='')}"

    def parts(self, symbol: str | None = None, date: dt.date | None = None) -> list[PartFile]:
        """The live part files, optionally of one symbol and/or one date, in time order."""
        out: list[PartFile] = []
        for day, date_dir in self._date_dirs(date, date):
            if symbol is not None:
                out.extend(scan_partition(self.partition_dir(day, symbol)))
                continue
            for _, sym_dir in sorted(self._symbol_dirs(date_dir)):
                out.extend(scan_partition(sym_dir))
        return out

    def symbols(self) -> list[str]:
        """Every symbol with at least one part file, sorted."""
        found: set[str] = set()
        for _, date_dir in self._date_dirs():
            for symbol, sym_dir in self._symbol_dirs(date_dir):
                if symbol not in found and scan_partition(sym_dir):
                    found.add(symbol)
        return sorted(found)

    def dates(self, symbol: str | None = None) -> list[dt.date]:
        """The UTC dates holding ticks (of `symbol`, or of any symbol), sorted."""
        out: list[dt.date] = []
        for day, date_dir in self._date_dirs():
            if symbol is not None:
                if scan_partition(self.partition_dir(day, symbol)):
                    out.append(day)
            elif any(scan_partition(d) for _, d in self._symbol_dirs(date_dir)):
                out.append(day)
        return out

    def span(self, symbol: str) -> tuple[int, int] | None:
        """(first, last) `ts_event` stored for `symbol`, or None when it has no ticks."""
        days = self._date_dirs()
        first = last = None
        for day, _ in days:
            parts = scan_partition(self.partition_dir(day, symbol))
            if parts:
                first = min(p.first_ns for p in parts)
                break
        for day, _ in reversed(days):
            parts = scan_partition(self.partition_dir(day, symbol))
            if parts:
                last = max(p.last_ns for p in parts)
                break
        return None if first is None or last is None else (first, last)

    def last_ns(self, symbol: str, since_ns: int = 0) -> int | None:
        """The last `ts_event` stored for `symbol` on or after the date of `since_ns`."""
        for day, _ in reversed(self._date_dirs(day_of(max(0, since_ns)))):
            parts = scan_partition(self.partition_dir(day, symbol))
            if parts:
                return max(p.last_ns for p in parts)
        return None

    def last_times(self, symbols: Sequence[str], since_ns: int = 0) -> dict[str, int]:
        """`last_ns` of many symbols at once (symbols with nothing stored are left out)."""
        out: dict[str, int] = {}
        remaining = set(symbols)
        for day, _ in reversed(self._date_dirs(day_of(max(0, since_ns)))):
            for symbol in list(remaining):
                parts = scan_partition(self.partition_dir(day, symbol))
                if parts:
                    out[symbol] = max(p.last_ns for p in parts)
                    remaining.discard(symbol)
            if not remaining:
                break
        return out

    def summary(self) -> list[SymbolSummary]:
        """One line per symbol: dates, files, rows and time span, sorted by symbol."""
        seen: dict[str, SymbolSummary] = {}
        for day, date_dir in self._date_dirs():
            for symbol, sym_dir in self._symbol_dirs(date_dir):
                parts = scan_partition(sym_dir)
                if not parts:
                    continue
                rows = sum(p.rows for p in parts)
                first, last = min(p.first_ns for p in parts), max(p.last_ns for p in parts)
                old = seen.get(symbol)
                seen[symbol] = SymbolSummary(
                    symbol,
                    old.first_date if old else day,
                    day,
                    (old.dates if old else 0) + 1,
                    (old.files if old else 0) + len(parts),
                    (old.rows if old else 0) + rows,
                    min(first, old.first_ns) if old else first,
                    max(last, old.last_ns) if old else last,
                )
        return [seen[s] for s in sorted(seen)]

    def count(self, symbol: str | None = None, date: dt.date | None = None) -> int:
        """Rows stored (of `symbol`, on `date`, or everything)."""
        return sum(p.rows for p in self.parts(symbol, date))

    # -- writing --------------------------------------------------------------------------

    def write(
        self, batch: TickBatch, registry: InstrumentRegistry, *, skip_existing: bool = False
    ) -> int:
        """Append `batch`: one new part file per (UTC date, symbol) it touches; rows written.

        With `skip_existing`, rows already stored (same ts_event, kind, price and size in the
        same partition) are left out, so importing a file twice stores it once.
        """
        n = len(batch)
        if n == 0:
            return 0
        instrument = np.asarray(batch.instrument)
        if int(instrument.max()) >= len(registry):
            raise TickStoreError(
                f"tick store {self.root}: instrument index {int(instrument.max())} is not in "
                f"the registry ({len(registry)} instruments)"
            )
        ts = np.asarray(batch.ts_event, dtype=np.int64)
        if int(ts.min()) < 0:
            raise TickStoreError(f"tick store {self.root}: ts_event before 1970 cannot be stored")
        day = ts // DAY_NS
        order = np.lexsort((ts, instrument, day))
        day, inst = day[order], instrument[order]
        cols = [np.ascontiguousarray(np.asarray(getattr(batch, c))[order]) for c in COLUMNS]
        cut = np.flatnonzero((day[1:] != day[:-1]) | (inst[1:] != inst[:-1])) + 1
        bounds = np.concatenate([[0], cut, [n]])
        symbols = registry.symbols()
        written = 0
        for lo, hi in itertools.pairwise(bounds):
            target = self.partition_dir(EPOCH + dt.timedelta(days=int(day[lo])), symbols[inst[lo]])
            written += self._write_partition(target, [c[lo:hi] for c in cols], skip_existing)
        return written

    def _write_partition(
        self, target: Path, cols: list[npt.NDArray[np.generic]], skip_existing: bool
    ) -> int:
        """Write one partition's slice (sorted by ts_event) as a new part file."""
        if skip_existing:
            cols = drop_stored(cols, scan_partition(target))
        n = len(cols[0])
        if n == 0:
            return 0
        ts = cols[0]
        table = pa.Table.from_arrays([pa.array(c) for c in cols], schema=SCHEMA)
        write_atomically(table, target / part_name(int(ts[0]), int(ts[-1]), n))
        return n

    # -- reading --------------------------------------------------------------------------

    def read(
        self,
        symbols: Sequence[str],
        start_ns: int,
        end_ns: int,
        registry: InstrumentRegistry,
    ) -> TickBatch:
        """Ticks of `symbols` with start_ns <= ts_event < end_ns, merged in time order.

        The merge is stable: ticks with equal times keep each symbol's stored order, and
        symbols in the order given. `instrument` is each symbol's index in `registry`.
        """
        wanted = list(dict.fromkeys(symbols))
        missing = [s for s in wanted if s not in registry]
        if missing:
            raise TickStoreError(f"tick store read: {', '.join(missing)} not in the registry")
        parts: list[TickBatch] = []
        for symbol in wanted:
            cols = self._read_columns(symbol, start_ns, end_ns)
            if len(cols[0]):
                index = registry.by_symbol(symbol).index
                parts.append(_batch(np.full(len(cols[0]), index, np.uint32), cols))
        if not parts:
            return TickBatch.empty()
        if len(parts) == 1:
            return parts[0]
        merged = TickBatch.concat(parts)
        return merged.take(np.argsort(merged.ts_event, kind="stable"))

    def read_symbol(self, symbol: str, start_ns: int, end_ns: int) -> SymbolTicks:
        """One symbol's ticks with start_ns <= ts_event < end_ns, as per-instrument arrays."""
        ts, _, price, size, kind = self._read_columns(symbol, start_ns, end_ns)
        return SymbolTicks(
            symbol,
            ts.astype(np.int64, copy=False),
            price.astype(np.float64, copy=False),
            size.astype(np.float64, copy=False),
            kind.astype(np.uint8, copy=False),
        )

    def _read_columns(
        self, symbol: str, start_ns: int, end_ns: int
    ) -> list[npt.NDArray[np.generic]]:
        start_ns = max(0, start_ns)
        if end_ns <= start_ns:
            return empty_columns()
        chunks: list[list[npt.NDArray[np.generic]]] = []
        for day, _ in self._date_dirs(day_of(start_ns), day_of(end_ns - 1)):
            chunks.extend(self._read_partition(self.partition_dir(day, symbol), start_ns, end_ns))
        if not chunks:
            return empty_columns()
        if len(chunks) == 1:
            return chunks[0]
        cols = [np.concatenate([c[i] for c in chunks]) for i in range(len(COLUMNS))]
        ts = cols[0]
        if len(ts) > 1 and bool(np.any(ts[1:] < ts[:-1])):  # overlapping part files
            order = np.argsort(ts, kind="stable")
            cols = [c[order] for c in cols]
        return cols

    def _read_partition(
        self, part_dir: Path, start_ns: int, end_ns: int
    ) -> list[list[npt.NDArray[np.generic]]]:
        """Each part file's rows in the window; re-lists once if compaction swapped files."""
        for attempt in range(3):
            out: list[list[npt.NDArray[np.generic]]] = []
            try:
                for part in scan_partition(part_dir):
                    if part.last_ns < start_ns or part.first_ns >= end_ns:
                        continue
                    cols = read_part(part, start_ns, end_ns)
                    if len(cols[0]):
                        out.append(cols)
                return out
            except FileNotFoundError:
                if attempt == 2:
                    raise TickStoreError(f"{part_dir}: part files keep vanishing") from None
        return []  # pragma: no cover

    # -- maintenance ----------------------------------------------------------------------

    def compact(self, date: dt.date | None = None, symbol: str | None = None) -> CompactReport:
        """Merge each partition's part files into one sorted file (of `date`/`symbol` only)."""
        partitions = before = after = rows = 0
        for day, date_dir in self._date_dirs(date, date):
            if symbol is not None:
                targets = [self.partition_dir(day, symbol)]
            else:
                targets = [d for _, d in sorted(self._symbol_dirs(date_dir))]
            for part_dir in targets:
                finish_compaction(part_dir)
                parts = scan_partition(part_dir)
                if len(parts) < 2:
                    continue
                merged = compact_partition(part_dir, parts)
                partitions += 1
                before += len(parts)
                after += 1
                rows += merged
        return CompactReport(partitions, before, after, rows)


def _batch(instrument: npt.NDArray[np.uint32], cols: list[npt.NDArray[np.generic]]) -> TickBatch:
    ts_event, ts_recv, price, size, kind = cols
    return TickBatch(
        instrument=instrument,
        ts_event=np.ascontiguousarray(ts_event, np.int64),
        ts_recv=np.ascontiguousarray(ts_recv, np.int64),
        price=np.ascontiguousarray(price, np.float64),
        size=np.ascontiguousarray(size, np.float64),
        kind=np.ascontiguousarray(kind, np.uint8),
    )
