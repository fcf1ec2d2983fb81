"""Fuzzing the live market-data decoders: Alpaca (JSON and msgpack) and Binance frames, RFC 3339
times, and the Alpaca stream handshake.

Documented behaviour: a parser never raises; each frame or message it cannot read is counted
under one `malformed_<reason>` counter, and every tick it emits names a registry instrument and
carries an int64 time. A bad time is `ValueError`. The handshake fails only with
`StreamAuthError` (the venue said no) or `ConnectionError` (it closed first). Run deeper with
`TICKWISE_FUZZ_EXAMPLES=5000`.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any

import msgpack
import numpy as np
from fuzzing import (
    DEEP_ARRAY,
    DEEP_OBJECT,
    budget,
    mutated,
    raw_bytes,
    registry,
    wire_or_raw,
)
from hypothesis import example, given
from hypothesis import strategies as st

from tickwise.model.ticks import TickBatch
from tickwise.venues.http import RecordedTransport, RecordedWebSocket
from tickwise.venues.marketdata import AlpacaStreamParser, BinanceStreamParser, rfc3339_ns
from tickwise.venues.marketfeed import AlpacaMarketStream, BinanceMarketStream, StreamAuthError

RECV_NS = 1_767_625_200_123_456_789
INT64_END = 2**63
ALPACA_FRAME: list[dict[str, Any]] = [
    {"T": "t", "S": "AAPL", "i": 7, "p": 190.1, "s": 100, "t": "2026-01-05T15:00:00.123456789Z"},
    {
        "T": "q",
        "S": "BTC/USD",
        "bp": 60000.0,
        "bs": 0.5,
        "ap": 60001.0,
        "as": 0.25,
        "t": "2026-01-05T15:00:00.2+01:00",
    },
    {"T": "success", "msg": "authenticated"},
    {"T": "subscription", "trades": ["AAPL"], "quotes": ["BTC/USD"]},
]
BINANCE_TRADE: dict[str, Any] = {
    "stream": "btcusdt@trade",
    "data": {
        "e": "trade",
        "s": "BTCUSDT",
        "t": 11,
        "p": "60000.1",
        "q": "0.5",
        "T": 1_767_625_200_000,
    },
}
BINANCE_BOOK: dict[str, Any] = {
    "stream": "btcusdt@bookTicker",
    "data": {"u": 400, "s": "BTCUSDT", "b": "60000.0", "B": "1.5", "a": "60000.2", "A": "0.7"},
}
recv_times = st.one_of(st.just(RECV_NS), st.integers(0, INT64_END - 1))


def _packed(doc: object) -> bytes:
    """`doc` as msgpack; a value msgpack cannot carry (an int past 64 bits) becomes junk."""
    try:
        return msgpack.packb(doc, use_bin_type=True)
    except (OverflowError, TypeError, ValueError):
        return b"\xc1"


def assert_batch(batch: TickBatch, recv_ns: int) -> None:
    assert ((batch.instrument >= 0) & (batch.instrument < len(registry()))).all()
    assert ((batch.ts_event >= 0) & (batch.ts_event < INT64_END)).all()
    assert (batch.ts_recv == recv_ns).all()
    assert np.isin(batch.kind, (0, 1, 2)).all()


@budget()
@given(st.lists(st.tuples(wire_or_raw(ALPACA_FRAME), recv_times), min_size=1, max_size=4))
@example([(DEEP_ARRAY, RECV_NS), (DEEP_OBJECT, RECV_NS)])
def test_alpaca_json_frames_give_valid_ticks_or_counts(frames: list[tuple[bytes, int]]) -> None:
    parser = AlpacaStreamParser(registry(), "json")
    for frame, recv_ns in frames:
        assert_batch(parser.feed(frame, recv_ns), recv_ns)
    assert parser.counters["frames"] == len(frames)
    assert parser.counters["data"] + parser.malformed <= parser.counters["messages"] + len(frames)


@budget()
@given(
    st.lists(
        st.tuples(st.one_of(mutated(ALPACA_FRAME).map(_packed), raw_bytes), recv_times),
        min_size=1,
        max_size=4,
    )
)
@example([(_packed([{"T": "t", "S": "AAPL", "p": 1.0, "s": 1, "t": msgpack.Timestamp(-5, 0)}]), 0)])
def test_alpaca_msgpack_frames_give_valid_ticks_or_counts(frames: list[tuple[bytes, int]]) -> None:
    parser = AlpacaStreamParser(registry(), "msgpack")
    for frame, recv_ns in frames:
        assert_batch(parser.feed(frame, recv_ns), recv_ns)
    assert parser.counters["frames"] == len(frames)


def binance_frames() -> st.SearchStrategy[bytes]:
    return st.one_of(wire_or_raw(BINANCE_TRADE), wire_or_raw(BINANCE_BOOK))


@budget()
@given(st.lists(st.tuples(binance_frames(), recv_times), min_size=1, max_size=6))
@example(
    [
        (
            json.dumps(
                {**BINANCE_TRADE, "data": {**BINANCE_TRADE["data"], "T": 9_223_372_036_853}}
            ),
            0,
        ),
        (json.dumps(BINANCE_BOOK), 10**12),
    ]
)
@example([(DEEP_OBJECT, RECV_NS)])
def test_binance_frames_give_valid_ticks_or_counts(frames: list[tuple[bytes | str, int]]) -> None:
    parser = BinanceStreamParser(registry())
    for frame, recv_ns in frames:
        assert_batch(parser.feed(frame, recv_ns), recv_ns)
    assert parser.counters["frames"] == len(frames)
    assert parser.counters["messages"] + parser.counters.get("malformed_frame", 0) == len(frames)


@budget()
@given(
    st.one_of(
        st.text(max_size=40),
        st.from_regex(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)", fullmatch=True
        ),
    )
)
@example("0000-01-01T00:00:00Z")
@example("9999-12-31T23:59:60.999999999-99:99")
@example("٢٠٢٦-٠١-٠٥T15:00:00Z")
def test_an_rfc3339_time_is_int64_nanoseconds_or_a_value_error(text: str) -> None:
    try:
        ns = rfc3339_ns(text)
    except ValueError:
        return
    assert 0 <= ns < INT64_END


# -- the handshake and delivery -----------------------------------------------------------------


def alpaca_stream() -> AlpacaMarketStream:
    return AlpacaMarketStream(
        registry(),
        "wss://stream.data.alpaca.test/v2/iex",
        "PKFUZZ",
        "fuzz-secret",
        ["AAPL"],
        transport_factory=RecordedTransport,
    )


@budget()
@given(st.lists(st.one_of(wire_or_raw(ALPACA_FRAME), st.text(max_size=40)), max_size=5))
@example([json.dumps([{"T": "error", "code": "402", "msg": ["auth failed"]}])])
def test_the_alpaca_handshake_authenticates_or_fails_clearly(frames: list[bytes | str]) -> None:
    stream = alpaca_stream()
    socket = RecordedWebSocket(deque(frames))
    try:
        asyncio.run(stream._handshake(socket))
    except (StreamAuthError, ConnectionError):
        return
    assert stream.parser.authenticated if isinstance(stream.parser, AlpacaStreamParser) else False
    subscribe = json.loads(socket.sent[-1])
    assert subscribe["action"] == "subscribe" and subscribe["trades"] == ["AAPL"]


@budget(0.5)
@given(st.lists(binance_frames(), max_size=6))
def test_delivery_queues_only_non_empty_valid_batches(frames: list[bytes]) -> None:
    stream = BinanceMarketStream(
        registry(),
        "wss://stream.binance.test/stream",
        ["BTC/USD"],
        transport_factory=RecordedTransport,
    )
    for frame in frames:
        stream._deliver(frame)
    stats = stream.stats()
    assert stats["batches"] == stream.queue.qsize() and stats["frames"] == len(frames)
    ticks = 0
    while not stream.queue.empty():
        batch = stream.queue.get_nowait()
        assert len(batch) > 0
        ticks += len(batch)
    assert ticks == stats["ticks"]


def test_the_unmutated_frames_give_ticks() -> None:
    """The seeds of the properties above are valid, so the properties test real decoding."""
    alpaca = AlpacaStreamParser(registry(), "json")
    assert len(alpaca.feed(json.dumps(ALPACA_FRAME), RECV_NS)) == 3  # a trade, a bid, an ask
    assert alpaca.authenticated and alpaca.malformed == 0
    binance = BinanceStreamParser(registry())
    assert len(binance.feed(json.dumps(BINANCE_TRADE), RECV_NS)) == 1
    assert len(binance.feed(json.dumps(BINANCE_BOOK), RECV_NS)) == 2
