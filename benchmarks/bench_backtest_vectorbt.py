"""Grid backtest throughput of tickwise against vectorbt on the same SPY prices, both checked.

    python benchmarks/bench_backtest_vectorbt.py --source ticks --days 5 --fast 8 --slow 8 \\
        --fee-bps 1 --repeats 3 --out vbt.json

Both tools run the trend strategy (EMA cross, band 0) over one price series with the same grid
of (fast_s, slow_s) time constants, in one process on the same cores:
- tickwise: `GridBacktester("trend", device="cpu").run(series, sets)` on a trades-only
  `TickSeries` (no quotes, spread 0, fee `--fee-bps`, latency 0), on every core and on one;
- vectorbt: the EMAs of every distinct time constant from one `IndicatorFactory` indicator run
  per side, long/flat signals as 2-D arrays, one `Portfolio.from_signals` over all the sets'
  columns, then `total_return()` and the order count per column.
Times are end to end (compilation excluded by a warm-up call), the median of `--repeats`, the
two tools interleaved. The result: backtests/s and ticks x sets/s of each, and their ratio.

The prices are SPY's from the LEAN files under the data root: trade ticks (`ticks`), or 1-second
or 1-minute bar closes carried forward over every step of the session (`seconds`, `minutes`).
The series is restamped one second apart from t = 0 (every float64 ns exact, every gap exactly
1 s), so a time constant of N seconds spans N prices and tickwise's continuous-time EMA has the
constant alpha that a bar-based EMA has.

How vectorbt is told tickwise's conventions:
1. EMA: at price i tickwise moves each EMA towards the previous price p[i-1] by
   alpha = 1 - exp(-1 s / tau), starting from p[0]. vectorbt's own `ewm_mean_nb` on the price
   shifted by one (adjust=False, min_periods=0, span = 2 / alpha - 1) is the same EMA up to
   rounding (~2e-13 relative), which flips the odd decision at an exact tie (`--ema vectorbt`
   shows how many). By default (`--ema exact`) the indicator runs tickwise's arithmetic,
   p[i-1] + (ema - p[i-1]) * exp(-1 / tau), so both sides decide on the same bits.
2. Warm-up: tickwise trades once two prices and `slow_s` seconds are seen; the signals are
   masked before the same index, found with the kernel's float64 test.
3. Long when fast > slow, flat when fast < slow, unchanged on a tie: level entries and exits
   (vectorbt ignores an entry while long and an exit while flat, as tickwise does).
4. Fills: tickwise fills a signal of price i at price i+1: the signals are shifted one step
   and vectorbt fills at that step's close.
5. Sizing and fees: a buy spends all the cash, fee included (qty = cash / (price (1 + fee))),
   as vectorbt's default size=inf does; a sell closes the position; the fee is charged on the
   notional; an open position is marked at the last price. vectorbt rejects orders under
   1e-8 shares by default, tickwise has no minimum: `min_size=0`.
Agreement: per set, the same number of orders and of round trips and the total return equal to
1e-9 relative; a few sets are also compared fill by fill (index, side, price, quantity).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba as nb
import numpy as np
import numpy.typing as npt

import tickwise.strategy  # noqa: F401  (registers the strategies)
from tickwise.backtest import FillModel, GridBacktester, GridResult, TickSeries
from tickwise.data.readers import (
    LEAN_PRICE_SCALE,
    default_data_root,
    new_york_midnight_ns,
    read_lean_trades,
)
from tickwise.model.instruments import AssetClass
from tickwise.model.ticks import TickKind

FloatArray = npt.NDArray[np.float64]
STEP_NS = 1_000_000_000  # the restamped series: one price per second
STEP_S = 1.0
NS_PER_S = 1e9
MIN_HOLD_S = 1.0  # the lowest allowed: never binds with prices one second apart
REGULAR_MS = (34_200_000, 57_600_000)  # 09:30-16:00 New York, ms since midnight
EXTENDED_MS = (14_400_000, 72_000_000)  # 04:00-20:00
SPY_DIR = Path("equities/us/lean")
RTOL = 1e-9


class BenchInputError(ValueError):
    """The benchmark cannot run on the given data or options."""


# ---------------------------------------------------------------------------- the prices


@dataclass(frozen=True, slots=True)
class Prices:
    """One price series and where it came from."""

    values: FloatArray
    source: str
    session: str
    days: tuple[str, ...]


def load_spy_prices(
    source: str = "ticks", days: int = 5, session: str = "regular", root: Path | None = None
) -> Prices:
    """SPY's trade prices (`ticks`) or bar closes (`seconds`, `minutes`) of the first `days`."""
    root = root or default_data_root()
    if root is None:
        raise BenchInputError("no data root: set TICKWISE_DATA or provide ../shared/data")
    folder = {"ticks": "tick", "seconds": "second", "minutes": "minute"}.get(source)
    if folder is None:
        raise BenchInputError(f"--source must be ticks, seconds or minutes, not {source!r}")
    window = {"regular": REGULAR_MS, "extended": EXTENDED_MS}.get(session)
    if window is None:
        raise BenchInputError(f"--session must be regular or extended, not {session!r}")
    files = sorted((root / SPY_DIR / folder / "spy").glob("*_trade.zip"))[:days]
    if not files:
        raise BenchInputError(f"no SPY trade files under {SPY_DIR / folder / 'spy'}")
    parts = []
    for path in files:
        if source == "ticks":
            parts.append(_tick_prices(path, window))
        else:
            parts.append(_bar_closes(path, 1_000 if source == "seconds" else 60_000, window))
    return Prices(
        np.ascontiguousarray(np.concatenate(parts), np.float64),
        source,
        session,
        tuple(p.name[:8] for p in files),
    )


def _tick_prices(path: Path, window: tuple[int, int]) -> FloatArray:
    ticks = read_lean_trades(path)  # drops the ticks flagged suspicious
    day = dt.datetime.strptime(path.name[:8], "%Y%m%d").date()
    # ms since midnight New York (ties are spread by microseconds: the floor is the file's ms)
    ms = (ticks.ts_event - new_york_midnight_ns(day)) // 1_000_000
    keep = (ms >= window[0]) & (ms < window[1])
    return ticks.price[keep]


def _bar_closes(path: Path, step_ms: int, window: tuple[int, int]) -> FloatArray:
    """Closes of a LEAN trade-bar zip on every step of the window, carried forward."""
    with zipfile.ZipFile(path) as archive:
        raw = archive.read(archive.namelist()[0]).decode()
    table = np.loadtxt(raw.splitlines(), delimiter=",", usecols=(0, 4), dtype=np.int64, ndmin=2)
    if table.size == 0:
        raise BenchInputError(f"{path.name}: no bars")
    start_ms, close = table[:, 0], table[:, 1] / LEAN_PRICE_SCALE
    grid = np.arange(window[0], window[1], step_ms)
    at = np.searchsorted(start_ms, grid, side="right") - 1  # last bar started at or before
    return close[np.maximum(at, 0)]


def as_tick_series(prices: FloatArray, symbol: str = "SPY") -> TickSeries:
    """A one-instrument, trades-only TickSeries with the prices one second apart from 0.

    Timestamps from 0 keep every float64 nanosecond exact, so each gap is exactly 1 s.
    """
    n = prices.size
    return TickSeries(
        symbols=(symbol,),
        offsets=np.array([0, n], np.int64),
        ts=np.arange(n, dtype=np.int64) * STEP_NS,
        price=np.ascontiguousarray(prices, np.float64),
        size=np.ones(n),
        kind=np.full(n, int(TickKind.TRADE), np.int64),
        asset_class=np.array([int(AssetClass.EQUITY)], np.uint8),
    )


def trend_sets(n_fast: int, n_slow: int) -> FloatArray:
    """(fast_s, slow_s, band 0, min_hold_s 1) sets on geometric axes, fast < slow."""
    bt = GridBacktester("trend", device="cpu")
    fast = np.round(np.geomspace(2.0, 300.0, n_fast), 3)
    slow = np.round(np.geomspace(10.0, 3600.0, n_slow), 3)
    return bt.spec.grid({"fast_s": fast, "slow_s": slow, "band": [0.0], "min_hold_s": [MIN_HOLD_S]})


# ---------------------------------------------------------------------------- the two tools


@dataclass(frozen=True, slots=True)
class Outcome:
    """What both tools report per set: compared by `compare`."""

    total_return: FloatArray
    orders: FloatArray
    round_trips: FloatArray


def tickwise_backtester(fee_bps: float) -> GridBacktester:
    fill = FillModel(latency_ms=0.0, spread_bps=0.0, fee_bps=fee_bps)
    return GridBacktester("trend", fill, sample_s=60.0, device="cpu")


def run_tickwise(bt: GridBacktester, series: TickSeries, sets: FloatArray) -> GridResult:
    return bt.run(series, sets)


def tickwise_outcome(result: GridResult) -> Outcome:
    m = result.metrics
    return Outcome(m["total_return"][0], m["trades"][0], m["round_trips"][0])


def ema_span(tau_s: FloatArray) -> FloatArray:
    """vectorbt's span for tickwise's EMA over one-second steps: alpha = 1 - exp(-1 / tau)."""
    alpha = -np.expm1(-STEP_S / np.asarray(tau_s, np.float64))
    return 2.0 / alpha - 1.0


def warm_index(slow_s: FloatArray, n: int) -> npt.NDArray[np.int64]:
    """First index at which tickwise may trade, per set (n if never).

    The same float64 test as the kernel: two prices seen and `ts[i] - ts[0] >= slow_s * 1e9`.
    """
    ts = np.arange(n, dtype=np.int64) * STEP_NS
    elapsed = ts.astype(np.float64) - float(ts[0])
    first = np.searchsorted(elapsed, np.asarray(slow_s) * NS_PER_S, side="left")
    return np.maximum(first, 1).astype(np.int64)


@nb.njit(cache=False)
def held_ema_nb(price: Any, tau_s: float) -> Any:
    """Each column's EMA in tickwise's arithmetic: out[i] = p[i-1] + (out[i-1] - p[i-1]) * d.

    d = exp(-1 s / tau) as the kernel computes it, so the values match tickwise's bit for bit.
    """
    out = np.empty_like(price)
    keep = math.exp(-STEP_S / tau_s)
    for col in range(price.shape[1]):
        ema = price[0, col]
        out[0, col] = ema
        for i in range(1, price.shape[0]):
            held = price[i - 1, col]
            ema = held + (ema - held) * keep
            out[i, col] = ema
    return out


def ema_indicator(kind: str) -> Any:
    """A vectorbt indicator class: `exact` (tickwise's arithmetic, param `tau`) or `vectorbt`
    (vectorbt's own `ewm_mean_nb`, adjust=False, min_periods=0, param `span`)."""
    import vectorbt as vbt
    from vectorbt.generic import nb as generic_nb

    exact = kind == "exact"
    factory = vbt.IndicatorFactory(
        class_name="EMA",
        short_name="ema",
        input_names=["close"],
        param_names=["tau" if exact else "span"],
        output_names=["ema"],
    )
    if exact:
        return factory.from_apply_func(held_ema_nb)
    return factory.from_apply_func(
        generic_nb.ewm_mean_nb, kwargs_to_args=["minp", "adjust"], minp=0, adjust=False
    )


def vectorbt_emas(prices: FloatArray, taus: FloatArray, kind: str) -> FloatArray:
    """One column per time constant: the EMA tickwise uses at each price (NaN at 0 for
    `vectorbt`, whose EMA runs on the price shifted by one)."""
    n = prices.size
    ema = ema_indicator(kind)
    if kind == "exact":
        out = ema.run(prices, tau=list(taus)).ema
    else:
        held = np.empty(n)  # the price each EMA update moves towards: the previous one
        held[0] = np.nan
        held[1:] = prices[:-1]
        out = ema.run(held, span=list(ema_span(taus))).ema
    return np.asarray(out.to_numpy(), np.float64).reshape(n, -1)


@dataclass(slots=True)
class VectorbtRun:
    """The portfolio of every set and the seconds each phase took."""

    portfolio: Any
    outcome: Outcome
    phases: dict[str, float]


def run_vectorbt(
    prices: FloatArray, sets: FloatArray, fee_bps: float, ema: str = "exact"
) -> VectorbtRun:
    """The whole grid the vectorbt way: one indicator run per side, one portfolio for all sets."""
    import pandas as pd
    import vectorbt as vbt

    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    n = prices.size
    fast_taus, fast_col = np.unique(sets[:, 0], return_inverse=True)
    slow_taus, slow_col = np.unique(sets[:, 1], return_inverse=True)
    fast = vectorbt_emas(prices, fast_taus, ema)
    slow = vectorbt_emas(prices, slow_taus, ema)
    t1 = time.perf_counter()
    phases["ema"] = t1 - t0
    f = fast[:, fast_col]
    s = slow[:, slow_col]
    warm = np.arange(n)[:, None] >= warm_index(sets[:, 1], n)[None, :]
    entries = np.zeros(f.shape, np.bool_)
    exits = np.zeros(f.shape, np.bool_)
    entries[1:] = (f[:-1] > s[:-1]) & warm[:-1]  # decided at i-1, filled at i
    exits[1:] = (f[:-1] < s[:-1]) & warm[:-1]
    del f, s, warm
    columns = pd.MultiIndex.from_arrays([sets[:, 0], sets[:, 1]], names=["fast_s", "slow_s"])
    t2 = time.perf_counter()
    phases["signals"] = t2 - t1
    pf = vbt.Portfolio.from_signals(
        pd.Series(prices),
        pd.DataFrame(entries, columns=columns),
        pd.DataFrame(exits, columns=columns),
        fees=fee_bps * 1e-4,
        min_size=0.0,  # vectorbt rejects orders under 1e-8 shares by default; tickwise does not
        init_cash=1.0,
        freq="1s",
    )
    t3 = time.perf_counter()
    phases["portfolio"] = t3 - t2
    total_return = pf.total_return().to_numpy()
    orders = pf.orders.count().to_numpy().astype(np.float64)
    phases["metrics"] = time.perf_counter() - t3
    # not timed: the round trips, for the agreement check only
    trips = pf.trades.closed.count().to_numpy().astype(np.float64)
    return VectorbtRun(pf, Outcome(total_return, orders, trips), phases)


# ---------------------------------------------------------------------------- agreement


def compare(tw: Outcome, vb: Outcome) -> dict[str, Any]:
    """Per-set agreement: the same orders and round trips, total returns equal to RTOL relative.

    Relative to the total return itself (the PnL), not to the final equity: vectorbt derives
    its total return from a sum of profits, exact to ~1e-15 of the starting cash, so on a set
    that has traded its equity down to 1e-6 the final equities can differ by ~1e-9 relative
    while the PnLs agree to ~1e-15.
    """
    dev = np.abs(tw.total_return - vb.total_return)
    scale = np.maximum(np.abs(tw.total_return), np.abs(vb.total_return))
    rel = np.divide(dev, scale, out=np.zeros_like(dev), where=scale > 0)
    same_orders = tw.orders == vb.orders
    same_trips = tw.round_trips == vb.round_trips
    return {
        "sets": int(rel.size),
        "sets_same_orders": int(same_orders.sum()),
        "sets_same_round_trips": int(same_trips.sum()),
        "sets_total_return_within_rtol": int((rel <= RTOL).sum()),
        "rtol": RTOL,
        "max_rel_dev_total_return": float(rel.max()) if rel.size else 0.0,
        "max_abs_dev_total_return": float(dev.max()) if dev.size else 0.0,
        "worst_set": int(np.argmax(rel)) if rel.size else 0,
        "orders_total": int(tw.orders.sum()),
        "ok": bool(same_orders.all() and same_trips.all() and (rel <= RTOL).all()),
    }


def own_ewm_ties(prices: FloatArray, sets: FloatArray) -> dict[str, Any]:
    """Where vectorbt's own `ewm_mean_nb` would decide otherwise than tickwise's arithmetic.

    Both compute the same EMA (same alpha, same start), in a different order of operations:
    they differ by a few units in the last place. A decision (the sign of fast - slow, from the
    warm-up on) can only differ where fast and slow are that close: a tie, as when the price
    stays constant long enough for both EMAs to converge to it.
    """
    fast_taus, fast_col = np.unique(sets[:, 0], return_inverse=True)
    slow_taus, slow_col = np.unique(sets[:, 1], return_inverse=True)
    fe, se = (vectorbt_emas(prices, t, "exact") for t in (fast_taus, slow_taus))
    fb, sb = (vectorbt_emas(prices, t, "vectorbt") for t in (fast_taus, slow_taus))
    warm = warm_index(sets[:, 1], prices.size)
    sets_hit, points, worst = 0, 0, 0.0
    for j in range(sets.shape[0]):
        lo, a, b = int(warm[j]), int(fast_col[j]), int(slow_col[j])
        gap = fe[lo:, a] - se[lo:, b]
        differ = np.sign(gap) != np.sign(fb[lo:, a] - sb[lo:, b])
        if differ.any():
            sets_hit += 1
            points += int(differ.sum())
            worst = max(worst, float(np.max(np.abs(gap[differ]) / prices[lo:][differ])))
    max_ema_dev = max(
        float(np.nanmax(np.abs(fe[1:] - fb[1:]) / prices[1:, None])),
        float(np.nanmax(np.abs(se[1:] - sb[1:]) / prices[1:, None])),
    )
    return {
        "max_rel_dev_ema": max_ema_dev,
        "sets_with_a_different_decision": sets_hit,
        "decisions_that_differ": points,
        "max_rel_gap_fast_slow_there": worst,
    }


def compare_fills(
    bt: GridBacktester, series: TickSeries, sets: FloatArray, j: int, portfolio: Any
) -> dict[str, Any]:
    """Set j fill by fill: the same fill indices, sides and prices (to RTOL) in both tools."""
    rec = bt.record(series, 0, sets[j])
    tw_idx = np.searchsorted(series.ts, rec.fills["ts"])
    tw_buy = rec.fills["side"] == "buy"
    orders = portfolio.orders.values  # structured: col, idx, size, price, fees, side
    mine = orders[orders["col"] == j]
    vb_idx = mine["idx"].astype(np.int64)
    vb_buy = mine["side"] == 0
    same = tw_idx.size == vb_idx.size and bool(
        np.array_equal(tw_idx, vb_idx)
        and np.array_equal(tw_buy, vb_buy)
        and np.allclose(rec.fills["price"], mine["price"], rtol=RTOL, atol=0.0)
        and np.allclose(np.abs(rec.fills["qty"]), mine["size"], rtol=RTOL, atol=0.0)
    )
    return {"set": j, "fills": int(tw_idx.size), "same": same}


# ---------------------------------------------------------------------------- timing


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _figures(times: list[float], n_prices: int, n_sets: int) -> dict[str, Any]:
    med = statistics.median(times)
    return {
        "elapsed_s": [round(t, 4) for t in times],
        "median_s": round(med, 4),
        "backtests_per_s": round(n_sets / med, 2),
        "tick_sets_per_s": float(f"{n_prices * n_sets / med:.4g}"),
    }


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def _machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return {"cpu_cores": os.cpu_count(), "cpu_model": model, "load_avg_1m_before": _load()}


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _versions() -> dict[str, str]:
    import pandas as pd
    import vectorbt as vbt

    return {
        "vectorbt": vbt.__version__,
        "numba": nb.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="ticks", choices=("ticks", "seconds", "minutes"))
    ap.add_argument("--days", type=int, default=5)
    ap.add_argument("--session", default="regular", choices=("regular", "extended"))
    ap.add_argument("--fast", type=int, default=8, help="fast time constants on the axis")
    ap.add_argument("--slow", type=int, default=8, help="slow time constants on the axis")
    ap.add_argument("--fee-bps", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--fill-checks", type=int, default=3, help="sets compared fill by fill")
    ap.add_argument(
        "--ema",
        default="exact",
        choices=("exact", "vectorbt"),
        help="vectorbt's EMA: tickwise's arithmetic in an IndicatorFactory, or its own ewm_mean",
    )
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    try:
        import vectorbt  # noqa: F401
    except ImportError:
        raise SystemExit("vectorbt is not installed: pip install vectorbt") from None
    try:
        prices = load_spy_prices(args.source, args.days, args.session)
    except BenchInputError as exc:
        raise SystemExit(f"error: {exc}") from None
    series = as_tick_series(prices.values)
    sets = trend_sets(args.fast, args.slow)
    n, n_sets = prices.values.size, sets.shape[0]
    bt = tickwise_backtester(args.fee_bps)
    threads = nb.get_num_threads()
    out: dict[str, Any] = {
        "machine": _machine(),
        "versions": _versions(),
        "data": {
            "symbol": "SPY",
            "source": prices.source,
            "session": prices.session,
            "days": list(prices.days),
            "prices": n,
            "restamped": "one price per second from t=0",
        },
        "grid": {
            "fast_s": sorted({float(v) for v in sets[:, 0]}),
            "slow_s": sorted({float(v) for v in sets[:, 1]}),
            "band": 0.0,
            "min_hold_s": MIN_HOLD_S,
            "sets": n_sets,
        },
        "fill": {"fee_bps": args.fee_bps, "spread_bps": 0.0, "latency_ms": 0.0},
    }
    # one-off compilation of both, on a small slice
    small = prices.values[: min(n, 5_000)]
    run_tickwise(bt, as_tick_series(small), sets[:2])
    run_vectorbt(small, sets[:2], args.fee_bps, args.ema)
    out["rss_mb_after_compile"] = _rss_mb()

    tw_times: list[float] = []
    tw1_times: list[float] = []
    vb_times: list[float] = []
    vb_phases: list[dict[str, float]] = []
    tw_result: GridResult | None = None
    vb_run: VectorbtRun | None = None
    for _ in range(args.repeats):  # interleaved, so a change of load hits both alike
        gc.collect()
        elapsed, tw_result = _timed(lambda: run_tickwise(bt, series, sets))
        tw_times.append(elapsed)
        nb.set_num_threads(1)
        tw1_times.append(_timed(lambda: run_tickwise(bt, series, sets))[0])
        nb.set_num_threads(threads)
        out.setdefault("rss_mb_after_tickwise", _rss_mb())  # before any full vectorbt run
        vb_run = None  # free the previous portfolio first
        gc.collect()
        elapsed, vb_run = _timed(lambda: run_vectorbt(prices.values, sets, args.fee_bps, args.ema))
        vb_times.append(elapsed)
        vb_phases.append(vb_run.phases)
        print(
            f"repeat: tickwise {tw_times[-1]:.3f} s, 1 thread {tw1_times[-1]:.3f} s, "
            f"vectorbt {vb_times[-1]:.3f} s (load {_load()})",
            file=sys.stderr,
        )
    assert tw_result is not None and vb_run is not None
    out["rss_mb_peak"] = _rss_mb()
    out["machine"]["load_avg_1m_after"] = _load()

    agreement = compare(tickwise_outcome(tw_result), vb_run.outcome)
    picks = np.unique(np.linspace(0, n_sets - 1, max(args.fill_checks, 0)).round().astype(int))
    agreement["fills_checked"] = [
        compare_fills(bt, series, sets, int(j), vb_run.portfolio) for j in picks
    ]
    agreement["ok"] = agreement["ok"] and all(c["same"] for c in agreement["fills_checked"])
    agreement["ema"] = args.ema
    agreement["vectorbt_own_ewm"] = own_ewm_ties(prices.values, sets)
    out["agreement"] = agreement
    out["tickwise"] = {"threads": threads, **_figures(tw_times, n, n_sets)}
    out["tickwise_1_thread"] = {"threads": 1, **_figures(tw1_times, n, n_sets)}
    out["vectorbt"] = {
        "threads": 1,
        **_figures(vb_times, n, n_sets),
        "phases_median_s": {
            k: round(statistics.median(p[k] for p in vb_phases), 4) for k in vb_phases[0]
        },
    }
    tw_med, tw1_med, vb_med = (statistics.median(t) for t in (tw_times, tw1_times, vb_times))
    out["ratio"] = {
        "tickwise_all_cores_over_vectorbt": round(vb_med / tw_med, 2),
        "tickwise_1_thread_over_vectorbt": round(vb_med / tw1_med, 2),
    }
    out["tickwise_ns_per_tick_set_per_thread"] = round(tw1_med / (n * n_sets) * 1e9, 2)
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    _table(out)
    if not agreement["ok"]:
        raise SystemExit("the agreement check failed")


def _table(out: dict[str, Any]) -> None:
    d = out["data"]
    print(
        f"\nSPY {d['source']} ({d['session']} session, {len(d['days'])} days): {d['prices']:,} "
        f"prices x {out['grid']['sets']} sets; agreement ok={out['agreement']['ok']} "
        f"(max rel dev of total return {out['agreement']['max_rel_dev_total_return']:.1e})"
    )
    print(f"{'tool':<22}{'threads':>8}{'median s':>10}{'backtests/s':>13}{'ticks x sets/s':>16}")
    for key in ("tickwise", "tickwise_1_thread", "vectorbt"):
        r = out[key]
        print(
            f"{key:<22}{r['threads']:>8}{r['median_s']:>10.3f}{r['backtests_per_s']:>13.2f}"
            f"{r['tick_sets_per_s']:>16.3g}"
        )
    ratio = out["ratio"]
    print(
        f"ratio tickwise/vectorbt: {ratio['tickwise_all_cores_over_vectorbt']}x on all cores, "
        f"{ratio['tickwise_1_thread_over_vectorbt']}x on one thread"
    )


if __name__ == "__main__":
    main()
