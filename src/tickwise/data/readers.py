"""Readers for recorded market data: LEAN US-equity tick zips and Binance websocket captures.

Each reader turns one file (one symbol, one day or session) into a `SymbolTicks`: columns sorted
by `ts_event` (int64 ns UTC), with prices in dollars and sizes in shares or coins. Readers do no
validation beyond the file's own flags (LEAN's `suspicious` rows are dropped); the feed's
validator is the one door every tick passes.

Several prints in the same millisecond are common (LEAN and Binance stamp in ms). Ticks that
share a millisecond are spread 1 µs apart in file order, so no two ticks of a symbol carry the
same `ts_event` and two identical real prints are never mistaken for a replayed duplicate.

A file that cannot be read (corrupt or truncated archive, a line that is not the message it
claims to be, a time outside 1970..2262) raises `ReplayFileError`, one line naming the file.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import os
import re
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from tickwise.errors import one_line
from tickwise.model.ticks import TickKind

NEW_YORK = ZoneInfo("America/New_York")
LEAN_PRICE_SCALE = 10_000.0
MS = 1_000_000
DAY_MS = 86_400_000
INT64_END = 2**63
_TIE_STEP_NS = 1_000
_LEAN_NAME = re.compile(r"^(\d{8})_(trade|quote)\.zip$")
_BINANCE_NAME = re.compile(r"^([a-z0-9]+?)(usdt|busd|usdc|usd|btc|eth)_(\d{8})\.gz$")


class ReplayFileError(ValueError):
    """A recorded file that cannot be read: the file, and where and why, in one line."""


# What reading a damaged file raises on the way: archive, decompression, text and number errors.
_UNREADABLE = (OSError, EOFError, zlib.error, zipfile.BadZipFile, ValueError, IndexError)
# What a capture line that is not the message it claims raises while it is taken apart.
_BAD_MESSAGE = (ValueError, KeyError, TypeError, AttributeError, OverflowError, RecursionError)


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn whatever a damaged file raises into one `ReplayFileError` naming it."""
    try:
        yield
    except ReplayFileError:
        raise
    except _UNREADABLE as exc:
        raise ReplayFileError(f"{path}: cannot read ({one_line(exc)})") from None


class SourceFormat(Enum):
    LEAN_TRADE = "lean_trade"
    LEAN_QUOTE = "lean_quote"
    BINANCE_WS = "binance_ws"


@dataclass(slots=True)
class SymbolTicks:
    """One symbol's ticks from one file, sorted by `ts_event` (ns UTC)."""

    symbol: str
    ts_event: npt.NDArray[np.int64]
    price: npt.NDArray[np.float64]
    size: npt.NDArray[np.float64]
    kind: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return len(self.ts_event)

    def of_kind(self, kind: TickKind) -> SymbolTicks:
        keep = self.kind == kind
        return SymbolTicks(
            self.symbol, self.ts_event[keep], self.price[keep], self.size[keep], self.kind[keep]
        )


@dataclass(frozen=True, slots=True)
class ReplaySource:
    """A recorded file and what it holds; `start_ns` is a lower bound on its first tick."""

    path: Path
    symbol: str
    format: SourceFormat
    start_ns: int


def default_data_root() -> Path | None:
    """The recorded-data folder: `$TICKWISE_DATA`, else `<repo>/../shared/data`; None if absent."""
    env = os.environ.get("TICKWISE_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[3].parent / "shared" / "data"
    return root if root.is_dir() else None


# -- time ----------------------------------------------------------------------------------


def new_york_midnight_ns(day: dt.date) -> int:
    """Nanoseconds since the Unix epoch of 00:00 America/New_York on `day`."""
    local = dt.datetime(day.year, day.month, day.day, tzinfo=NEW_YORK)
    return int(local.timestamp()) * 1_000_000_000


def lean_ms_to_utc_ns(day: dt.date, ms: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """LEAN's "ms since midnight New York of the file's date" as ns UTC (DST days included)."""
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=NEW_YORK)
    before = midnight.utcoffset() or dt.timedelta(0)
    after = midnight.replace(hour=12).utcoffset() or dt.timedelta(0)
    wall_midnight_ns = int(midnight.replace(tzinfo=dt.UTC).timestamp()) * 1_000_000_000
    # Clocks change at 02:00 local: wall-clock ms before then use the midnight offset.
    offset_s = np.where(ms < 2 * 3_600_000, before.total_seconds(), after.total_seconds())
    return wall_midnight_ns + ms.astype(np.int64) * MS - (offset_s * 1e9).astype(np.int64)


def spread_ties(ts_ns: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Add 1 µs per earlier tick with the same (sorted) timestamp, up to 999 µs."""
    n = ts_ns.size
    if n == 0:
        return ts_ns.copy()
    idx = np.arange(n)
    new_run = np.empty(n, dtype=np.bool_)
    new_run[0] = True
    new_run[1:] = ts_ns[1:] != ts_ns[:-1]
    run_start = np.maximum.accumulate(np.where(new_run, idx, 0))
    rank = np.minimum(idx - run_start, 999)
    return ts_ns + rank * _TIE_STEP_NS


# -- LEAN equity ticks ---------------------------------------------------------------------


def _lean_day(path: Path) -> dt.date:
    match = _LEAN_NAME.match(path.name)
    if not match:
        raise ValueError(f"not a LEAN tick file name (YYYYMMDD_trade|quote.zip): {path.name}")
    return dt.datetime.strptime(match.group(1), "%Y%m%d").date()


def _read_zip_csv(path: Path, usecols: tuple[int, ...]) -> npt.NDArray[np.int64]:
    """The integer columns `usecols` of a LEAN zip; column 0 (ms since midnight) within a day."""
    with _reading(path):
        with zipfile.ZipFile(path) as archive:
            raw = archive.read(archive.namelist()[0])
        if not raw.strip():
            return np.empty((0, len(usecols)), dtype=np.int64)
        table = np.loadtxt(io.BytesIO(raw), delimiter=",", usecols=usecols, dtype=np.int64, ndmin=2)
    if not ((table[:, 0] >= 0) & (table[:, 0] < DAY_MS)).all():
        raise ReplayFileError(f"{path}: a time is not milliseconds within the file's day")
    return table


def read_lean_trades(path: Path, symbol: str | None = None) -> SymbolTicks:
    """A LEAN trade tick zip: `time_ms, price_x10000, size, exchange, condition, suspicious`."""
    day = _lean_day(path)
    table = _read_zip_csv(path, (0, 1, 2, 5))
    table = table[table[:, 3] == 0]
    utc = lean_ms_to_utc_ns(day, table[:, 0])
    order = np.argsort(utc, kind="stable")  # a file out of time order is read in time order
    table = table[order]
    ts = spread_ties(utc[order])
    return SymbolTicks(
        symbol=symbol or path.parent.name.upper(),
        ts_event=ts,
        price=table[:, 1] / LEAN_PRICE_SCALE,
        size=table[:, 2].astype(np.float64),
        kind=np.full(len(ts), TickKind.TRADE, dtype=np.uint8),
    )


def read_lean_quotes(path: Path, symbol: str | None = None) -> SymbolTicks:
    """A LEAN quote tick zip; each row moves one side (`bid` or `ask` columns, the other 0,0)."""
    day = _lean_day(path)
    table = _read_zip_csv(path, (0, 1, 2, 3, 4, 7))
    table = table[table[:, 5] == 0]
    ms, bid_px, bid_sz, ask_px, ask_sz = (table[:, i] for i in range(5))
    row = np.arange(len(table))
    is_bid = bid_px > 0
    is_ask = ask_px > 0
    rows = np.concatenate([row[is_bid], row[is_ask]])
    kind = np.concatenate(
        [
            np.full(int(is_bid.sum()), TickKind.BID, np.uint8),
            np.full(int(is_ask.sum()), TickKind.ASK, np.uint8),
        ]
    )
    price = np.concatenate([bid_px[is_bid], ask_px[is_ask]]) / LEAN_PRICE_SCALE
    size = np.concatenate([bid_sz[is_bid], ask_sz[is_ask]]).astype(np.float64)
    utc = lean_ms_to_utc_ns(day, ms[rows])
    order = np.lexsort((kind, rows, utc))  # time, then file order, then bid before ask
    ts = spread_ties(utc[order])
    return SymbolTicks(
        symbol or path.parent.name.upper(), ts, price[order], size[order], kind[order]
    )


# -- Binance websocket captures --------------------------------------------------------------


def binance_symbol(path: Path) -> str:
    """`btcusdt_20240808.gz` -> `BTC/USDT`; USD-M futures captures get a `-PERP` suffix."""
    match = _BINANCE_NAME.match(path.name)
    if not match:
        raise ValueError(f"not a Binance capture file name (e.g. btcusdt_20240808.gz): {path.name}")
    symbol = f"{match.group(1).upper()}/{match.group(2).upper()}"
    return f"{symbol}-PERP" if path.parent.name in {"usdm", "cm"} else symbol


def read_binance_capture(path: Path, symbol: str | None = None) -> SymbolTicks:
    """Trades and top-of-book (`bookTicker`) from a raw combined-stream capture.

    Exchange time is the trade time `T` (ms). Spot `bookTicker` messages carry no time, so
    they are stamped with the recorder's receive time shifted by the file's median
    (exchange − receive) offset measured on its trades. A bookTicker yields a tick only for a
    side whose price or size changed. Depth diffs and the REST snapshot are ignored.
    """
    trade_ts: list[int] = []
    trade_local: list[int] = []
    trade_px: list[float] = []
    trade_qty: list[float] = []
    book_local: list[int] = []
    book_ts: list[int] = []
    book_rows: list[tuple[float, float, float, float]] = []
    with _reading(path), gzip.open(path, "rt") as lines:
        for number, line in enumerate(lines, 1):
            local, _, payload = line.partition(" ")
            if '@trade"' not in payload and '@bookTicker"' not in payload:
                continue
            try:
                data = json.loads(payload)["data"]
                received = _time(local, INT64_END)
                if data.get("e") == "trade":
                    trade_ts.append(_time(data["T"], INT64_END // MS))
                    trade_local.append(received)
                    trade_px.append(float(data["p"]))
                    trade_qty.append(float(data["q"]))
                elif "b" in data and "a" in data:
                    book_local.append(received)
                    exchange = data.get("T") or data.get("E") or -1
                    book_ts.append(_time(exchange, INT64_END // MS, low=-1))
                    book_rows.append(
                        (float(data["b"]), float(data["B"]), float(data["a"]), float(data["A"]))
                    )
            except _BAD_MESSAGE as exc:
                raise ReplayFileError(
                    f"{path}: line {number}: not a trade or bookTicker message ({one_line(exc)})"
                ) from None
    t_ms = np.asarray(trade_ts, dtype=np.int64)
    t_local = np.asarray(trade_local, dtype=np.int64)
    offset = int(np.median(t_ms * MS - t_local)) if t_ms.size else 0
    b_local = np.asarray(book_local, dtype=np.int64)
    b_exch = np.asarray(book_ts, dtype=np.int64)
    stamped = b_local[b_exch <= 0]
    if (
        stamped.size
        and not 0 <= int(stamped.min()) + offset <= int(stamped.max()) + offset < INT64_END
    ):
        raise ReplayFileError(f"{path}: receive times and trade times are too far apart")
    b_ts = np.where(b_exch > 0, b_exch * MS, b_local + offset)
    book = np.asarray(book_rows, dtype=np.float64).reshape(-1, 4)
    bid_changed = _changed(book[:, 0], book[:, 1])
    ask_changed = _changed(book[:, 2], book[:, 3])
    # Trades: spread same-ms prints in file order; quotes keep their (ns) times.
    t_order = np.argsort(t_ms, kind="stable")
    parts_ts = [
        spread_ties(t_ms[t_order] * MS),
        b_ts[bid_changed],
        b_ts[ask_changed],
    ]
    ts = np.concatenate(parts_ts)
    price = np.concatenate(
        [np.asarray(trade_px)[t_order], book[bid_changed, 0], book[ask_changed, 2]]
    )
    size = np.concatenate(
        [np.asarray(trade_qty)[t_order], book[bid_changed, 1], book[ask_changed, 3]]
    )
    kind = np.concatenate(
        [
            np.full(t_ms.size, TickKind.TRADE, np.uint8),
            np.full(int(bid_changed.sum()), TickKind.BID, np.uint8),
            np.full(int(ask_changed.sum()), TickKind.ASK, np.uint8),
        ]
    )
    order = np.argsort(ts, kind="stable")
    return SymbolTicks(
        symbol=symbol or binance_symbol(path),
        ts_event=ts[order],
        price=price[order].astype(np.float64),
        size=size[order].astype(np.float64),
        kind=kind[order],
    )


def _time(value: object, end: int, low: int = 0) -> int:
    """A capture time: a whole number in [low, end) (a bookTicker's -1 means "none"); anything
    else is a malformed line (times must fit int64 nanoseconds)."""
    number = int(value) if isinstance(value, str | int) and not isinstance(value, bool) else None
    if number is None or not low <= number < end:
        raise ValueError(f"time {str(value)[:40]!r} is not a whole number in 1970..2262")
    return number


def _changed(
    price: npt.NDArray[np.float64], size: npt.NDArray[np.float64]
) -> npt.NDArray[np.bool_]:
    out = np.ones(price.size, dtype=np.bool_)
    out[1:] = (price[1:] != price[:-1]) | (size[1:] != size[:-1])
    return out


def _first_capture_ns(path: Path) -> int:
    with _reading(path), gzip.open(path, "rt") as lines:
        first = lines.readline().partition(" ")[0]
        # The recorder's clock ran behind the exchange's; a minute of margin keeps this a lower
        # bound. Not a number (or one too long for int()): start from the beginning of time.
        return int(first) - 60 * 1_000_000_000 if first.isascii() and first.isdigit() else 0


# -- discovery -----------------------------------------------------------------------------


def lean_source(path: Path) -> ReplaySource:
    match = _LEAN_NAME.match(path.name)
    if not match:
        raise ValueError(f"not a LEAN tick file name: {path.name}")
    fmt = SourceFormat.LEAN_TRADE if match.group(2) == "trade" else SourceFormat.LEAN_QUOTE
    return ReplaySource(path, path.parent.name.upper(), fmt, new_york_midnight_ns(_lean_day(path)))


def binance_source(path: Path) -> ReplaySource:
    return ReplaySource(
        path, binance_symbol(path), SourceFormat.BINANCE_WS, _first_capture_ns(path)
    )


def discover_sources(
    root: Path, symbols: set[str] | None = None, days: set[str] | None = None
) -> list[ReplaySource]:
    """Every LEAN tick file and Binance raw capture under `root`, optionally filtered.

    `symbols` keeps only those symbols (`BAC`, `BTC/USDT`); `days` keeps only file dates given
    as `YYYYMMDD`.
    """
    found: list[ReplaySource] = []
    for path in sorted((root / "equities/us/lean/tick").glob("*/*.zip")):
        if _LEAN_NAME.match(path.name):
            found.append(lean_source(path))
    for path in sorted((root / "crypto/binance/raw_ws_hftbacktest").glob("*/*.gz")):
        if _BINANCE_NAME.match(path.name):
            found.append(binance_source(path))
    if symbols is not None:
        found = [s for s in found if s.symbol in symbols]
    if days is not None:
        found = [s for s in found if _file_day(s.path) in days]
    return found


def _file_day(path: Path) -> str:
    digits = re.findall(r"\d{8}", path.name)
    return digits[-1] if digits else ""


def read_source(source: ReplaySource) -> SymbolTicks:
    """The ticks of one source, whatever its format."""
    if source.format is SourceFormat.LEAN_TRADE:
        return read_lean_trades(source.path, source.symbol)
    if source.format is SourceFormat.LEAN_QUOTE:
        return read_lean_quotes(source.path, source.symbol)
    return read_binance_capture(source.path, source.symbol)
