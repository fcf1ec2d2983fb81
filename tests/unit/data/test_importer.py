"""Importing into the tick store: the documented table schema, LEAN and Binance files, the CLI."""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tickwise.cli import main
from tickwise.data.importer import (
    TickImportError,
    import_binance,
    import_lean,
    import_paths,
    import_table,
)
from tickwise.data.readers import read_binance_capture, read_lean_trades
from tickwise.data.replay import replay_registry
from tickwise.data.tickstore import TickStore
from tickwise.model.ticks import TickKind

SEC = 1_000_000_000
T0 = int(dt.datetime(2024, 8, 8, 14, 30, tzinfo=dt.UTC).timestamp()) * SEC

GOOD_CSV = f"""symbol,ts,price,size,kind,venue
SPY,2024-08-08T14:30:00Z,530.10,100,trade,ARCA
SPY,2024-08-08 14:30:00.000000001,530.05,300,BID,ARCA
SPY,{T0 + 2},530.15,200,2,ARCA
BTC/USD,2024-08-08T16:30:00.5+02:00,60000.5,0.25,trade,X
"""
BAD_ROWS = """,2024-08-08T14:30:01Z,1,1,trade,blank symbol
SPY,yesterday,530.2,100,trade,bad time
SPY,2024-08-08T14:30:02Z,abc,100,trade,bad price
SPY,2024-08-08T14:30:03Z,530.2,-5,trade,negative size
SPY,2024-08-08T14:30:04Z,530.2,0,trade,zero-size trade
SPY,2024-08-08T14:30:05Z,530.2,100,mid,unknown kind
SPY,2024-08-08T14:30:06Z,-1,100,bid,non-positive price
"""


@pytest.fixture
def store(tmp_path: Path) -> TickStore:
    return TickStore(tmp_path / "ticks")


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_csv_in_the_documented_schema_round_trips(store: TickStore, tmp_path: Path) -> None:
    report = import_table(_write(tmp_path / "t.csv", GOOD_CSV), store)
    assert (report.rows_read, report.imported, report.rejected_total) == (4, 4, 0)
    assert report.symbols == {"SPY", "BTC/USD"} and report.dates == {dt.date(2024, 8, 8)}
    spy = store.read_symbol("SPY", 0, 2**62)
    assert spy.ts_event.tolist() == [T0, T0 + 1, T0 + 2]
    assert spy.kind.tolist() == [TickKind.TRADE, TickKind.BID, TickKind.ASK]
    assert spy.price.tolist() == [530.10, 530.05, 530.15]
    btc = store.read_symbol("BTC/USD", 0, 2**62)
    assert btc.ts_event.tolist() == [T0 + SEC // 2]  # 16:30:00.5+02:00 is 14:30:00.5 UTC
    assert btc.size.tolist() == [0.25]


def test_bad_rows_are_counted_by_reason_and_not_imported(store: TickStore, tmp_path: Path) -> None:
    csv = _write(tmp_path / "t.csv", GOOD_CSV + BAD_ROWS + GOOD_CSV.splitlines()[1] + "\n")
    report = import_table(csv, store)
    assert report.rows_read == 12 and report.imported == 4
    assert report.rejected == {
        "bad_symbol": 1,
        "bad_timestamp": 1,
        "bad_price": 1,
        "bad_size": 2,
        "unknown_kind": 1,
        "non_positive_price": 1,
        "duplicate": 1,
    }
    assert store.count() == 4


def test_importing_a_file_twice_stores_it_once(store: TickStore, tmp_path: Path) -> None:
    csv = _write(tmp_path / "t.csv", GOOD_CSV)
    import_table(csv, store)
    again = import_table(csv, store)
    assert (again.imported, again.already_stored) == (0, 4)
    assert store.count() == 4


def test_ts_recv_is_optional_and_read_when_given(store: TickStore, tmp_path: Path) -> None:
    text = f"symbol,ts,ts_recv,price,size,kind\nSPY,{T0},{T0 + 50},1.0,1,0\n"
    import_table(_write(tmp_path / "t.csv", text), store)
    back = store.read(["SPY"], 0, 2**62, replay_registry(["SPY"]))
    assert back.ts_recv.tolist() == [T0 + 50]


def test_a_parquet_table_with_native_types_is_imported(store: TickStore, tmp_path: Path) -> None:
    table = pa.table(
        {
            "symbol": ["ETH/USD", "ETH/USD", None],
            "ts": pa.array([T0 // 1000, T0 // 1000 + 1, T0 // 1000], pa.timestamp("us", "UTC")),
            "price": [3000.0, 3001.0, 1.0],
            "size": pa.array([1, 2, 3], pa.int32()),
            "kind": pa.array([1, 7, 2], pa.int8()),
        }
    )
    pq.write_table(table, tmp_path / "t.parquet")
    report = import_table(tmp_path / "t.parquet", store)
    assert report.imported == 1 and report.rejected == {"bad_symbol": 1, "unknown_kind": 1}
    eth = store.read_symbol("ETH/USD", 0, 2**62)
    assert eth.ts_event.tolist() == [T0] and eth.kind.tolist() == [TickKind.BID]


def test_a_table_without_the_documented_columns_is_refused(
    store: TickStore, tmp_path: Path
) -> None:
    path = _write(tmp_path / "t.csv", "symbol,time,price\nSPY,1,2\n")
    with pytest.raises(TickImportError, match=r"t\.csv: missing column\(s\) ts, size, kind"):
        import_table(path, store)


def test_a_folder_import_skips_what_it_cannot_read_but_a_named_file_is_an_error(
    store: TickStore, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    _write(folder / "good.csv", GOOD_CSV)
    _write(folder / "other.csv", "a,b\n1,2\n")
    _write(folder / "notes.txt", "hello")
    report = import_paths([folder], store)
    assert report.imported == 4 and report.files == 1
    assert sorted(Path(p).name for p, _ in report.skipped_files) == ["notes.txt", "other.csv"]
    with pytest.raises(TickImportError, match=r"notes\.txt: unknown format"):
        import_paths([folder / "notes.txt"], store)
    with pytest.raises(TickImportError, match="missing column"):
        import_paths([folder / "other.csv"], store)
    with pytest.raises(TickImportError, match="no such file"):
        import_paths([tmp_path / "absent.csv"], store)


# -- LEAN bars (synthetic files in the LEAN layout) ------------------------------------------------


def _lean_zip(path: Path, rows: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(path.stem + ".csv", "\n".join(rows) + "\n")
    return path


def test_an_equity_minute_bar_becomes_a_trade_at_its_end_time(
    store: TickStore, tmp_path: Path
) -> None:
    root = tmp_path / "equities/us/lean/minute/xyz"
    _lean_zip(root / "20131008_trade.zip", ["34200000,1674100,1675000,1673000,1674500,2300"])
    _lean_zip(
        root / "20131008_quote.zip",
        ["34200000,1674000,1674000,1674000,1674200,500,,,,,0"],  # no ask in that minute
    )
    report = import_lean(tmp_path / "equities", store)
    assert report.files == 2 and report.imported == 2
    ticks = store.read_symbol("XYZ", 0, 2**62)
    # 09:30 New York (EDT) + one minute = 13:31 UTC.
    end = int(dt.datetime(2013, 10, 8, 13, 31, tzinfo=dt.UTC).timestamp()) * SEC
    assert ticks.ts_event.tolist() == [end, end]
    rows = zip(ticks.kind.tolist(), ticks.price.tolist(), ticks.size.tolist(), strict=True)
    assert sorted(rows) == [
        (TickKind.TRADE, 167.45, 2300.0),
        (TickKind.BID, 167.42, 500.0),
    ]


def test_a_crypto_lean_bar_is_in_utc_with_plain_prices(store: TickStore, tmp_path: Path) -> None:
    path = tmp_path / "crypto/lean/coinbase/second/btcusd/20180404_trade.zip"
    _lean_zip(path, ["0,7424.91,7424.91,7422,7422,7.1", "5000,7422,7423,7421,7423.5,0.2"])
    import_lean(path, store)
    ticks = store.read_symbol("BTC/USD", 0, 2**62)
    day = int(dt.datetime(2018, 4, 4, tzinfo=dt.UTC).timestamp()) * SEC
    assert ticks.ts_event.tolist() == [day + SEC, day + 6 * SEC]
    assert ticks.price.tolist() == [7422.0, 7423.5]


def test_lean_daily_bars_are_skipped_with_a_reason(store: TickStore, tmp_path: Path) -> None:
    _lean_zip(tmp_path / "equities/us/lean/daily/spy.zip", ["19980102 00:00,1,1,1,1,1"])
    report = import_lean(tmp_path, store)
    assert report.files == 0 and "daily" in report.skipped_files[0][1]


def test_a_corrupt_lean_zip_is_one_clear_error(store: TickStore, tmp_path: Path) -> None:
    path = tmp_path / "equities/us/lean/minute/xyz/20131008_trade.zip"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a zip")
    with pytest.raises(TickImportError, match=r"20131008_trade\.zip: cannot read"):
        import_lean(path, store)


# -- the CLI ------------------------------------------------------------------------------------


def test_cli_import_ls_and_compact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = _write(tmp_path / "t.csv", GOOD_CSV + BAD_ROWS)
    ticks = str(tmp_path / "ticks")
    assert main(["data", "import", str(csv), "--ticks-dir", ticks]) == 0
    assert main(["data", "import", str(csv), "--ticks-dir", ticks, "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert "4 imported" in out and "4 already stored" in out and "bad_timestamp 1" in out
    assert main(["data", "ls", "--ticks-dir", ticks]) == 0
    out = capsys.readouterr().out
    assert "BTC/USD" in out and "SPY" in out
    assert main(["data", "compact", "--ticks-dir", ticks]) == 0
    assert "compacted 0 partitions" in capsys.readouterr().out


def test_cli_errors_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TICKWISE_TICKS", str(tmp_path / "ticks"))
    assert main(["data", "import", str(tmp_path / "absent.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "absent.csv: no such file" in err
    assert main(["data", "compact", "--date", "2024-13-01"]) == 2
    assert "not a date" in capsys.readouterr().err
    assert main(["data", "ls"]) == 0
    assert "no ticks in" in capsys.readouterr().out


# -- real files (skip when ../shared/data is absent) -------------------------------------------


@pytest.mark.data
def test_a_real_lean_tick_day_is_imported_whole(data_root: Path, store: TickStore) -> None:
    path = data_root / "equities/us/lean/tick/ibm/20131011_trade.zip"
    report = import_lean(path, store)
    expected = read_lean_trades(path)
    assert report.imported == len(expected) and report.rejected_total == 0
    back = store.read_symbol("IBM", 0, 2**62)
    np.testing.assert_array_equal(back.ts_event, expected.ts_event)
    np.testing.assert_array_equal(back.price, expected.price)


@pytest.mark.data
def test_real_lean_minute_bars_give_one_tick_per_bar(data_root: Path, store: TickStore) -> None:
    path = data_root / "equities/us/lean/minute/ibm/20131008_trade.zip"
    with zipfile.ZipFile(path) as archive:
        bars = archive.read(archive.namelist()[0]).decode().split()
    report = import_lean(path, store)
    assert report.rows_read == len(bars) and report.imported == len(bars)
    first_start_ms = int(bars[0].split(",")[0])
    back = store.read_symbol("IBM", 0, 2**62)
    midnight_utc = int(dt.datetime(2013, 10, 8, 4, tzinfo=dt.UTC).timestamp()) * SEC  # 00:00 EDT
    assert back.ts_event[0] == midnight_utc + first_start_ms * 1_000_000 + 60 * SEC


@pytest.mark.data
def test_a_real_binance_capture_and_klines_are_imported(data_root: Path, store: TickStore) -> None:
    capture = data_root / "crypto/binance/raw_ws_hftbacktest/spot/ethusdt_20240808.gz"
    report = import_binance(capture, store)
    assert report.imported == len(read_binance_capture(capture)) > 10_000
    assert report.symbols == {"ETH/USDT"}
    klines = import_binance(data_root / "crypto/binance/spot/ADABTC-1m-2021-11-27.csv", store)
    assert klines.imported == 10 and klines.symbols == {"ADA/BTC"}
    first = store.read_symbol("ADA/BTC", 0, 2**62).ts_event[0]
    assert first == int(dt.datetime(2021, 11, 27, 0, 1, tzinfo=dt.UTC).timestamp()) * SEC
