"""Parsers for the live market-data streams: websocket frames in, `TickBatch`es out.

Pure library code (no network): the socket owner calls `feed(frame, recv_ns)` with each frame
as received and forwards the batch to the feed's `TickValidator`. Parsers check structure only
(is it the right shape, are the fields numbers, is the symbol known); tick sanity (positive
prices, order, repeats) is the validator's job and is not repeated here. Bad input never
raises: each rejected frame or message is counted in `counters` under one reason.

    frames, messages, ticks    what came in and what went out
    data                       trade/quote messages accepted (a quote repeating the last one
                               is accepted but yields no tick)
    control, ignored           control messages / data messages of types not turned into ticks
    unknown_symbol             a data message for a symbol the registry does not hold
    malformed_<reason>         frame (undecodable or wrong shape), message (not an object or
                               no type), symbol, price, size, time, id
    gaps                       Binance: trade ids skipped (sum of the holes, per symbol)
    duplicates                 Binance: trades whose id is not above the last one; bookTickers
                               whose update id equals the last one
    stale                      Binance: bookTickers whose update id is below the last one
    restamped                  Binance: messages stamped later than their own time (see below)

Quotes: a quote update yields a BID tick and/or an ASK tick only for the side whose price or
size changed since the last quote of that symbol (both on its first quote), like the Binance
capture reader in `tickwise.data.readers`; an unchanged side carries no information.

Alpaca (venues.md §1.6): frames are arrays of messages, as JSON text or msgpack binary. Trades
(`T:"t"`) and quotes (`T:"q"`) become ticks stamped with their `t` (RFC 3339 with up to 9
fractional digits and any offset, or a msgpack Timestamp). `success`, `subscription` and
`error` are recorded (`authenticated`, `subscriptions`, `errors`); bars, statuses,
corrections, cancels and the rest are counted as `ignored`. Trade ids are not checked for gaps:
Alpaca does not document them as contiguous per symbol. Times must lie in 1970..2262 (int64 ns).

Binance (venues.md §3.9): frames are combined-stream objects `{"stream": ..., "data": ...}`.
`@trade` gives a TRADE tick stamped with the trade time `T`; trades of a symbol sharing a
millisecond are spread 1 µs apart (as the capture reader does), so two identical real prints
are not taken for a replay. Spot `@bookTicker` carries no time: it is stamped with the time `T`
of the latest trade received on this parser (any symbol: one connection) plus the local time
elapsed since that trade arrived, i.e. receive time + `clock_offset_ns` (= `T` − receive time
of that trade; 0 before the first trade). On the recorded captures this keeps quotes between
the trades around them better than a fixed offset does. Futures bookTickers carry `T` and
use it. Each message of a symbol is stamped at least 1 ns after the symbol's previous one
(counted as `restamped` when moved), so the validator never drops a tick as out of order or
as a repeat merely because two clocks or two streams were mixed. On the recorded spot captures
about one message in seven is moved, by a median 1 ms (at most tens of ms); on USD-M, where
the trade and bookTicker streams arrive out of time order, nearly half, mostly by 1 ns.
Other streams (depth, klines) are counted as `ignored`; subscribe answers
`{"result": ..., "id": ...}` as `control`.
"""

from __future__ import annotations

import calendar
import json
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import msgpack
import numpy as np

from tickwise.model.instruments import InstrumentRegistry
from tickwise.model.ticks import TickBatch, TickKind
from tickwise.venues.binance.wire import wire_pair

MS = 1_000_000
_INT64_END = 2**63
_TIE_STEP_NS = 1_000  # same-millisecond trades are spread 1 µs apart, up to 999 µs
_MAX_ERRORS_KEPT = 100
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)

AlpacaEncoding = Literal["json", "msgpack"]


class _MalformedError(Exception):
    """A message field that cannot be read; `reason` names the counter (`malformed_<reason>`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def rfc3339_ns(text: str) -> int:
    """An RFC 3339 timestamp (up to 9 fractional digits, `Z` or `±hh:mm`) as ns UTC."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text[:40]!r}")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
        raise ValueError(f"RFC 3339 timestamp has an invalid date: {text[:40]!r}")
    if hour > 23 or minute > 59 or second > 60:
        raise ValueError(f"RFC 3339 timestamp has an invalid time: {text[:40]!r}")
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if match.group(9):
        offset = int(match.group(10)) * 3600 + int(match.group(11)) * 60
        seconds -= offset if match.group(9) == "+" else -offset
    fraction = (match.group(7) or "").ljust(9, "0")
    ns = seconds * 1_000_000_000 + int(fraction)
    if not 0 <= ns < _INT64_END:
        raise ValueError(f"RFC 3339 timestamp outside 1970..2262: {text[:40]!r}")
    return ns


def _number(value: object, reason: str) -> float:
    """A JSON/msgpack number or a decimal string as float (NaN/inf left to the validator)."""
    if isinstance(value, bool):
        raise _MalformedError(reason)
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:
            raise _MalformedError(reason) from None
    if isinstance(value, str) and len(value) <= 64:
        try:
            return float(value)
        except ValueError:
            raise _MalformedError(reason) from None
    raise _MalformedError(reason)


def _integer(value: object, reason: str, limit: int = _INT64_END) -> int:
    """A non-negative integer below `limit` (ids and times must fit an int64)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < limit:
        raise _MalformedError(reason)
    return value


@dataclass(slots=True)
class _Quote:
    bid_price: float = float("nan")
    bid_size: float = float("nan")
    ask_price: float = float("nan")
    ask_size: float = float("nan")


class _Ticks:
    """Row-wise accumulator for one frame's ticks."""

    __slots__ = ("instrument", "kind", "price", "size", "ts_event")

    def __init__(self) -> None:
        self.instrument: list[int] = []
        self.ts_event: list[int] = []
        self.price: list[float] = []
        self.size: list[float] = []
        self.kind: list[int] = []

    def add(self, instrument: int, ts_event: int, price: float, size: float, kind: int) -> None:
        self.instrument.append(instrument)
        self.ts_event.append(ts_event)
        self.price.append(price)
        self.size.append(size)
        self.kind.append(kind)

    def quote(self, instrument: int, ts: int, last: _Quote, new: _Quote) -> None:
        """BID and/or ASK ticks for the sides of `new` that differ from `last`; updates `last`."""
        if new.bid_price != last.bid_price or new.bid_size != last.bid_size:
            self.add(instrument, ts, new.bid_price, new.bid_size, TickKind.BID)
        if new.ask_price != last.ask_price or new.ask_size != last.ask_size:
            self.add(instrument, ts, new.ask_price, new.ask_size, TickKind.ASK)
        last.bid_price, last.bid_size = new.bid_price, new.bid_size
        last.ask_price, last.ask_size = new.ask_price, new.ask_size

    def batch(self, recv_ns: int) -> TickBatch:
        if not self.instrument:
            return TickBatch.empty()
        n = len(self.instrument)
        return TickBatch.from_arrays(
            self.instrument,
            np.asarray(self.ts_event, dtype=np.int64),
            self.price,
            self.size,
            self.kind,
            ts_recv=np.full(n, recv_ns, dtype=np.int64),
        )


class _StreamParser:
    """Counters shared by both parsers."""

    def __init__(self) -> None:
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "frames",
                "messages",
                "ticks",
                "data",
                "control",
                "ignored",
                "unknown_symbol",
                "gaps",
                "duplicates",
                "stale",
                "restamped",
            ),
            0,
        )

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def _malformed(self, reason: str) -> None:
        self._count(f"malformed_{reason}")

    @property
    def malformed(self) -> int:
        """All malformed frames and messages so far."""
        return sum(v for k, v in self.counters.items() if k.startswith("malformed_"))


class AlpacaStreamParser(_StreamParser):
    """Alpaca stock/crypto market-data frames (JSON text or msgpack binary) to tick batches."""

    def __init__(self, registry: InstrumentRegistry, encoding: AlpacaEncoding = "json") -> None:
        super().__init__()
        if encoding not in ("json", "msgpack"):
            raise ValueError(
                f"Alpaca stream encoding must be 'json' or 'msgpack', not {encoding!r}"
            )
        self.encoding: AlpacaEncoding = encoding
        self._index: dict[str, int] = {inst.symbol: inst.index for inst in registry}
        self._quotes: dict[int, _Quote] = {}
        self.authenticated = False
        self.connected = False
        self.subscriptions: dict[str, tuple[str, ...]] = {}
        self.errors: deque[tuple[int, str]] = deque(maxlen=_MAX_ERRORS_KEPT)

    def feed(self, frame: bytes | str, recv_ns: int) -> TickBatch:
        """The ticks of one frame (a list of messages); everything else is counted or recorded."""
        self._count("frames")
        messages = self._decode(frame)
        if messages is None:
            self._malformed("frame")
            return TickBatch.empty()
        ticks = _Ticks()
        for message in messages:
            self._count("messages")
            try:
                self._message(message, ticks)
            except _MalformedError as bad:
                self._malformed(bad.reason)
        self._count("ticks", len(ticks.instrument))
        return ticks.batch(recv_ns)

    def _decode(self, frame: bytes | str) -> list[Any] | None:
        try:
            if self.encoding == "json":
                decoded = json.loads(frame)
            elif isinstance(frame, str):
                return None
            else:
                decoded = msgpack.unpackb(frame, raw=False, timestamp=0)
        # The decoders raise assorted ValueError/TypeError/msgpack subclasses on garbage.
        except Exception:
            return None
        return decoded if isinstance(decoded, list) else None

    def _message(self, message: object, ticks: _Ticks) -> None:
        if not isinstance(message, Mapping):
            raise _MalformedError("message")
        kind = message.get("T")
        if not isinstance(kind, str):
            raise _MalformedError("message")
        if kind in ("t", "q"):
            self._data(kind, message, ticks)
        elif kind in ("success", "subscription", "error"):
            self._control(kind, message)
        else:
            self._count("ignored")

    def _data(self, kind: str, message: Mapping[Any, Any], ticks: _Ticks) -> None:
        symbol = message.get("S")
        if not isinstance(symbol, str):
            raise _MalformedError("symbol")
        if kind == "t":
            price = _number(message.get("p"), "price")
            size = _number(message.get("s"), "size")
            ts = self._time(message.get("t"))
            instrument = self._instrument(symbol)
            if instrument is not None:
                ticks.add(instrument, ts, price, size, TickKind.TRADE)
                self._count("data")
            return
        new = _Quote(
            _number(message.get("bp"), "price"),
            _number(message.get("bs"), "size"),
            _number(message.get("ap"), "price"),
            _number(message.get("as"), "size"),
        )
        ts = self._time(message.get("t"))
        instrument = self._instrument(symbol)
        if instrument is not None:
            ticks.quote(instrument, ts, self._quotes.setdefault(instrument, _Quote()), new)
            self._count("data")

    def _instrument(self, symbol: str) -> int | None:
        index = self._index.get(symbol)
        if index is None:
            self._count("unknown_symbol")
        return index

    @staticmethod
    def _time(value: object) -> int:
        if isinstance(value, msgpack.Timestamp):
            return _integer(value.to_unix_nano(), "time")
        if isinstance(value, str):
            try:
                return rfc3339_ns(value)
            except ValueError:
                raise _MalformedError("time") from None
        raise _MalformedError("time")

    def _control(self, kind: str, message: Mapping[Any, Any]) -> None:
        self._count("control")
        if kind == "success":
            msg = message.get("msg")
            if msg == "connected":
                self.connected = True
            elif msg == "authenticated":
                self.authenticated = True
        elif kind == "subscription":
            self.subscriptions = {
                str(channel): tuple(s for s in symbols if isinstance(s, str))
                for channel, symbols in message.items()
                if channel != "T" and isinstance(symbols, list)
            }
        else:
            code = message.get("code")
            text = message.get("msg")
            self.errors.append(
                (
                    code if isinstance(code, int) and not isinstance(code, bool) else -1,
                    text if isinstance(text, str) else "",
                )
            )


class BinanceStreamParser(_StreamParser):
    """Binance combined-stream frames (`@trade`, `@bookTicker`) to tick batches.

    Wire symbols (`BTCUSDT`) map to registry symbols with the `/` removed (`BTC/USDT`), the
    naming `tickwise.data.readers.binance_symbol` gives captures, or to a USD pair (`BTC/USD`,
    quoted in USDT at Binance, `binance.wire.wire_pair`); with `futures=True` only
    `-PERP` instruments (`BTC/USDT-PERP`) match, as for USD-M captures.
    """

    def __init__(self, registry: InstrumentRegistry, *, futures: bool = False) -> None:
        super().__init__()
        self._index: dict[str, int] = {}
        for inst in registry:
            perp = inst.symbol.endswith("-PERP")
            if perp != futures:
                continue
            wire = inst.symbol.removesuffix("-PERP").replace("/", "").upper()
            self._index.setdefault(wire, inst.index)
        for inst in [] if futures else registry:
            pair = wire_pair(inst.symbol)
            if pair is not None:  # "BTC/USD" trades as BTCUSDT, unless BTC/USDT is listed too
                self._index.setdefault(pair[1], inst.index)
        self._last_trade_id: dict[int, int] = {}
        self._last_trade_ms: dict[int, tuple[int, int]] = {}  # (ms, same-ms rank)
        self._last_update_id: dict[int, int] = {}
        self._last_ts: dict[int, int] = {}
        self._quotes: dict[int, _Quote] = {}
        self.clock_offset_ns: int | None = None
        self.results: deque[tuple[object, object]] = deque(maxlen=_MAX_ERRORS_KEPT)

    def feed(self, frame: bytes | str, recv_ns: int) -> TickBatch:
        """The ticks of one combined-stream frame; everything else is counted."""
        self._count("frames")
        try:
            decoded = json.loads(frame)
        # json raises ValueError (incl. UnicodeDecodeError) or RecursionError on garbage.
        except (ValueError, TypeError, RecursionError):
            decoded = None
        if not isinstance(decoded, dict):
            self._malformed("frame")
            return TickBatch.empty()
        if (
            "stream" not in decoded
            and "id" in decoded
            and ("result" in decoded or "error" in decoded)
        ):
            self._count("messages")
            self._count("control")
            self.results.append((decoded.get("id"), decoded.get("result", decoded.get("error"))))
            return TickBatch.empty()
        stream, data = decoded.get("stream"), decoded.get("data")
        if not isinstance(stream, str):
            self._malformed("frame")
            return TickBatch.empty()
        self._count("messages")
        ticks = _Ticks()
        try:
            if not isinstance(data, dict):
                raise _MalformedError("message")
            if stream.endswith("@trade"):
                self._trade(data, recv_ns, ticks)
            elif stream.endswith("@bookTicker"):
                self._book_ticker(data, recv_ns, ticks)
            else:
                self._count("ignored")
        except _MalformedError as bad:
            self._malformed(bad.reason)
        self._count("ticks", len(ticks.instrument))
        return ticks.batch(recv_ns)

    def _symbol(self, data: Mapping[str, Any]) -> int | None:
        symbol = data.get("s")
        if not isinstance(symbol, str):
            raise _MalformedError("symbol")
        index = self._index.get(symbol.upper())
        if index is None:
            self._count("unknown_symbol")
        return index

    def _stamp(self, instrument: int, ts: int) -> int:
        """`ts`, moved to 1 ns after the symbol's previous message if not later; remembered.
        A time that would leave int64 once moved is malformed, not a crash of the batch."""
        last = self._last_ts.get(instrument)
        moved = last is not None and ts <= last
        if moved and last is not None:
            ts = last + 1
        if not 0 <= ts < _INT64_END:
            raise _MalformedError("time")
        if moved:
            self._count("restamped")
        self._last_ts[instrument] = ts
        return ts

    def _trade(self, data: Mapping[str, Any], recv_ns: int, ticks: _Ticks) -> None:
        trade_id = _integer(data.get("t"), "id")
        price = _number(data.get("p"), "price")
        size = _number(data.get("q"), "size")
        trade_ms = _integer(data.get("T"), "time", _INT64_END // MS)
        instrument = self._symbol(data)
        if instrument is None:
            return
        last_id = self._last_trade_id.get(instrument)
        if last_id is not None:
            if trade_id <= last_id:
                self._count("duplicates")
                return
            self._count("gaps", trade_id - last_id - 1)
        self._last_trade_id[instrument] = trade_id
        self.clock_offset_ns = trade_ms * MS - recv_ns
        last_ms, rank = self._last_trade_ms.get(instrument, (-1, 0))
        rank = min(rank + 1, 999) if trade_ms == last_ms else 0
        self._last_trade_ms[instrument] = (trade_ms, rank)
        ts = self._stamp(instrument, trade_ms * MS + rank * _TIE_STEP_NS)
        ticks.add(instrument, ts, price, size, TickKind.TRADE)
        self._count("data")

    def _book_ticker(self, data: Mapping[str, Any], recv_ns: int, ticks: _Ticks) -> None:
        update_id = _integer(data.get("u"), "id")
        new = _Quote(
            _number(data.get("b"), "price"),
            _number(data.get("B"), "size"),
            _number(data.get("a"), "price"),
            _number(data.get("A"), "size"),
        )
        exchange_ms = data.get("T")
        ts = (
            _integer(exchange_ms, "time", _INT64_END // MS) * MS
            if exchange_ms is not None
            else recv_ns + (self.clock_offset_ns or 0)
        )
        if not 0 <= ts < _INT64_END:  # a trade's time far from its receive time skews the offset
            raise _MalformedError("time")
        instrument = self._symbol(data)
        if instrument is None:
            return
        last_id = self._last_update_id.get(instrument)
        if last_id is not None and update_id <= last_id:
            self._count("duplicates" if update_id == last_id else "stale")
            return
        self._last_update_id[instrument] = update_id
        ticks.quote(
            instrument,
            self._stamp(instrument, ts),
            self._quotes.setdefault(instrument, _Quote()),
            new,
        )
        self._count("data")
