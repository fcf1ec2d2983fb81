"""Import recorded market data into the tick store: LEAN, Binance, and a documented table schema.

Formats (docs/market-data.md, "Tick store", has the full description):

- LEAN zips (`<resolution>/<ticker>/<YYYYMMDD>_<trade|quote>.zip`): tick files as the replay
  readers read them; second and minute *bars* become ticks at the bar's END time (start +
  resolution): a trade bar gives one trade at the close price with the bar's volume, a quote
  bar a bid and an ask at the closing bid/ask with the last sizes. Equity files are in New York
  time with prices x10000; crypto files (a `crypto` or `cryptofuture` folder above) are in UTC
  with plain prices. Hour and daily bars are not imported.
- Binance: raw websocket captures (`btcusdt_20240808.gz`, trades and book tickers) and
  data.binance.vision klines (`ADABTC-1m-2021-11-27.csv`, a trade at the close time).
- Tables (CSV with a header, or Parquet): columns `symbol`, `ts` (ISO-8601 text, UTC unless it
  carries an offset, or integer ns since the epoch), `price`, `size`, `kind` (`trade`, `bid`,
  `ask` or 0/1/2), and optionally `ts_recv` (same forms; defaults to `ts`). Other columns are
  ignored (`ticktable.py` reads them).

Every tick passes the `TickValidator`; bad rows are counted by reason and not imported. Rows
already in the store are skipped (and counted), so importing a file twice stores it once.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from tickwise.data.readers import (
    DAY_MS,
    INT64_END,
    LEAN_PRICE_SCALE,
    MS,
    SymbolTicks,
    lean_ms_to_utc_ns,
    read_binance_capture,
    read_lean_quotes,
    read_lean_trades,
)
from tickwise.data.tickstore import DAY_NS, EPOCH, TickStore, TickStoreError
from tickwise.data.ticktable import TickImportError, guard, read_tick_table
from tickwise.data.validation import TickValidator
from tickwise.model.instruments import AssetClass, Instrument, InstrumentRegistry
from tickwise.model.ticks import TickBatch, TickKind

FORMATS: tuple[str, ...] = ("auto", "lean", "binance", "csv", "parquet")
_LEAN_FILE = re.compile(r"^(\d{8})_(trade|quote)\.zip$")
_LEAN_RES_NS = {"second": 1_000_000_000, "minute": 60_000_000_000}
_CAPTURE_FILE = re.compile(r"^[a-z0-9]+_\d{8}\.gz$")
_KLINE_FILE = re.compile(r"^([A-Z0-9]+)-(\d+[smhdw])-\d{4}-\d{2}(-\d{2})?\.csv$")
_QUOTE_ASSET = re.compile(r"^([A-Za-z0-9]+?)(USDT|BUSD|USDC|TUSD|USD|EUR|GBP|BTC|ETH|BNB)$", re.I)


@dataclass(slots=True)
class ImportReport:
    """What an import did. `rows_read` counts ticks read from the files (before validation)."""

    files: int = 0
    rows_read: int = 0
    imported: int = 0
    already_stored: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    symbols: set[str] = field(default_factory=set)
    dates: set[dt.date] = field(default_factory=set)
    skipped_files: list[tuple[str, str]] = field(default_factory=list)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def reject(self, reason: str, count: int) -> None:
        if count:
            self.rejected[reason] = self.rejected.get(reason, 0) + int(count)

    def merge(self, other: ImportReport) -> None:
        self.files += other.files
        self.rows_read += other.rows_read
        self.imported += other.imported
        self.already_stored += other.already_stored
        for reason, count in other.rejected.items():
            self.reject(reason, count)
        self.symbols |= other.symbols
        self.dates |= other.dates
        self.skipped_files.extend(other.skipped_files)


# -- the common path: validate, then write ----------------------------------------------------


def _registry(symbols: Sequence[str]) -> InstrumentRegistry:
    """A throw-away registry that only maps index <-> symbol for the validator and the store."""
    return InstrumentRegistry(
        Instrument(i, s, AssetClass.CRYPTO if "/" in s else AssetClass.EQUITY, 0.01, 1e-9, 0, True)
        for i, s in enumerate(symbols)
    )


def _ingest(
    store: TickStore, report: ImportReport, symbols: Sequence[str], batch: TickBatch
) -> None:
    """Sort by (symbol, time), validate, and store `batch` (instrument = index in `symbols`)."""
    report.rows_read += len(batch)
    if len(batch) == 0:
        return
    batch = batch.take(np.lexsort((batch.ts_event, batch.instrument)))
    validator = TickValidator(len(symbols))
    good = validator.validate(batch)
    for reason, count in validator.counts.items():
        report.reject(reason, count)
    if len(good) == 0:
        return
    written = store.write(good, _registry(symbols), skip_existing=True)
    report.imported += written
    report.already_stored += len(good) - written
    report.symbols.update(symbols[int(i)] for i in np.unique(good.instrument))
    report.dates.update(
        EPOCH + dt.timedelta(days=int(d)) for d in np.unique(good.ts_event // DAY_NS)
    )


def _ingest_ticks(store: TickStore, report: ImportReport, ticks: SymbolTicks) -> None:
    n = len(ticks)
    batch = TickBatch.from_arrays(np.zeros(n), ticks.ts_event, ticks.price, ticks.size, ticks.kind)
    _ingest(store, report, [ticks.symbol], batch)


def _files(path: Path, pattern: str = "*") -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob(pattern) if p.is_file())
    if path.is_file():
        return [path]
    raise TickImportError(f"{path}: no such file or directory")


# -- LEAN -------------------------------------------------------------------------------------


def import_lean(path: Path | str, store: TickStore) -> ImportReport:
    """Import LEAN tick and second/minute bar zips (a file or every one under a folder)."""
    report = ImportReport()
    for file in _files(Path(path), "*.zip"):
        why = _lean_unsupported(file)
        if why:
            report.skipped_files.append((str(file), why))
            continue
        try:
            ticks = _read_lean(file)
        except (OSError, ValueError, zipfile.BadZipFile, IndexError, pa.ArrowException) as exc:
            raise guard(file, exc) from None
        report.files += 1
        for part in ticks:
            _ingest_ticks(store, report, part)
    return report


def _lean_unsupported(file: Path) -> str:
    if not _LEAN_FILE.match(file.name):
        return "not a LEAN intraday file (YYYYMMDD_trade|quote.zip); hour/daily bars not imported"
    resolution = file.parent.parent.name
    if resolution not in ("tick", *_LEAN_RES_NS):
        return f"unknown LEAN resolution folder {resolution!r}"
    if resolution == "tick" and _lean_is_crypto(file):
        return "LEAN crypto tick files are not supported"
    return ""


def _lean_is_crypto(file: Path) -> bool:
    return bool({"crypto", "cryptofuture"} & set(file.parts[:-3]))


def _lean_symbol(file: Path) -> str:
    ticker = file.parent.name
    if not _lean_is_crypto(file):
        return ticker.upper()
    match = _QUOTE_ASSET.match(ticker)
    symbol = f"{match.group(1)}/{match.group(2)}".upper() if match else ticker.upper()
    return f"{symbol}-PERP" if "cryptofuture" in file.parts[:-3] else symbol


def _read_lean(file: Path) -> list[SymbolTicks]:
    symbol = _lean_symbol(file)
    match = _LEAN_FILE.match(file.name)
    assert match is not None
    resolution = file.parent.parent.name
    if resolution == "tick":
        reader = read_lean_trades if match.group(2) == "trade" else read_lean_quotes
        return [reader(file, symbol)]
    day = dt.datetime.strptime(match.group(1), "%Y%m%d").date()
    with zipfile.ZipFile(file) as archive:
        raw = archive.read(archive.namelist()[0])
    if not raw.strip():
        return []
    table = _csv_numbers(raw)
    crypto = _lean_is_crypto(file)
    times = table[:, 0]
    if not (np.isfinite(times) & (times >= 0) & (times < DAY_MS)).all():
        raise ValueError("a bar time is not milliseconds within the file's day")
    ms = times.astype(np.int64)
    start = (day - EPOCH).days * DAY_NS + ms * MS if crypto else lean_ms_to_utc_ns(day, ms)
    end = start + _LEAN_RES_NS[resolution]
    scale = 1.0 if crypto else LEAN_PRICE_SCALE
    if match.group(2) == "trade":  # time, open, high, low, close, volume
        kind = np.full(len(end), TickKind.TRADE, np.uint8)
        return [SymbolTicks(symbol, end, table[:, 4] / scale, table[:, 5], kind)]
    # time, bid o/h/l/c, last bid size, ask o/h/l/c, last ask size: closing bid and ask
    has_bid, has_ask = table[:, 4] > 0, table[:, 9] > 0
    ts = np.concatenate([end[has_bid], end[has_ask]])
    price = np.concatenate([table[has_bid, 4], table[has_ask, 9]]) / scale
    size = np.concatenate([table[has_bid, 5], table[has_ask, 10]])
    kind = np.repeat(
        np.array([TickKind.BID, TickKind.ASK], np.uint8), [has_bid.sum(), has_ask.sum()]
    )
    order = np.argsort(ts, kind="stable")
    return [SymbolTicks(symbol, ts[order], price[order], size[order], kind[order])]


def _csv_numbers(raw: bytes) -> npt.NDArray[np.float64]:
    """A headerless numeric CSV as a float matrix; empty fields (an absent side) become 0."""
    read = pacsv.ReadOptions(autogenerate_column_names=True)
    table = pacsv.read_csv(io.BytesIO(raw), read_options=read)
    columns = [pc.fill_null(col.cast(pa.float64()), 0.0).to_numpy() for col in table.itercolumns()]
    return np.column_stack(columns) if columns else np.empty((0, 0))


# -- Binance ----------------------------------------------------------------------------------


def import_binance(path: Path | str, store: TickStore) -> ImportReport:
    """Import Binance websocket captures and kline CSVs (a file or every one under a folder)."""
    report = ImportReport()
    for file in _files(Path(path)):
        if _CAPTURE_FILE.match(file.name):
            read = _read_capture
        elif _KLINE_FILE.match(file.name):
            read = _read_klines
        else:
            report.skipped_files.append((str(file), "not a Binance capture or kline file"))
            continue
        try:
            ticks = read(file)
        except (OSError, ValueError, EOFError, KeyError, IndexError) as exc:
            raise guard(file, exc) from None
        report.files += 1
        _ingest_ticks(store, report, ticks)
    return report


def _read_capture(file: Path) -> SymbolTicks:
    return read_binance_capture(file)


def _read_klines(file: Path) -> SymbolTicks:
    """data.binance.vision klines: a trade at each bar's close time, close price, volume."""
    match = _KLINE_FILE.match(file.name)
    assert match is not None
    pair = _QUOTE_ASSET.match(match.group(1))
    symbol = f"{pair.group(1)}/{pair.group(2)}".upper() if pair else match.group(1)
    text = file.read_text(encoding="utf-8")
    lines = text.splitlines()
    if lines and not lines[0][:1].isdigit():  # newer files carry a header line
        lines = lines[1:]
    if not lines:
        return SymbolTicks(symbol, *(np.empty(0, t) for t in (np.int64, float, float, np.uint8)))
    table = np.loadtxt(lines, delimiter=",", usecols=(4, 5, 6), dtype=np.float64, ndmin=2)
    close = table[:, 2]
    if not (np.isfinite(close) & (close >= 0)).all():
        raise ValueError("a close time is not an epoch time")
    unit = 1_000 if close.max() > 10**14 else MS  # microseconds in files from 2025 on
    if close.max() + 1 >= INT64_END / unit:
        raise ValueError("a close time is past 2262")
    end = (close.astype(np.int64) + 1) * unit
    kind = np.full(len(end), TickKind.TRADE, np.uint8)
    return SymbolTicks(symbol, end, table[:, 0], table[:, 1], kind)


# -- tables (CSV / Parquet) ---------------------------------------------------------------------


def import_table(path: Path | str, store: TickStore, fmt: str | None = None) -> ImportReport:
    """Import a CSV (with header) or Parquet file in the documented schema (module docstring)."""
    table = read_tick_table(Path(path), fmt)
    report = ImportReport(files=1)
    report.reject("bad_symbol", int(table.bad_symbol.sum()))
    report.reject("bad_timestamp", int((table.bad_time & ~table.bad_symbol).sum()))
    keep = np.flatnonzero(~table.bad_symbol & ~table.bad_time)
    report.rows_read += len(table.ts_event) - len(keep)
    batch = TickBatch(
        instrument=table.symbol_index[keep].astype(np.uint32),
        ts_event=table.ts_event[keep],
        ts_recv=table.ts_recv[keep],
        price=table.price[keep],
        size=table.size[keep],
        kind=table.kind[keep],
    )
    _ingest(store, report, table.symbols, batch)
    return report


# -- any path -----------------------------------------------------------------------------------


def detect_format(file: Path) -> str | None:
    """The import format a file looks like, from its name; None when it is none of them."""
    name = file.name
    if name.endswith(".zip"):
        return "lean" if _LEAN_FILE.match(name) else None
    if name.endswith(".gz"):
        return "binance" if _CAPTURE_FILE.match(name) else None
    if _KLINE_FILE.match(name):
        return "binance"
    suffix = file.suffix.lower()
    return {".csv": "csv", ".parquet": "parquet"}.get(suffix)


def import_paths(paths: Iterable[Path | str], store: TickStore, fmt: str = "auto") -> ImportReport:
    """Import files and folders. With `auto`, each file's format comes from its name; in a
    folder, files of no known format, or tables without the documented columns, are skipped."""
    if fmt not in FORMATS:
        raise TickImportError(f"unknown format {fmt!r} (expected one of: {', '.join(FORMATS)})")
    report = ImportReport()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise TickImportError(f"{path}: no such file or directory")
        if fmt != "auto":
            report.merge(_import_one(path, store, fmt))
            continue
        in_folder = path.is_dir()
        for file in _files(path):
            found = detect_format(file)
            if found is None:
                if not in_folder:
                    raise TickImportError(f"{file}: unknown format; name one with --format")
                report.skipped_files.append((str(file), "unknown format"))
                continue
            try:
                report.merge(_import_one(file, store, found))
            except TickImportError as exc:
                if not in_folder or found not in ("csv", "parquet"):
                    raise
                report.skipped_files.append((str(file), str(exc).removeprefix(f"{file}: ")))
    return report


def _import_one(path: Path, store: TickStore, fmt: str) -> ImportReport:
    try:
        if fmt == "lean":
            return import_lean(path, store)
        if fmt == "binance":
            return import_binance(path, store)
        if path.is_dir():
            report = ImportReport()
            for file in _files(path, f"*.{fmt}"):
                report.merge(import_table(file, store, fmt))
            return report
        return import_table(path, store, fmt)
    except TickStoreError as exc:
        raise TickImportError(str(exc)) from None
