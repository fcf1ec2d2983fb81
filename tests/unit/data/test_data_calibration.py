"""The generator's statistics stay within stated tolerances of the recorded market's."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tickwise.data.calibration import (
    generated_stats,
    interarrival_stats,
    measure_real,
    moments_bps,
    one_second_returns,
    quoted_spread_bps,
    summarise,
)
from tickwise.model.ticks import TickKind

MS = 1_000_000


def test_interarrival_figures_on_a_known_series() -> None:
    ts = np.array([0, 0, 0, 10, 10, 30]) * MS
    median, p90, cv, med_over_mean, _p90_over_mean = interarrival_stats(ts)
    assert median == 0 and p90 == pytest.approx(16.0)
    assert med_over_mean == 0 and cv > 1


def test_one_second_returns_carry_the_last_price_over_quiet_seconds() -> None:
    ts = np.array([0, 500, 2_100, 2_900]) * MS
    price = np.array([100.0, 101.0, 102.0, 103.0])
    returns = one_second_returns(ts, price)
    assert returns == pytest.approx([0.0, math.log(103 / 101)])
    assert math.isnan(moments_bps(returns)[0])


def test_spread_carries_each_side_forward_and_skips_crossed_moments() -> None:
    kind = np.array([TickKind.BID, TickKind.ASK, TickKind.TRADE, TickKind.BID, TickKind.ASK])
    price = np.array([99.0, 101.0, 100.0, 102.0, 103.0])
    median, crossed = quoted_spread_bps(kind.astype(np.uint8), price)
    assert median == pytest.approx(np.median([200.0, 1e4 / 102.5]))
    assert crossed == pytest.approx(1 / 3)


def test_generator_matches_the_recorded_market_within_tolerance(data_root: Path) -> None:
    # 2013-10-08: the one day with trades for all four and quotes for BAC, IBM and AIG.
    real = measure_real(data_root, {"SPY", "BAC", "IBM", "AIG"}, {"20131008"})
    stocks = [r for r in generated_stats(seconds=300.0) if "/" not in r.symbol]
    assert len(stocks) >= 10
    ref = summarise(list(real.values()), "real")
    gen = summarise(stocks, "generated")
    # Burstiness: most gaps inside a sweep, a long tail between them.
    assert gen.gap_median_over_mean < 0.05 and ref.gap_median_over_mean < 0.05
    assert gen.gap_cv == pytest.approx(ref.gap_cv, rel=0.35)
    assert gen.gap_p90_over_mean == pytest.approx(ref.gap_p90_over_mean, rel=0.35)
    # Prices: 1-second volatility within a factor of two, heavy tails.
    assert 0.5 < gen.ret_1s_std_bps / ref.ret_1s_std_bps < 2.0
    assert gen.ret_1s_excess_kurtosis > 3.0
    # Quotes: ratio within 25 %, spread within a factor of two.
    ref_q = summarise([r for r in real.values() if r.symbol != "SPY"], "real quotes")
    assert gen.quote_to_trade == pytest.approx(ref_q.quote_to_trade, rel=0.25)
    assert 0.5 < gen.spread_median_bps / ref_q.spread_median_bps < 2.0
