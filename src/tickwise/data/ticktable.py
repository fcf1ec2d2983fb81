"""The documented tick table (CSV with a header, or Parquet), read into typed columns.

Columns: `symbol` (text), `ts` (ISO-8601 text, UTC unless it carries an offset, or integer ns
since the epoch; in Parquet also a timestamp column), `price`, `size` (numbers), `kind`
(`trade`/`bid`/`ask` in any case, or 0/1/2), and optionally `ts_recv` (like `ts`; defaults to
`ts`). Other columns are ignored. A value that cannot be read never raises: a bad symbol or
time marks its row (`bad_symbol`, `bad_time`), a bad price or size becomes NaN and a bad kind
255, which the validator then rejects by reason. Clean columns convert in one vectorised cast;
only a column with a bad value falls back to reading its values one by one.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

TABLE_COLUMNS = ("symbol", "ts", "price", "size", "kind")
MAX_SYMBOL_LEN = 64
_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?$",
    re.ASCII,
)
_KINDS = {"trade": 0, "t": 0, "0": 0, "bid": 1, "b": 1, "1": 1, "ask": 2, "a": 2, "2": 2}


class TickImportError(ValueError):
    """A file that cannot be imported, with its path and the reason in one line."""


@dataclass(slots=True)
class TickTable:
    """One table's rows: `symbol_index` points into `symbols` (valid symbols, sorted)."""

    symbols: list[str]
    symbol_index: npt.NDArray[np.int64]
    ts_event: npt.NDArray[np.int64]
    ts_recv: npt.NDArray[np.int64]
    price: npt.NDArray[np.float64]
    size: npt.NDArray[np.float64]
    kind: npt.NDArray[np.uint8]
    bad_symbol: npt.NDArray[np.bool_]
    bad_time: npt.NDArray[np.bool_]


def read_tick_table(file: Path, fmt: str | None = None) -> TickTable:
    """Read `file` (`fmt` "csv" or "parquet"; default from the suffix) into typed columns."""
    if not file.is_file():
        raise TickImportError(f"{file}: no such file")
    kind = fmt or ("parquet" if file.suffix.lower() == ".parquet" else "csv")
    table = _read_table(file, kind)
    missing = [c for c in TABLE_COLUMNS if c not in table.column_names]
    if missing:
        raise TickImportError(
            f"{file}: missing column(s) {', '.join(missing)} "
            f"(expected {', '.join(TABLE_COLUMNS)}[, ts_recv])"
        )
    symbol_index, symbols, bad_symbol = _symbols(file, table.column("symbol"))
    ts, bad_time = _timestamps(file, table.column("ts"))
    ts_recv = ts
    if "ts_recv" in table.column_names:
        ts_recv, bad_recv = _timestamps(file, table.column("ts_recv"))
        bad_time = bad_time | bad_recv
    return TickTable(
        symbols=symbols,
        symbol_index=symbol_index,
        ts_event=ts,
        ts_recv=ts_recv,
        price=_numbers(file, table.column("price")),
        size=_numbers(file, table.column("size")),
        kind=_kinds(file, table.column("kind")),
        bad_symbol=bad_symbol,
        bad_time=bad_time,
    )


def guard(path: Path, exc: Exception) -> TickImportError:
    """`exc` as a one-line import error naming `path`."""
    text = str(exc).strip().splitlines()
    return TickImportError(f"{path}: cannot read ({text[0] if text else type(exc).__name__})")


def _read_table(file: Path, kind: str) -> pa.Table:
    try:
        if kind == "parquet":
            return pq.read_table(file)
        convert = pacsv.ConvertOptions(
            column_types={c: pa.string() for c in (*TABLE_COLUMNS, "ts_recv")},
            strings_can_be_null=True,
        )
        return pacsv.read_csv(file, convert_options=convert)
    except (pa.ArrowException, OSError) as exc:
        raise guard(file, exc) from None


def _symbols(
    file: Path, column: pa.ChunkedArray
) -> tuple[npt.NDArray[np.int64], list[str], npt.NDArray[np.bool_]]:
    """Index of each row's symbol in the returned list; rows with no usable symbol are bad."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        column = _cast(file, "symbol", column, pa.string())
    encoded = pc.dictionary_encode(column.combine_chunks())
    names = [s.strip() if isinstance(s, str) else "" for s in encoded.dictionary.to_pylist()]
    valid = np.array([0 < len(s) <= MAX_SYMBOL_LEN and s.isprintable() for s in names], bool)
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    nulls = np.asarray(encoded.indices.is_null().to_numpy(zero_copy_only=False), bool)
    indices = np.where(nulls, 0, indices).astype(np.int64)
    bad = nulls | ~valid[indices] if len(valid) else np.ones(len(indices), bool)
    unique = sorted({s for s, ok in zip(names, valid, strict=True) if ok})
    position = {s: i for i, s in enumerate(unique)}
    remap = np.array([position.get(s, 0) for s in names], dtype=np.int64)
    return (remap[indices] if len(remap) else indices), unique, bad


def _cast(file: Path, name: str, column: pa.ChunkedArray, to: pa.DataType) -> pa.ChunkedArray:
    try:
        return pc.cast(column, to)
    except pa.ArrowException:
        raise TickImportError(
            f"{file}: column {name!r} of type {column.type} is unusable"
        ) from None


def _timestamps(
    file: Path, column: pa.ChunkedArray
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """ns since the epoch (UTC) of each row, and which rows had no usable time."""
    col = column.combine_chunks()
    if pa.types.is_timestamp(col.type):
        col = pc.cast(col, pa.timestamp("ns", tz=col.type.tz), safe=False).cast(pa.int64())
    elif pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        col = _text_times(col)
    elif pa.types.is_floating(col.type):
        values = col.to_numpy(zero_copy_only=False)
        ok = np.isfinite(values) & (values == np.round(values)) & (np.abs(values) < 2.0**62)
        col = pa.array(np.where(ok, values, 0).astype(np.int64), mask=~ok)
    elif not pa.types.is_integer(col.type):
        col = _cast(file, "ts", pa.chunked_array([col]), pa.int64()).combine_chunks()
    bad = np.asarray(col.is_null().to_numpy(zero_copy_only=False), bool)
    values = pc.fill_null(col.cast(pa.int64(), safe=False), 0).to_numpy(zero_copy_only=False)
    values = np.asarray(values, dtype=np.int64)
    bad |= values < 0
    return np.where(bad, 0, values), bad


def _text_times(col: pa.Array) -> pa.Array:
    """Integer ns or ISO-8601 text to int64 ns; unparseable text becomes null."""
    for target in (pa.int64(), pa.timestamp("ns"), pa.timestamp("ns", tz="UTC")):
        try:
            return pc.cast(col, target).cast(pa.int64())
        except pa.ArrowException:
            continue
    return pa.array([_parse_time(s) for s in col.to_pylist()], type=pa.int64())


_INT64_MAX = 2**63 - 1
_MAX_TIME_DIGITS = 19  # int64 nanoseconds


def _parse_time(text: str | None) -> int | None:
    """One timestamp: integer ns, or ISO-8601 (naive means UTC) with up to 9 decimals; None for
    anything else, including times an int64 of nanoseconds cannot hold."""
    if text is None:
        return None
    text = text.strip()
    digits = text.removeprefix("-")
    if digits.isascii() and digits.isdigit():
        if len(digits.lstrip("0")) > _MAX_TIME_DIGITS:
            return None
        value = int(text)
        return value if -_INT64_MAX <= value <= _INT64_MAX else None
    match = _ISO.match(text)
    if not match:
        return None
    y, mo, d, h, mi, s, frac, zone = match.groups()
    try:
        moment = dt.datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0))
    except ValueError:
        return None
    offset = 0
    if zone and zone != "Z":
        digits = zone[1:].replace(":", "")
        offset = (int(digits[:2]) * 60 + int(digits[2:] or 0)) * 60 * (1 if zone[0] == "+" else -1)
    seconds = calendar.timegm(moment.timetuple())
    ns = (seconds - offset) * 1_000_000_000 + int((frac or "0").ljust(9, "0"))
    return ns if -_INT64_MAX <= ns <= _INT64_MAX else None


def _numbers(file: Path, column: pa.ChunkedArray) -> npt.NDArray[np.float64]:
    """float64 values; missing or unparseable ones become NaN (the validator rejects them)."""
    col = column.combine_chunks()
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        try:
            col = pc.cast(col, pa.float64())
        except pa.ArrowException:
            col = pa.array([_parse_float(s) for s in col.to_pylist()], type=pa.float64())
    elif not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)):
        col = _cast(file, "price/size", pa.chunked_array([col]), pa.float64()).combine_chunks()
    filled = pc.fill_null(col.cast(pa.float64()), np.nan)
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=np.float64)


def _parse_float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _kinds(file: Path, column: pa.ChunkedArray) -> npt.NDArray[np.uint8]:
    """TickKind codes; anything else becomes 255 (the validator counts it as unknown_kind)."""
    col = column.combine_chunks()
    if pa.types.is_integer(col.type):
        values = pc.fill_null(col.cast(pa.int64()), -1).to_numpy(zero_copy_only=False)
        return np.where((values >= 0) & (values <= 2), values, 255).astype(np.uint8)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        col = _cast(file, "kind", pa.chunked_array([col]), pa.string()).combine_chunks()
    encoded = pc.dictionary_encode(col)
    codes = np.array(
        [_KINDS.get(str(s).strip().lower(), 255) for s in encoded.dictionary.to_pylist()] or [255],
        dtype=np.uint8,
    )
    indices = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    return np.where(indices >= 0, codes[np.maximum(indices, 0)], 255).astype(np.uint8)
