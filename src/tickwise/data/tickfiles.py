"""The tick store's files: naming, listing a partition, reading, atomic writes, compaction swap.

A partition folder (`date=.../symbol=...`) holds part files named
`part-<first_ns>-<last_ns>-<rows>-<token>.parquet` (the token sorts by write time), written under
a hidden `.tmp-` name and renamed into place. While a compaction swaps files, a journal
(`_compacting.json`: the new file's name and the old ones') tells readers which files count:
once the new file exists, the old ones listed are ignored. `TickStore` (tickstore.py) builds
the dataset from these pieces.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from tickwise.errors import one_line

MAX_NS = 2**63 - 1
SCHEMA = pa.schema(
    [
        ("ts_event", pa.int64()),
        ("ts_recv", pa.int64()),
        ("price", pa.float64()),
        ("size", pa.float64()),
        ("kind", pa.uint8()),
    ]
)
COLUMNS: tuple[str, ...] = tuple(SCHEMA.names)
COMPACT_JOURNAL = "_compacting.json"
_PART_NAME = re.compile(r"^part-(\d{19})-(\d{19})-(\d+)-([0-9a-f]+)\.parquet$")
_WRITE_OPTIONS: dict[str, object] = {
    "compression": "zstd",
    "use_dictionary": ["price", "size", "kind"],
    "column_encoding": {"ts_event": "DELTA_BINARY_PACKED", "ts_recv": "DELTA_BINARY_PACKED"},
}


class TickStoreError(ValueError):
    """A tick store problem (unreadable or foreign file, bad input), naming the file or input."""


@dataclass(frozen=True, slots=True)
class PartFile:
    """One Parquet file of a partition and what its name (or footer) says about it."""

    path: Path
    first_ns: int
    last_ns: int
    rows: int


def part_name(first_ns: int, last_ns: int, rows: int) -> str:
    """A new part file's name; the token at the end sorts by write time and is unique."""
    token = f"{time.time_ns():016x}{os.getpid() & 0xFFFF:04x}{secrets.token_hex(3)}"
    return f"part-{first_ns:019d}-{last_ns:019d}-{rows}-{token}.parquet"


# -- partition files ---------------------------------------------------------------------------


def scan_partition(part_dir: Path) -> list[PartFile]:
    """The live part files of one partition, in (first_ns, name) order."""
    try:
        names = {e.name for e in os.scandir(part_dir) if e.is_file()}
    except (FileNotFoundError, NotADirectoryError):
        return []
    superseded: set[str] = set()
    if COMPACT_JOURNAL in names:
        journal = _load_journal(part_dir / COMPACT_JOURNAL)
        if journal is not None and journal[0] in names:
            superseded = set(journal[1])
    parts: list[PartFile] = []
    for name in names:
        if not name.endswith(".parquet") or name.startswith((".", "_")) or name in superseded:
            continue
        match = _PART_NAME.match(name)
        if match:
            first, last, rows = (int(match.group(i)) for i in (1, 2, 3))
            parts.append(PartFile(part_dir / name, first, last, rows))
        else:
            foreign = _foreign_part(part_dir / name)
            if foreign.rows:
                parts.append(foreign)
    parts.sort(key=lambda p: (p.first_ns, p.path.name))
    return parts


def _open(path: Path) -> pq.ParquetFile:
    """A Parquet file whose columns are the store's; anything else raises TickStoreError."""
    try:
        handle = pq.ParquetFile(path, pre_buffer=False)
        schema = handle.schema_arrow
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError) as exc:
        raise TickStoreError(f"{path}: not a readable Parquet file ({one_line(exc)})") from None
    for field in SCHEMA:
        index = schema.get_field_index(field.name)
        if index < 0:
            raise TickStoreError(f"{path}: not a tick store file (no column {field.name!r})")
        if schema.field(index).type != field.type:
            raise TickStoreError(
                f"{path}: not a tick store file (column {field.name!r} is "
                f"{schema.field(index).type}, expected {field.type})"
            )
    return handle


def _foreign_part(path: Path) -> PartFile:
    """A Parquet file not named by the store: its time range from the footer statistics."""
    handle = _open(path)
    meta = handle.metadata
    first, last = MAX_NS, -1
    column = handle.schema_arrow.get_field_index("ts_event")
    for rg in range(meta.num_row_groups):
        stats = meta.row_group(rg).column(column).statistics
        if stats is None or not stats.has_min_max:  # no statistics: read the column
            ts = read_part(PartFile(path, 0, MAX_NS, meta.num_rows), 0, MAX_NS)[0]
            if not len(ts):
                return PartFile(path, 0, -1, 0)
            return PartFile(path, int(ts.min()), int(ts.max()), len(ts))
        first, last = min(first, int(stats.min)), max(last, int(stats.max))
    return PartFile(path, first, last, int(meta.num_rows))


def read_part(part: PartFile, start_ns: int, end_ns: int) -> list[npt.NDArray[np.generic]]:
    """The rows of one part file with start_ns <= ts_event < end_ns, in file order."""
    handle = _open(part.path)
    meta = handle.metadata
    column = handle.schema_arrow.get_field_index("ts_event")
    groups = []
    for rg in range(meta.num_row_groups):
        stats = meta.row_group(rg).column(column).statistics
        if (
            stats is not None
            and stats.has_min_max
            and (int(stats.max) < start_ns or int(stats.min) >= end_ns)
        ):
            continue
        groups.append(rg)
    if not groups:
        return empty_columns()
    try:
        table = handle.read_row_groups(groups, columns=list(COLUMNS), use_threads=False)
    except (pa.ArrowException, OSError) as exc:
        raise TickStoreError(f"{part.path}: corrupt Parquet data ({one_line(exc)})") from None
    if any(table.column(c).null_count for c in COLUMNS):
        raise TickStoreError(f"{part.path}: not a tick store file (null values)")
    cols = [table.column(c).to_numpy() for c in COLUMNS]
    ts = cols[0]
    own = _PART_NAME.match(part.path.name) is not None
    whole = len(groups) == meta.num_row_groups
    if (
        own
        and whole
        and (len(ts), ts[:1].tolist(), ts[-1:].tolist())
        != (
            part.rows,
            [part.first_ns],
            [part.last_ns],
        )
    ):
        raise TickStoreError(f"{part.path}: contents do not match the file name")
    if start_ns <= part.first_ns and part.last_ns < end_ns:
        return cols
    if own:  # the store's own files are sorted by ts_event
        lo, hi = np.searchsorted(ts, [start_ns, end_ns], side="left")
        return [c[lo:hi] for c in cols]
    keep = (ts >= start_ns) & (ts < end_ns)
    return [c[keep] for c in cols]


def write_atomically(table: pa.Table, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".tmp-{final.name}")
    try:
        pq.write_table(table, tmp, row_group_size=max(1, table.num_rows), **_WRITE_OPTIONS)
        os.replace(tmp, final)
    except (pa.ArrowException, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise TickStoreError(f"{final}: cannot write part file ({one_line(exc)})") from None


def empty_columns() -> list[npt.NDArray[np.generic]]:
    return [np.empty(0, dtype=f.type.to_pandas_dtype()) for f in SCHEMA]


def drop_stored(
    cols: list[npt.NDArray[np.generic]], parts: list[PartFile]
) -> list[npt.NDArray[np.generic]]:
    """`cols` without the rows already in `parts` (same ts_event, kind, price and size)."""
    ts = cols[0]
    if not len(ts):
        return cols
    lo, hi = int(ts[0]), int(ts[-1])
    stored = [read_part(p, lo, hi + 1) for p in parts if p.last_ns >= lo and p.first_ns <= hi]
    stored = [s for s in stored if len(s[0])]
    if not stored:
        return cols
    old = [np.concatenate([s[i] for s in stored]) for i in range(len(COLUMNS))]
    dup = _already_in(_row_keys(cols), _row_keys(old))
    return [c[~dup] for c in cols]


def _row_keys(cols: list[npt.NDArray[np.generic]]) -> list[npt.NDArray[np.int64]]:
    ts, _, price, size, kind = cols
    return [
        np.asarray(ts, np.int64),
        np.asarray(kind, np.int64),
        np.ascontiguousarray(price, np.float64).view(np.int64),
        np.ascontiguousarray(size, np.float64).view(np.int64),
    ]


def _already_in(
    new: list[npt.NDArray[np.int64]], old: list[npt.NDArray[np.int64]]
) -> npt.NDArray[np.bool_]:
    """For each row of `new`, whether an equal row (all keys) is in `old`."""
    n_old = len(old[0])
    keys = [np.concatenate([o, k]) for o, k in zip(old, new, strict=True)]
    tag = np.concatenate([np.zeros(n_old, np.int8), np.ones(len(new[0]), np.int8)])
    order = np.lexsort((tag, *reversed(keys)))
    sk = [k[order] for k in keys]
    start = np.ones(len(order), dtype=np.bool_)
    differs = np.zeros(len(order) - 1, dtype=np.bool_)
    for k in sk:
        differs |= k[1:] != k[:-1]
    start[1:] = differs
    first_of_run = np.maximum.accumulate(np.where(start, np.arange(len(order)), 0))
    has_old = tag[order][first_of_run] == 0
    dup_sorted = has_old & (tag[order] == 1)
    dup = np.zeros(len(order), dtype=np.bool_)
    dup[order] = dup_sorted
    return dup[n_old:]


# -- compaction ---------------------------------------------------------------------------------


def _load_journal(path: Path) -> tuple[str, list[str]] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return str(data["new"]), [str(x) for x in data["old"]]
    except FileNotFoundError:
        return None
    # RecursionError: JSON nested deeper than the decoder recurses.
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise TickStoreError(f"{path}: unreadable compaction journal ({one_line(exc)})") from None


def finish_compaction(part_dir: Path) -> None:
    """Complete (or drop) a compaction that stopped half-way."""
    journal_path = part_dir / COMPACT_JOURNAL
    journal = _load_journal(journal_path)
    if journal is None:
        return
    new, old = journal
    if (part_dir / new).exists():
        for name in old:
            (part_dir / name).unlink(missing_ok=True)
    journal_path.unlink(missing_ok=True)


def compact_partition(part_dir: Path, parts: list[PartFile]) -> int:
    chunks = [read_part(p, 0, MAX_NS) for p in parts]
    cols = [np.concatenate([c[i] for c in chunks]) for i in range(len(COLUMNS))]
    order = np.argsort(cols[0], kind="stable")
    cols = [np.ascontiguousarray(c[order]) for c in cols]
    n = len(cols[0])
    ts = cols[0]
    final = part_dir / part_name(int(ts[0]), int(ts[-1]), n)
    journal = {"new": final.name, "old": [p.path.name for p in parts]}
    tmp_journal = part_dir / f".tmp-{COMPACT_JOURNAL}"
    tmp_journal.write_text(json.dumps(journal), encoding="utf-8")
    os.replace(tmp_journal, part_dir / COMPACT_JOURNAL)
    table = pa.Table.from_arrays([pa.array(c) for c in cols], schema=SCHEMA)
    try:
        write_atomically(table, final)
    except TickStoreError:
        (part_dir / COMPACT_JOURNAL).unlink(missing_ok=True)
        raise
    finish_compaction(part_dir)
    return n
