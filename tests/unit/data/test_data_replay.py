"""Replay of recorded ticks: readers, time order, speed mapping, unknown symbols."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from tickwise.data.readers import (
    discover_sources,
    lean_ms_to_utc_ns,
    read_binance_capture,
    read_lean_quotes,
    read_lean_trades,
    spread_ties,
)
from tickwise.data.replay import ReplayFeed, replay_registry
from tickwise.data.validation import TickValidator
from tickwise.model.instruments import AssetClass
from tickwise.model.ticks import TickKind

SEC = 1_000_000_000
WALL = 1_800_000_000 * SEC


def test_lean_time_is_new_york_wall_clock_converted_to_utc() -> None:
    # 04:00 EDT on 2013-10-07 is 08:00 UTC; 09:30 EST on 2013-12-02 is 14:30 UTC.
    summer = lean_ms_to_utc_ns(dt.date(2013, 10, 7), np.array([14_400_000]))
    winter = lean_ms_to_utc_ns(dt.date(2013, 12, 2), np.array([34_200_000]))
    assert summer[0] == int(dt.datetime(2013, 10, 7, 8, tzinfo=dt.UTC).timestamp()) * SEC
    assert winter[0] == int(dt.datetime(2013, 12, 2, 14, 30, tzinfo=dt.UTC).timestamp()) * SEC


def test_prints_in_the_same_millisecond_get_distinct_times_in_file_order() -> None:
    ts = np.array([5, 5, 5, 9, 9, 12]) * 1_000_000
    assert (spread_ties(ts) - ts).tolist() == [0, 1000, 2000, 0, 1000, 0]


def test_lean_trades_are_scaled_and_suspicious_rows_dropped(data_root: Path) -> None:
    ticks = read_lean_trades(data_root / "equities/us/lean/tick/spy/20131010_trade.zip")
    assert ticks.symbol == "SPY"
    assert len(ticks) == 460_032 - 10  # the ten ticks flagged suspicious that day
    assert 160 < np.median(ticks.price) < 175
    assert np.all(np.diff(ticks.ts_event) > 0)
    assert np.all(ticks.kind == TickKind.TRADE)


def test_lean_quotes_update_one_side_per_row(data_root: Path) -> None:
    ticks = read_lean_quotes(data_root / "equities/us/lean/tick/ibm/20131011_quote.zip")
    bids, asks = ticks.of_kind(TickKind.BID), ticks.of_kind(TickKind.ASK)
    assert len(bids) > 0 and len(asks) > 0
    assert len(ticks) <= 99_852
    assert 170 < np.median(bids.price) < np.median(asks.price) < 200
    assert np.all(np.diff(ticks.ts_event) >= 0)


def test_binance_capture_yields_trades_and_changed_sides(data_root: Path) -> None:
    path = data_root / "crypto/binance/raw_ws_hftbacktest/spot/ethusdt_20240808.gz"
    ticks = read_binance_capture(path)
    assert ticks.symbol == "ETH/USDT"
    trades = ticks.of_kind(TickKind.TRADE)
    assert len(trades) == 6_106
    assert 0 < len(ticks.of_kind(TickKind.BID)) <= 24_077
    assert 2_000 < np.median(trades.price) < 3_500
    assert np.all(np.diff(ticks.ts_event) >= 0)


@pytest.fixture(scope="module")
def one_day(data_root: Path) -> list:
    return discover_sources(data_root, {"BAC", "IBM"}, {"20131011"})


def test_replay_merges_symbols_in_time_order_as_fast_as_possible(one_day: list) -> None:
    registry = replay_registry(one_day)
    feed = ReplayFeed(one_day, registry, speed=None, restamp=False, batch_ticks=50_000)
    validator = TickValidator(len(registry))
    seen = 0
    last = -1
    calls = 0
    while not feed.exhausted and calls < 1_000:
        batch = feed.next_batch(WALL + calls)
        calls += 1
        if len(batch):
            assert batch.ts_event[0] >= last and np.all(np.diff(batch.ts_event) >= 0)
            last = int(batch.ts_event[-1])
        seen += len(batch)
        assert len(validator.validate(batch)) == len(batch)  # real ticks are all good
    assert feed.exhausted
    expected = 112_177 + 481_536 + 19_264 + 99_852
    assert expected - 100 <= seen <= expected
    assert {int(i) for i in np.unique(batch.instrument)} <= {0, 1}


def test_replay_at_speed_releases_replay_time_proportional_to_wall_time(one_day: list) -> None:
    registry = replay_registry(one_day)
    feed = ReplayFeed(one_day, registry, speed=10.0)
    first = feed.next_batch(WALL)
    origin = feed.replay_time_ns
    assert len(first) >= 1 and np.all(first.ts_event == WALL)
    batch = feed.next_batch(WALL + 2 * SEC)
    assert feed.replay_time_ns - origin == 20 * SEC - 1 or feed.replay_time_ns - origin == 20 * SEC
    assert np.all((batch.ts_event > WALL) & (batch.ts_event <= WALL + 2 * SEC))
    assert np.all(np.diff(batch.ts_event) >= 0)
    # Nothing new is due without wall time passing.
    assert len(feed.next_batch(WALL + 2 * SEC)) == 0


def test_unknown_symbols_are_skipped_and_counted(one_day: list) -> None:
    registry = replay_registry(["BAC"])
    feed = ReplayFeed(one_day, registry, speed=None, batch_ticks=1_000_000)
    total = 0
    for k in range(100):
        if feed.exhausted:
            break
        batch = feed.next_batch(WALL + k * SEC)
        total += len(batch)
        assert np.all(batch.instrument == 0)
    assert feed.skipped["IBM"] > 100_000
    assert total > 500_000


def test_replay_registry_puts_stocks_first_then_pairs() -> None:
    reg = replay_registry(["ETH/USDT", "SPY", "BAC", "BTC/USDT"])
    assert reg.symbols() == ["BAC", "SPY", "BTC/USDT", "ETH/USDT"]
    assert reg[2].asset_class is AssetClass.CRYPTO and reg[2].min_notional == 5.0
