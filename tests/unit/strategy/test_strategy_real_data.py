"""The built-in defaults on real US-equity trades (skips when the market data is absent)."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tickwise.model.ticks import TickBatch
from tickwise.strategy import STRATEGIES, get_strategy
from tickwise.strategy.calibration import changes_per_minute

pytestmark = pytest.mark.data

REGULAR_OPEN_MS = 34_200_000  # 09:30 New York
REGULAR_CLOSE_MS = 57_600_000  # 16:00 New York
NEW_YORK_MIDNIGHT_2013_10_07_MS = 1_381_118_400_000  # 00:00 EDT, in ms since the epoch


def data_root() -> Path:
    env = os.environ.get("TICKWISE_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[3].parent / "shared" / "data"


def regular_session_trades(symbol: str, day: str) -> TickBatch:
    """One day's regular-session trades from a LEAN tick file (prices in deci-cents)."""
    path = data_root() / "equities" / "us" / "lean" / "tick" / symbol / f"{day}_trade.zip"
    if not path.is_file():
        pytest.skip(f"market data not found: {path.name}")
    with zipfile.ZipFile(path) as archive:
        raw = archive.read(archive.namelist()[0])
    rows = np.loadtxt(io.BytesIO(raw), delimiter=",", usecols=(0, 1, 2), dtype=np.float64)
    rows = rows[(rows[:, 0] >= REGULAR_OPEN_MS) & (rows[:, 0] < REGULAR_CLOSE_MS)]
    ts = (NEW_YORK_MIDNIGHT_2013_10_07_MS + rows[:, 0].astype(np.int64)) * 1_000_000
    n = len(rows)
    return TickBatch.from_arrays(np.zeros(n), ts, rows[:, 1] / 10_000, rows[:, 2], np.zeros(n))


@pytest.mark.parametrize("symbol", ["bac", "ibm"])
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_defaults_trade_every_few_minutes_on_a_real_session(symbol: str, name: str) -> None:
    # BAC printed ~4 trades/s that day, IBM ~1/s: a quiet and a typical tape, both at ~1 %/day.
    trades = regular_session_trades(symbol, "20131007")
    spec = get_strategy(name)
    minutes_per_change = 1.0 / changes_per_minute(spec, spec.defaults(), trades)
    assert 1.0 <= minutes_per_change <= 10.0
