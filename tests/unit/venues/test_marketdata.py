"""Live market-data parsers: documented messages, encodings, gaps, fuzzing and real captures."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickwise.data.readers import default_data_root, read_binance_capture
from tickwise.data.validation import TickValidator
from tickwise.model.instruments import AssetClass, Instrument, InstrumentRegistry
from tickwise.model.ticks import TickBatch, TickKind
from tickwise.venues.marketdata import AlpacaStreamParser, BinanceStreamParser, rfc3339_ns

AAPL, BRK, BTC_USD, BTCUSDT, ETHUSDT, BTC_PERP = range(6)
MS = 1_000_000
RECV = 1_723_161_254_087_891_268


@pytest.fixture(scope="module")
def md_registry() -> InstrumentRegistry:
    eq, cr = AssetClass.EQUITY, AssetClass.CRYPTO
    return InstrumentRegistry(
        [
            Instrument(AAPL, "AAPL", eq, 0.01, 1e-6, 0.0, fractionable=True),
            Instrument(BRK, "BRK.B", eq, 0.01, 1e-6, 0.0, fractionable=False),
            Instrument(BTC_USD, "BTC/USD", cr, 0.01, 1e-5, 0.0, fractionable=True),
            Instrument(BTCUSDT, "BTC/USDT", cr, 0.01, 1e-5, 0.0, fractionable=True),
            Instrument(ETHUSDT, "ETH/USDT", cr, 0.01, 1e-4, 0.0, fractionable=True),
            Instrument(BTC_PERP, "BTC/USDT-PERP", cr, 0.1, 1e-3, 0.0, fractionable=True),
        ]
    )


def _ns(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> int:
    """ns UTC of a datetime, computed without floats."""
    when = dt.datetime(y, mo, d, h, mi, s, us, tzinfo=dt.UTC)
    delta = when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return delta // dt.timedelta(microseconds=1) * 1000


def _rows(batch: TickBatch) -> list[tuple[int, int, int, float, float, int]]:
    return [
        (int(i), int(e), int(r), float(p), float(s), int(k))
        for i, e, r, p, s, k in zip(
            batch.instrument,
            batch.ts_event,
            batch.ts_recv,
            batch.price,
            batch.size,
            batch.kind,
            strict=True,
        )
    ]


def _accounted(counters: dict[str, int]) -> int:
    """Messages that ended somewhere: every message lands in exactly one of these."""
    malformed = sum(
        v for k, v in counters.items() if k.startswith("malformed_") and k != "malformed_frame"
    )
    keys = ("data", "control", "ignored", "unknown_symbol", "duplicates", "stale")
    return malformed + sum(counters[k] for k in keys)


# -- RFC 3339 ----------------------------------------------------------------------------------


def test_rfc3339_parses_nanoseconds_and_offsets() -> None:
    assert rfc3339_ns("2021-02-22T15:51:44.208Z") == _ns(2021, 2, 22, 15, 51, 44, 208_000)
    assert rfc3339_ns("2022-04-19T13:45:04.981350886-04:00") == (
        _ns(2022, 4, 19, 17, 45, 4) + 981_350_886
    )
    assert rfc3339_ns("2022-04-19T19:15:04+05:30") == _ns(2022, 4, 19, 13, 45, 4)
    assert rfc3339_ns("1970-01-01T00:00:00.000000001Z") == 1
    bad_times = (
        "2021-02-30T00:00:00Z",
        "2021-02-22T15:51:44",
        "2021-02-22T25:00:00Z",
        "9999-12-31T23:59:59Z",
        "1969-12-31T23:59:59Z",
        "x",
    )
    for bad in bad_times:
        with pytest.raises(ValueError, match="RFC 3339"):
            rfc3339_ns(bad)


# -- Alpaca ------------------------------------------------------------------------------------

DOC_TRADE = (
    '[{"T":"t","S":"AAPL","i":96921,"x":"D","p":126.55,"s":1,'
    '"t":"2021-02-22T15:51:44.208Z","c":["@","I"],"z":"C"}]'
)


def test_alpaca_documented_trade_gives_one_trade_tick(md_registry: InstrumentRegistry) -> None:
    parser = AlpacaStreamParser(md_registry)
    batch = parser.feed(DOC_TRADE, RECV)
    ts = _ns(2021, 2, 22, 15, 51, 44, 208_000)
    assert _rows(batch) == [(AAPL, ts, RECV, 126.55, 1.0, TickKind.TRADE)]
    assert parser.counters["frames"] == 1 and parser.counters["messages"] == 1
    assert parser.counters["ticks"] == 1 and parser.malformed == 0


def test_alpaca_quotes_emit_only_the_sides_that_changed(md_registry: InstrumentRegistry) -> None:
    parser = AlpacaStreamParser(md_registry)
    q = {"T": "q", "S": "BTC/USD", "bp": 100.0, "bs": 2.0, "ap": 101.0, "as": 3.0}
    frames = [
        dict(q, t="2024-01-02T03:04:05.000000001Z"),
        dict(q, t="2024-01-02T03:04:05.000000002Z"),  # nothing changed
        dict(q, ap=100.5, t="2024-01-02T03:04:05.000000003Z"),  # ask only
        dict(q, ap=100.5, bs=1.5, t="2024-01-02T03:04:05.000000004Z"),  # bid size only
    ]
    batch = parser.feed(json.dumps(frames), RECV)
    t0 = _ns(2024, 1, 2, 3, 4, 5)
    assert _rows(batch) == [
        (BTC_USD, t0 + 1, RECV, 100.0, 2.0, TickKind.BID),
        (BTC_USD, t0 + 1, RECV, 101.0, 3.0, TickKind.ASK),
        (BTC_USD, t0 + 3, RECV, 100.5, 3.0, TickKind.ASK),
        (BTC_USD, t0 + 4, RECV, 100.0, 1.5, TickKind.BID),
    ]
    assert parser.counters["data"] == 4 and parser.counters["ticks"] == 4


def test_alpaca_control_messages_are_recorded_not_ticked(md_registry: InstrumentRegistry) -> None:
    parser = AlpacaStreamParser(md_registry)
    assert len(parser.feed('[{"T":"success","msg":"connected"}]', RECV)) == 0
    parser.feed('[{"T":"success","msg":"authenticated"}]', RECV)
    parser.feed('[{"T":"subscription","trades":["AAPL"],"quotes":["AMD"],"bars":["*"]}]', RECV)
    parser.feed('[{"T":"error","code":405,"msg":"symbol limit exceeded"}]', RECV)
    parser.feed('[{"T":"b","S":"AAPL","o":1,"h":1,"l":1,"c":1,"v":1,"t":"x"}]', RECV)
    assert parser.connected and parser.authenticated
    assert parser.subscriptions == {"trades": ("AAPL",), "quotes": ("AMD",), "bars": ("*",)}
    assert list(parser.errors) == [(405, "symbol limit exceeded")]
    assert parser.counters["control"] == 4 and parser.counters["ignored"] == 1
    assert parser.counters["ticks"] == 0


def test_alpaca_bad_and_unknown_messages_are_counted(md_registry: InstrumentRegistry) -> None:
    parser = AlpacaStreamParser(md_registry)
    good = {"T": "t", "S": "AAPL", "p": 1.5, "s": 10, "t": "2024-01-02T03:04:05Z"}
    frame = [
        good,
        dict(good, S="MSFT"),
        dict(good, p="abc"),
        dict(good, s=None),
        dict(good, t="yesterday"),
        dict(good, S=7),
        {"S": "AAPL"},
        42,
    ]
    batch = parser.feed(json.dumps(frame), RECV)
    assert len(batch) == 1 and batch.instrument[0] == AAPL
    c = parser.counters
    assert c["unknown_symbol"] == 1 and c["malformed_price"] == 1 and c["malformed_size"] == 1
    assert c["malformed_time"] == 1 and c["malformed_symbol"] == 1
    assert c["malformed_message"] == 2 and c["messages"] == 8 == _accounted(c)
    assert len(parser.feed("{not json", RECV)) == 0 and c["malformed_frame"] == 1
    assert len(parser.feed('{"T":"t"}', RECV)) == 0 and c["malformed_frame"] == 2


def test_alpaca_json_and_msgpack_give_the_same_batch(md_registry: InstrumentRegistry) -> None:
    when = "2022-04-19T13:45:04.981350886-04:00"
    stamp = msgpack.Timestamp.from_unix_nano(rfc3339_ns(when))
    messages: list[dict[str, Any]] = [
        {"T": "t", "S": "BRK.B", "i": 7, "x": "V", "p": 412.25, "s": 3, "c": ["@"], "z": "B"},
        {"T": "q", "S": "AAPL", "bx": "Q", "bp": 165.1, "bs": 2, "ax": "V", "ap": 165.2, "as": 4},
        {"T": "t", "S": "BTC/USD", "p": 64000.5, "s": 0.0123, "i": 99, "tks": "B"},
    ]
    as_json = json.dumps([dict(m, t=when) for m in messages])
    as_packed = msgpack.packb([dict(m, t=stamp) for m in messages])
    as_packed_str = msgpack.packb([dict(m, t=when) for m in messages])
    from_json = AlpacaStreamParser(md_registry).feed(as_json.encode(), RECV)
    from_packed = AlpacaStreamParser(md_registry, "msgpack").feed(as_packed, RECV)
    from_packed_str = AlpacaStreamParser(md_registry, "msgpack").feed(as_packed_str, RECV)
    assert len(from_json) == 4
    assert _rows(from_json) == _rows(from_packed) == _rows(from_packed_str)
    assert from_json.ts_event[0] == _ns(2022, 4, 19, 17, 45, 4) + 981_350_886


def test_alpaca_msgpack_parser_rejects_text_frames(md_registry: InstrumentRegistry) -> None:
    parser = AlpacaStreamParser(md_registry, "msgpack")
    assert len(parser.feed(DOC_TRADE, RECV)) == 0
    assert parser.counters["malformed_frame"] == 1
    with pytest.raises(ValueError, match="encoding"):
        AlpacaStreamParser(md_registry, "xml")  # type: ignore[arg-type]


# -- Binance -----------------------------------------------------------------------------------


def _trade(t: int, p: str = "61837.63", q: str = "0.02", ms: int = 1723161255342) -> str:
    data = {"e": "trade", "E": ms + 1, "s": "BTCUSDT", "t": t, "p": p, "q": q, "T": ms}
    return json.dumps({"stream": "btcusdt@trade", "data": dict(data, m=True, M=True)})


def _book(u: int, b: str = "61837.63", bq: str = "3.788", a: str = "61837.64") -> str:
    data = {"u": u, "s": "BTCUSDT", "b": b, "B": bq, "a": a, "A": "1.54698"}
    return json.dumps({"stream": "btcusdt@bookTicker", "data": data})


def test_binance_trade_and_book_ticker_parse_exactly(md_registry: InstrumentRegistry) -> None:
    parser = BinanceStreamParser(md_registry)
    trade = parser.feed(_trade(3735683259), RECV)
    assert _rows(trade) == [(BTCUSDT, 1723161255342 * MS, RECV, 61837.63, 0.02, TickKind.TRADE)]
    # bookTicker has no time: the last trade's T + local time elapsed since it arrived.
    assert parser.clock_offset_ns == 1723161255342 * MS - RECV
    book = parser.feed(_book(50093239212), RECV + 5 * MS)
    ts = 1723161255342 * MS + 5 * MS
    assert _rows(book) == [
        (BTCUSDT, ts, RECV + 5 * MS, 61837.63, 3.788, TickKind.BID),
        (BTCUSDT, ts, RECV + 5 * MS, 61837.64, 1.54698, TickKind.ASK),
    ]
    assert parser.counters["ticks"] == 3 and parser.malformed == 0


def test_binance_usdt_symbol_reaches_a_usd_pair_when_no_usdt_pair_is_listed() -> None:
    cr = AssetClass.CRYPTO
    usd_only = InstrumentRegistry([Instrument(0, "BTC/USD", cr, 0.01, 1e-5, 0.0, True)])
    trade = BinanceStreamParser(usd_only).feed(_trade(1), RECV)
    assert trade.instrument.tolist() == [0]


def test_binance_trade_id_gaps_and_duplicates_are_counted(md_registry: InstrumentRegistry) -> None:
    parser = BinanceStreamParser(md_registry)
    ticks = [len(parser.feed(_trade(t), RECV)) for t in (100, 101, 105, 104, 105, 106, 110)]
    assert ticks == [1, 1, 1, 0, 0, 1, 1]
    assert parser.counters["gaps"] == 3 + 3 and parser.counters["duplicates"] == 2


def test_binance_same_millisecond_trades_are_spread(md_registry: InstrumentRegistry) -> None:
    parser = BinanceStreamParser(md_registry)
    batch = TickBatch.concat([parser.feed(_trade(t), RECV) for t in (1, 2, 3)])
    base = 1723161255342 * MS
    assert batch.ts_event.tolist() == [base, base + 1000, base + 2000]
    later = parser.feed(_trade(4, ms=1723161255343), RECV)
    assert later.ts_event.tolist() == [base + MS]


def test_binance_book_ticker_update_ids_drop_stale(md_registry: InstrumentRegistry) -> None:
    parser = BinanceStreamParser(md_registry)
    sizes = [
        len(parser.feed(_book(u, b=b), RECV + k))
        for k, (u, b) in enumerate([(10, "1"), (10, "2"), (9, "3"), (11, "2"), (12, "2")])
    ]
    assert sizes == [2, 0, 0, 1, 0]  # 11 moves the bid only; 12 repeats the book
    c = parser.counters
    assert c["duplicates"] == 1 and c["stale"] == 1 and c["data"] == 3
    assert c["messages"] == 5 == _accounted(c)


def test_binance_quote_never_stamped_before_the_last_trade(
    md_registry: InstrumentRegistry,
) -> None:
    parser = BinanceStreamParser(md_registry)
    parser.feed(_trade(1), RECV)
    early = parser.feed(_book(5), RECV - 10 * MS)  # recv clock jumped back
    assert early.ts_event.tolist() == [1723161255342 * MS + 1] * 2
    assert parser.counters["restamped"] == 1


def test_binance_control_other_streams_and_unknown_symbols(
    md_registry: InstrumentRegistry,
) -> None:
    parser = BinanceStreamParser(md_registry)
    parser.feed('{"result":null,"id":1}', RECV)
    parser.feed('{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate"}}', RECV)
    parser.feed(_trade(1).replace("BTCUSDT", "DOGEUSDT"), RECV)
    parser.feed('{"stream":"btcusdt@trade","data":[1]}', RECV)
    parser.feed(_trade(2).replace('"t": 2', '"t": "2"'), RECV)
    parser.feed(_trade(3).replace('"T": 1723161255342', '"T": true'), RECV)
    parser.feed('{"data":{}}', RECV)
    parser.feed(b"\xff\xfe", RECV)
    c = parser.counters
    assert list(parser.results) == [(1, None)]
    assert c["control"] == 1 and c["ignored"] == 1 and c["unknown_symbol"] == 1
    assert c["malformed_message"] == 1 and c["malformed_id"] == 1 and c["malformed_time"] == 1
    assert c["malformed_frame"] == 2 and c["ticks"] == 0
    assert c["messages"] == 6 == _accounted(c)


def test_times_that_do_not_fit_int64_are_malformed(md_registry: InstrumentRegistry) -> None:
    binance = BinanceStreamParser(md_registry)
    assert len(binance.feed(_trade(1, ms=10**13), RECV)) == 0
    assert binance.counters["malformed_time"] == 1
    alpaca = AlpacaStreamParser(md_registry, "msgpack")
    far = {"T": "t", "S": "AAPL", "p": 1.0, "s": 1, "t": msgpack.Timestamp(10**11, 0)}
    assert len(alpaca.feed(msgpack.packb([far, dict(far, t="2300-01-01T00:00:00Z")]), RECV)) == 0
    assert alpaca.counters["malformed_time"] == 2


def test_binance_futures_map_to_perp_instruments(md_registry: InstrumentRegistry) -> None:
    line = (
        '{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":5123107839020,'
        '"s":"BTCUSDT","b":"61800.20","B":"2.507","a":"61800.30","A":"2.510",'
        '"T":1723161256313,"E":1723161256313}}'
    )
    batch = BinanceStreamParser(md_registry, futures=True).feed(line, RECV)
    assert batch.instrument.tolist() == [BTC_PERP, BTC_PERP]
    assert batch.ts_event.tolist() == [1723161256313 * MS] * 2
    assert BinanceStreamParser(md_registry).feed(line, RECV).instrument.tolist() == [BTCUSDT] * 2


# -- fuzzing -----------------------------------------------------------------------------------

_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=12,
)
_field = st.sampled_from(["T", "S", "p", "s", "t", "bp", "bs", "ap", "as", "msg", "code"])
_alpaca_message = st.dictionaries(_field, _scalars | st.sampled_from(["t", "q", "AAPL"])) | _json
_binance_data = st.dictionaries(
    st.sampled_from(["e", "E", "s", "t", "p", "q", "T", "u", "b", "B", "a", "A"]),
    _scalars | st.sampled_from(["BTCUSDT", "1.5"]) | st.integers(0, 10),
)
_good_trade = {"T": "t", "S": "AAPL", "p": 1.5, "s": 2, "t": "2024-01-02T03:04:05Z"}
_good_quote = {"T": "q", "S": "BTC/USD", "bp": 1.0, "bs": 2, "ap": 1.1, "as": 3, "t": "2024-01-02Z"}
_odd = (
    _scalars
    | st.integers(2**40, 2**70)
    | st.sampled_from(["1e999", "nan", "-0", "2262-04-11T23:47:17Z", "9" * 70])
)
# A good message with a few fields replaced: reaches the deeper checks far more often.
_alpaca_mutant = st.builds(
    lambda base, changes: {**base, **changes},
    st.sampled_from([_good_trade, _good_quote]),
    st.dictionaries(_field, _odd, max_size=2),
)
_binance_mutant = st.builds(
    lambda base, changes: {**base, **changes},
    st.sampled_from(
        [
            {"e": "trade", "s": "BTCUSDT", "t": 5, "p": "1.5", "q": "2", "T": 1723161255342},
            {"u": 5, "s": "ETHUSDT", "b": "1.5", "B": "2", "a": "1.6", "A": "1"},
        ]
    ),
    st.dictionaries(st.sampled_from(["s", "t", "p", "q", "T", "u", "b", "A"]), _odd, max_size=2),
)


def _check_batch(
    parser: AlpacaStreamParser | BinanceStreamParser, before: int, b: TickBatch
) -> None:
    assert isinstance(b, TickBatch)
    assert parser.counters["ticks"] - before == len(b)
    assert parser.counters["messages"] == _accounted(parser.counters)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_never_raise(md_registry: InstrumentRegistry, frame: bytes) -> None:
    for parser in (
        AlpacaStreamParser(md_registry),
        AlpacaStreamParser(md_registry, "msgpack"),
        BinanceStreamParser(md_registry),
    ):
        _check_batch(parser, 0, parser.feed(frame, RECV))
        assert parser.counters["frames"] == 1


@settings(max_examples=150, deadline=None)
@given(st.lists(_alpaca_message | _alpaca_mutant, max_size=6))
def test_random_alpaca_messages_never_raise(
    md_registry: InstrumentRegistry, messages: list[Any]
) -> None:
    parser = AlpacaStreamParser(md_registry)
    packed = AlpacaStreamParser(md_registry, "msgpack")
    text = json.dumps(messages)
    _check_batch(parser, 0, parser.feed(text, RECV))
    assert parser.counters["messages"] == len(messages)
    try:
        frame = msgpack.packb(messages)
    except (ValueError, TypeError, OverflowError):
        return  # integers beyond 64 bits have no msgpack form
    _check_batch(packed, 0, packed.feed(frame, RECV))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(_binance_data | _binance_mutant | _json, max_size=6),
    st.sampled_from(["@trade", "@bookTicker"]),
)
def test_random_binance_payloads_never_raise(
    md_registry: InstrumentRegistry, payloads: list[Any], stream: str
) -> None:
    parser = BinanceStreamParser(md_registry)
    for data in payloads:
        before = parser.counters["ticks"]
        _check_batch(
            parser, before, parser.feed(json.dumps({"stream": stream, "data": data}), RECV)
        )
    assert parser.counters["frames"] == len(payloads)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["t", "T", "u", "bT"]), st.integers() | st.floats())
def test_any_number_in_an_id_or_time_field_is_a_tick_or_counted(
    md_registry: InstrumentRegistry, field: str, value: float
) -> None:
    parser = BinanceStreamParser(md_registry)
    if field in ("t", "T"):
        data: dict[str, Any] = json.loads(_trade(7))["data"]
        data[field] = value
        stream = "btcusdt@trade"
    else:
        data = {"u": 5, "s": "BTCUSDT", "b": "1.5", "B": "2", "a": "1.6", "A": "1", "T": 1}
        data[field.removeprefix("b")] = value
        stream = "btcusdt@bookTicker"
    batch = parser.feed(json.dumps({"stream": stream, "data": data}), RECV)
    assert len(batch) > 0 or parser.malformed == 1
    assert parser.counters["messages"] == 1 == _accounted(parser.counters)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_truncated_frames_are_counted_malformed(
    md_registry: InstrumentRegistry, data: st.DataObject
) -> None:
    good = json.loads(DOC_TRADE)
    frames: list[tuple[AlpacaStreamParser | BinanceStreamParser, bytes]] = [
        (AlpacaStreamParser(md_registry), DOC_TRADE.encode()),
        (AlpacaStreamParser(md_registry, "msgpack"), msgpack.packb(good)),
        (BinanceStreamParser(md_registry), _trade(1).encode()),
    ]
    for parser, frame in frames:
        cut = data.draw(st.integers(0, len(frame) - 1))
        batch = parser.feed(frame[:cut], RECV)
        assert len(batch) == 0
        assert parser.counters["malformed_frame"] == 1 and parser.counters["messages"] == 0


# -- real Binance captures (skip when ../shared/data is absent) ---------------------------------


def _capture(name: str) -> Path:
    root = default_data_root()
    path = None if root is None else root / "crypto/binance/raw_ws_hftbacktest" / name
    if path is None or not path.is_file():
        pytest.skip("recorded market data not available (set TICKWISE_DATA)")
    return path


@pytest.mark.data
@pytest.mark.parametrize(
    ("name", "futures"), [("spot/ethusdt_20240808.gz", False), ("usdm/btcusdt_20240808.gz", True)]
)
def test_real_binance_capture_parses_cleanly(
    md_registry: InstrumentRegistry, name: str, futures: bool
) -> None:
    path = _capture(name)
    parser = BinanceStreamParser(md_registry, futures=futures)
    batches = []
    with gzip.open(path, "rt") as lines:
        for line in lines:
            recv, _, payload = line.partition(" ")
            if not payload.startswith('{"stream"'):
                continue  # the recorder's REST depth snapshot, not a stream frame
            batches.append(parser.feed(payload, int(recv)))
    batch = TickBatch.concat(batches)
    c = parser.counters
    assert parser.malformed == 0 and c["unknown_symbol"] == 0
    assert c["messages"] == c["frames"] == _accounted(c)
    # Same trades as the capture reader, and every tick passes the validator.
    expected = read_binance_capture(path)
    trades = batch.kind == TickKind.TRADE
    assert int(trades.sum()) + c["duplicates"] == len(expected.of_kind(TickKind.TRADE))
    np.testing.assert_array_equal(
        np.sort(batch.price[trades]), np.sort(expected.of_kind(TickKind.TRADE).price)
    )
    validator = TickValidator(len(md_registry))
    assert len(validator.validate(batch)) == len(batch) > 0
