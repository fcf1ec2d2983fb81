"""The synthetic market: deterministic, at the asked rate, skewed, bursty and consistent."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from tickwise.data.generator import GeneratorConfig, MarketGenerator
from tickwise.data.universe import build_universe
from tickwise.data.validation import TickValidator
from tickwise.model.instruments import AssetClass, InstrumentRegistry
from tickwise.model.ticks import TickBatch, TickKind

T0 = 1_700_000_000_000_000_000  # a Tuesday, 22:13 UTC: outside the New York session
SEC = 1_000_000_000


@cache
def _registry() -> InstrumentRegistry:
    return build_universe()


@cache
def _ten_seconds() -> TickBatch:
    return MarketGenerator(_registry(), GeneratorConfig(), seed=7).generate(T0, T0 + 10 * SEC)


def _poll(gen: MarketGenerator, times: list[int]) -> TickBatch:
    return TickBatch.concat([gen.next_batch(t) for t in times])


def test_same_seed_and_clock_give_the_same_ticks() -> None:
    times = [T0 + k * 5_000_000 for k in range(200)]
    a = _poll(MarketGenerator(_registry(), GeneratorConfig(), 11), times)
    b = _poll(MarketGenerator(_registry(), GeneratorConfig(), 11), times)
    c = _poll(MarketGenerator(_registry(), GeneratorConfig(), 12), times)
    assert len(a) > 0
    for name in ("instrument", "ts_event", "price", "size", "kind"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert len(a) != len(c) or not np.array_equal(a.price, c.price)


def test_output_does_not_depend_on_how_often_the_feed_polls() -> None:
    fine = _poll(MarketGenerator(_registry(), seed=3), [T0 + k * 1_000_000 for k in range(501)])
    coarse = _poll(MarketGenerator(_registry(), seed=3), [T0, T0 + 170_000_000, T0 + 500_000_000])
    assert np.array_equal(fine.ts_event, coarse.ts_event)
    assert np.array_equal(fine.price, coarse.price)


def test_each_batch_holds_exactly_the_ticks_since_the_last_call_in_time_order() -> None:
    gen = MarketGenerator(_registry(), seed=5)
    assert len(gen.next_batch(T0)) == 0
    prev = T0
    for k in range(1, 50):
        now = T0 + k * 7_000_000
        batch = gen.next_batch(now)
        assert np.all(np.diff(batch.ts_event) >= 0)
        assert np.all((batch.ts_event > prev) & (batch.ts_event <= now))
        assert np.array_equal(batch.ts_recv, batch.ts_event)
        prev = now


def test_rate_is_the_configured_tick_rate() -> None:
    batch = _ten_seconds()
    # Arrivals come at the configured rate; un-crossing the book adds ~1.5 % quote ticks.
    assert 1.0 <= len(batch) / 10 / 20_000 <= 1.04
    slow = MarketGenerator(_registry(), GeneratorConfig(tick_rate=2_000.0), seed=7)
    assert len(slow.generate(T0, T0 + 10 * SEC)) / 10 == pytest.approx(2_000, rel=0.15)


def test_every_generated_tick_passes_the_validator() -> None:
    validator = TickValidator(len(_registry()))
    good = validator.validate(_ten_seconds())
    assert len(good) == len(_ten_seconds())
    assert sum(validator.counts.values()) == 0


def test_burst_multiplies_the_rate_for_its_duration() -> None:
    gen = MarketGenerator(_registry(), GeneratorConfig(tick_rate=10_000.0), seed=9)
    before = gen.generate(T0, T0 + SEC)
    gen.burst(5.0, 1.0)
    during = gen.generate(T0 + SEC, T0 + 2 * SEC)
    after = gen.generate(T0 + 2 * SEC, T0 + 3 * SEC)
    assert len(during) > 3.5 * len(before)
    assert len(after) < 1.5 * len(before)


def test_activity_is_skewed_towards_a_few_names() -> None:
    counts = np.sort(np.bincount(_ten_seconds().instrument, minlength=len(_registry())))[::-1]
    top_1pct = counts[: len(counts) // 100].sum() / counts.sum()
    assert top_1pct > 0.15  # a dozen names carry a large share of the flow
    assert counts[len(counts) // 2] < counts[0] / 20


def test_quotes_never_cross_and_trades_print_at_the_touch() -> None:
    batch = _ten_seconds()
    for index in (0, 9, 150, 1000, 1003):  # SPY, BAC, a synthetic stock, BTC, BNB
        rows = batch.instrument == index
        kind, price = batch.kind[rows], batch.price[rows]
        bid = ask = np.nan
        trades = 0
        for k, p in zip(kind, price, strict=True):
            if k == TickKind.BID:
                bid = p
            elif k == TickKind.ASK:
                ask = p
            elif not np.isnan(bid) and not np.isnan(ask):
                assert p in (bid, ask)
                trades += 1
            if not np.isnan(bid) and not np.isnan(ask):
                assert bid < ask
        assert trades > 0


def test_quote_to_trade_ratio_and_kinds_by_asset_class() -> None:
    batch = _ten_seconds()
    crypto = _registry().asset_class[batch.instrument] == AssetClass.CRYPTO
    for mask, low, high in ((~crypto, 4.0, 5.5), (crypto, 3.0, 4.5)):
        trades = np.count_nonzero(batch.kind[mask] == TickKind.TRADE)
        quotes = np.count_nonzero(batch.kind[mask] != TickKind.TRADE)
        assert low < quotes / trades < high
    assert 0.1 < crypto.mean() < 0.2
    assert np.all(batch.price > 0) and np.all(batch.size > 0)


def test_prices_stay_on_each_instruments_tick_grid() -> None:
    batch = _ten_seconds()
    tick = _registry().tick_size[batch.instrument]
    units = batch.price / tick
    assert np.allclose(units, np.round(units), rtol=0, atol=1e-6 * np.maximum(1, units))


def test_real_equity_hours_keep_stocks_quiet_outside_the_session() -> None:
    gen = MarketGenerator(_registry(), GeneratorConfig(equity_hours="real"), seed=1)
    night = gen.generate(T0, T0 + SEC)  # 17:13 New York
    assert len(night) > 0
    assert np.all(_registry().asset_class[night.instrument] == AssetClass.CRYPTO)
    open_ns = 1_700_058_600 * SEC  # Wednesday 2023-11-15 09:30 New York
    gen_day = MarketGenerator(_registry(), GeneratorConfig(equity_hours="real"), seed=1)
    day = gen_day.generate(open_ns, open_ns + SEC)
    assert np.mean(_registry().asset_class[day.instrument] == AssetClass.EQUITY) > 0.7


def test_a_planted_trend_moves_the_price() -> None:
    gen = MarketGenerator(_registry(), seed=2)
    start = gen.mid_prices()[0]
    gen.set_regime([0], drift_per_s=0.01)
    gen.generate(T0, T0 + 10 * SEC)
    assert gen.mid_prices()[0] / start == pytest.approx(np.exp(0.1), rel=0.03)


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        GeneratorConfig(garch_alpha=0.5, garch_beta=0.6)
    with pytest.raises(ValueError):
        GeneratorConfig(equity_hours="sometimes")  # type: ignore[arg-type]
