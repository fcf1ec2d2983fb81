"""The statistics the synthetic market is calibrated on, measured the same way on real and
generated ticks.

For one symbol: the trade inter-arrival distribution (median, p90, coefficient of variation, and
median and p90 over the mean, which do not depend on the trading rate), the 1-second log-return
distribution of the last trade price (std, excess kurtosis), the quote/trade ratio and the
quoted spread in bps. Equities are measured over the regular session (09:30-16:00 New York).
Real files are read with `tickwise.data.readers`; `python -m tickwise.data.calibration` prints
the table kept in docs/market-data.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tickwise.data.generator import GeneratorConfig, MarketGenerator
from tickwise.data.readers import (
    MS,
    NEW_YORK,
    SourceFormat,
    SymbolTicks,
    default_data_root,
    discover_sources,
    read_source,
)
from tickwise.data.universe import build_universe, universe_prices
from tickwise.model.instruments import AssetClass
from tickwise.model.ticks import TickBatch, TickKind

SECOND = 1_000_000_000
SESSION_OPEN_MS = 34_200_000  # 09:30 New York
SESSION_CLOSE_MS = 57_600_000  # 16:00 New York


@dataclass(frozen=True, slots=True)
class SymbolStats:
    """Calibration figures for one symbol (or one generated instrument)."""

    symbol: str
    trades: int
    trades_per_s: float
    gap_median_ms: float
    gap_p90_ms: float
    gap_cv: float
    gap_median_over_mean: float
    gap_p90_over_mean: float
    ret_1s_std_bps: float
    ret_1s_excess_kurtosis: float
    quote_to_trade: float  # NaN when the source has no quotes
    spread_median_bps: float  # NaN when the source has no quotes


def regular_session(ts_ns: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Ticks inside 09:30-16:00 New York on their own day (offset from the first tick's day)."""
    if ts_ns.size == 0:
        return np.zeros(0, dtype=np.bool_)
    first = dt.datetime.fromtimestamp(int(ts_ns[0]) / 1e9, tz=NEW_YORK)
    offset_ns = int((first.utcoffset() or dt.timedelta(0)).total_seconds() * 1e9)
    ms_of_day = ((ts_ns + offset_ns) % (86_400 * SECOND)) // MS
    return (ms_of_day >= SESSION_OPEN_MS) & (ms_of_day < SESSION_CLOSE_MS)


def interarrival_stats(
    ts_ns: npt.NDArray[np.int64], resolution_ns: int = MS
) -> tuple[float, float, float, float, float]:
    """(median ms, p90 ms, CV, median/mean, p90/mean) of gaps between consecutive trades.

    Times are floored to `resolution_ns` first (LEAN stamps in ms), so prints in the same
    millisecond count as zero gaps, on real and generated data alike.
    """
    if ts_ns.size < 3:
        return (math.nan,) * 5
    gaps = np.diff((ts_ns // resolution_ns) * resolution_ns).astype(np.float64) / MS
    mean = float(gaps.mean())
    median, p90 = (float(v) for v in np.percentile(gaps, [50, 90]))
    cv = float(gaps.std() / mean) if mean > 0 else math.nan
    return median, p90, cv, median / mean, p90 / mean


def one_second_returns(ts_ns: npt.NDArray[np.int64], price: npt.NDArray[np.float64]) -> npt.NDArray:
    """Log returns of the last trade price sampled every second (a quiet second returns 0)."""
    if ts_ns.size < 2:
        return np.empty(0)
    sec = (ts_ns - ts_ns[0]) // SECOND
    last_of_second = np.flatnonzero(np.diff(sec, append=sec[-1] + 1) != 0)
    grid = np.arange(int(sec[-1]) + 1)
    at = np.searchsorted(sec[last_of_second], grid, side="right") - 1
    sampled = np.log(price[last_of_second][at])
    return np.diff(sampled)


def moments_bps(returns: npt.NDArray[np.float64]) -> tuple[float, float]:
    """(std in bps, excess kurtosis) of a return series."""
    if returns.size < 4 or not returns.std() > 0:
        return math.nan, math.nan
    centred = returns - returns.mean()
    var = float(np.mean(centred**2))
    kurt = float(np.mean(centred**4) / var**2) - 3.0
    return math.sqrt(var) * 1e4, kurt


def quoted_spread_bps(
    kind: npt.NDArray[np.uint8], price: npt.NDArray[np.float64]
) -> tuple[float, float]:
    """(median spread bps, share of crossed or locked updates) from one-sided quote ticks.

    Carries the last bid and the last ask forward (as LEAN does for quote bars) and measures the
    spread after every quote update where both sides are known. Multi-exchange feeds can show a
    crossed or locked book for a moment; those updates are counted and left out of the median.
    """
    quote = (kind == TickKind.BID) | (kind == TickKind.ASK)
    kind, price = kind[quote], price[quote]
    if kind.size == 0:
        return math.nan, math.nan
    idx = np.arange(kind.size)
    last_bid_at = np.maximum.accumulate(np.where(kind == TickKind.BID, idx, -1))
    last_ask_at = np.maximum.accumulate(np.where(kind == TickKind.ASK, idx, -1))
    both = (last_bid_at >= 0) & (last_ask_at >= 0)
    bid = price[last_bid_at[both]]
    ask = price[last_ask_at[both]]
    if bid.size == 0:
        return math.nan, math.nan
    ok = ask > bid
    spread = (ask[ok] - bid[ok]) / ((ask[ok] + bid[ok]) / 2.0) * 1e4
    median = float(np.median(spread)) if spread.size else math.nan
    return median, float(1.0 - ok.mean())


def symbol_stats(
    symbol: str,
    ts_ns: npt.NDArray[np.int64],
    price: npt.NDArray[np.float64],
    kind: npt.NDArray[np.uint8],
    has_quotes: bool,
    resolution_ns: int = MS,
) -> SymbolStats:
    """Every calibration figure for one symbol's ticks (time-sorted, one session or more)."""
    trade = kind == TickKind.TRADE
    t_ts, t_px = ts_ns[trade], price[trade]
    span_s = max(1e-9, (int(ts_ns[-1]) - int(ts_ns[0])) / SECOND) if ts_ns.size else math.nan
    med, p90, cv, med_m, p90_m = interarrival_stats(t_ts, resolution_ns)
    std_bps, kurt = moments_bps(one_second_returns(t_ts, t_px))
    n_quotes = int((~trade).sum())
    spread, _ = quoted_spread_bps(kind, price) if has_quotes else (math.nan, math.nan)
    return SymbolStats(
        symbol=symbol,
        trades=int(trade.sum()),
        trades_per_s=float(trade.sum()) / span_s,
        gap_median_ms=med,
        gap_p90_ms=p90,
        gap_cv=cv,
        gap_median_over_mean=med_m,
        gap_p90_over_mean=p90_m,
        ret_1s_std_bps=std_bps,
        ret_1s_excess_kurtosis=kurt,
        quote_to_trade=n_quotes / max(1, int(trade.sum())) if has_quotes else math.nan,
        spread_median_bps=spread,
    )


def _merge(parts: Sequence[SymbolTicks]) -> SymbolTicks:
    ts = np.concatenate([p.ts_event for p in parts])
    order = np.argsort(ts, kind="stable")
    return SymbolTicks(
        parts[0].symbol,
        ts[order],
        np.concatenate([p.price for p in parts])[order],
        np.concatenate([p.size for p in parts])[order],
        np.concatenate([p.kind for p in parts])[order],
    )


def _pool(stats: Sequence[SymbolStats], symbol: str) -> SymbolStats:
    """Rows combined: counts summed, every other figure the median (NaNs ignored)."""
    row: dict[str, object] = {"symbol": symbol, "trades": sum(s.trades for s in stats)}
    for name in SymbolStats.__slots__:
        values = [getattr(s, name) for s in stats]
        if name not in row:
            finite = [v for v in values if not math.isnan(v)]
            row[name] = float(np.median(finite)) if finite else math.nan
    return SymbolStats(**row)  # type: ignore[arg-type]


def measure_real(
    root: Path, symbols: Iterable[str] | None = None, days: Iterable[str] | None = None
) -> dict[str, SymbolStats]:
    """Calibration figures of the recorded files, one row per symbol (per-day medians).

    LEAN equities are measured over the regular session only; Binance captures over the whole
    capture. Only days that have a trade file are used; quote figures only where a quote file
    for the same day exists (SPY has none).
    """
    wanted = set(symbols) if symbols is not None else None
    sources = discover_sources(root, wanted, set(days) if days is not None else None)
    by_key: dict[tuple[str, str], list] = {}
    for src in sources:
        day = src.path.name.split("_")[0] if src.format is not SourceFormat.BINANCE_WS else "all"
        by_key.setdefault((src.symbol, day), []).append(src)
    per_symbol: dict[str, list[SymbolStats]] = {}
    for (symbol, _), group in sorted(by_key.items()):
        ticks = _merge([read_source(s) for s in group])
        has_quotes = bool((ticks.kind != TickKind.TRADE).any())
        if not (ticks.kind == TickKind.TRADE).any():
            continue
        if group[0].format is not SourceFormat.BINANCE_WS:
            keep = regular_session(ticks.ts_event)
            ticks = SymbolTicks(
                symbol, ticks.ts_event[keep], ticks.price[keep], ticks.size[keep], ticks.kind[keep]
            )
        stats = symbol_stats(symbol, ticks.ts_event, ticks.price, ticks.kind, has_quotes)
        per_symbol.setdefault(symbol, []).append(stats)
    return {sym: _pool(rows, sym) for sym, rows in per_symbol.items()}


def measure_batch(
    batch: TickBatch,
    instruments: Iterable[int],
    names: Sequence[str] | None = None,
    resolution_ns: int = MS,
) -> dict[str, SymbolStats]:
    """The same figures for instruments of a (generated) tick batch sorted by `ts_event`."""
    out: dict[str, SymbolStats] = {}
    order = np.argsort(batch.instrument, kind="stable")
    inst_sorted = batch.instrument[order]
    for index in instruments:
        lo, hi = np.searchsorted(inst_sorted, [index, index + 1])
        rows = order[lo:hi]
        name = names[index] if names is not None else str(index)
        if (batch.kind[rows] == TickKind.TRADE).sum() < 3:
            continue
        out[name] = symbol_stats(
            name,
            batch.ts_event[rows],
            batch.price[rows],
            batch.kind[rows],
            has_quotes=True,
            resolution_ns=resolution_ns,
        )
    return out


def generated_stats(
    seconds: float = 300.0,
    config: GeneratorConfig | None = None,
    seed: int = 7,
    max_stocks: int = 40,
) -> list[SymbolStats]:
    """The generator's figures, measured like the real ones, on names that look like them.

    Runs the default universe for `seconds` and measures the `max_stocks` most active stocks
    priced $10-200 that print 1-20 trades/s (the range of SPY, BAC, IBM and AIG), the three most
    active crypto pairs (like the Binance captures); times are floored to the ms like LEAN's.
    """
    registry = build_universe()
    gen = MarketGenerator(registry, config or GeneratorConfig(), seed)
    start = 1_700_000_000 * SECOND
    batch = gen.generate(start, start + round(seconds * SECOND))
    prices = universe_prices(registry, seed)
    trades = np.bincount(
        batch.instrument[batch.kind == TickKind.TRADE], minlength=len(registry)
    ) / max(seconds, 1e-9)
    equity = np.flatnonzero(registry.asset_class == AssetClass.EQUITY)
    stocks = [int(i) for i in equity if 1.0 <= trades[i] <= 20.0 and 10.0 <= prices[i] <= 200.0][
        :max_stocks
    ]
    crypto = [int(i) for i in registry.indexes_of(AssetClass.CRYPTO)[:3]]
    names = registry.symbols()
    return list(measure_batch(batch, stocks + crypto, names).values())


def summarise(rows: Sequence[SymbolStats], label: str) -> SymbolStats:
    """One row of medians over several symbols (the figure a tolerance is checked on)."""
    return _pool(rows, label)


def format_table(rows: Iterable[SymbolStats]) -> str:
    """A Markdown table of calibration rows."""
    cols = [
        ("symbol", "{}"),
        ("trades_per_s", "{:.2f}"),
        ("gap_median_ms", "{:.0f}"),
        ("gap_p90_ms", "{:.0f}"),
        ("gap_cv", "{:.2f}"),
        ("gap_median_over_mean", "{:.3f}"),
        ("gap_p90_over_mean", "{:.2f}"),
        ("ret_1s_std_bps", "{:.2f}"),
        ("ret_1s_excess_kurtosis", "{:.1f}"),
        ("quote_to_trade", "{:.2f}"),
        ("spread_median_bps", "{:.2f}"),
    ]
    lines = [
        "| " + " | ".join(c for c, _ in cols) + " |",
        "|" + "---|" * len(cols),
    ]
    for row in rows:
        values = asdict(row)
        lines.append("| " + " | ".join(fmt.format(values[c]) for c, fmt in cols) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Print the real figures (and the generator's) as Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, default=None)
    parser.add_argument("--days", nargs="*", default=None)
    parser.add_argument("--generated-seconds", type=float, default=300.0)
    args = parser.parse_args(argv)
    root = args.root or default_data_root()
    if root is None:
        raise SystemExit("no recorded data found (set TICKWISE_DATA)")
    real = measure_real(root, days=args.days)
    generated = generated_stats(args.generated_seconds)
    crypto = [r for r in generated if "/" in r.symbol]
    stocks = [r for r in generated if "/" not in r.symbol]
    print(format_table(real.values()))
    print()
    print(format_table([*crypto, summarise(stocks, f"median of {len(stocks)} stocks")]))


if __name__ == "__main__":
    main()
