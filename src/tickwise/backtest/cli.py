"""`tickwise backtest`: a parameter grid over a window of ticks, ranked, charted and saved.

    tickwise backtest --strategy trend --instruments SPY --from 2013-10-07 --to 2013-10-12 \\
        --grid 'fast_s=5:60:5,slow_s=60:600:60' --report spy.html

The ticks come from the tick store (`--source store`, filled by `tickwise data import`) or from
the synthetic market (`--source generated`: the default universe's first N instruments, or the
named ones). `--source auto` (the default) reads the store when it holds any ticks and generates
otherwise. Every bad input ends the command with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from tickwise.backtest.costs import FillModel
from tickwise.backtest.grid import GridBacktester, GridResult, Recording
from tickwise.backtest.objectives import OBJECTIVES
from tickwise.backtest.report import (
    best_pairs,
    check_heat_axes,
    default_heat_axes,
    varying_params,
    write_report,
)
from tickwise.backtest.series import BacktestInputError, TickSeries
from tickwise.errors import one_line
from tickwise.model.instruments import AssetClass, Instrument, InstrumentRegistry
from tickwise.strategy.api import StrategySpec

if TYPE_CHECKING:
    from tickwise.data.tickstore import TickStore

SOURCES = ("auto", "store", "generated")
DEVICES = ("auto", "cpu", "gpu")
GENERATED_START = "2024-01-02T14:30:00Z"  # a Tuesday, 09:30 New York: reproducible by default
GENERATED_SPAN_NS = 3_600 * 1_000_000_000  # one hour when only one end (or neither) is given
GENERATED_INSTRUMENTS = 10
TICKS_PER_INSTRUMENT_S = 20.0  # default generated rate, per instrument
MAX_GENERATED_TICKS = 100_000_000  # about 7 GB of columns: beyond this, ask for less
GENERATOR_BLOCK_MS = 1_000.0  # offline generation: one vectorised step per second of market
PROGRESS_WORK = 1e9  # ticks x sets above which the grid shows a progress bar
NS = 1_000_000_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


# -- the command line -----------------------------------------------------------------------------


def add_backtest_parser(sub: Any) -> None:
    """Register `tickwise backtest` on the top-level subparsers."""
    p = sub.add_parser(
        "backtest",
        help="grid-backtest a strategy on stored or generated ticks; table, report, files",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    p.add_argument("--strategy", required=True, help="strategy name (trend, mean_reversion, ...)")
    p.add_argument(
        "--instruments",
        help="symbols (SPY,AAPL) or a count N: the first N of the store or the generated universe",
    )
    p.add_argument("--from", dest="start", help="window start, ISO date/time (UTC if no offset)")
    p.add_argument("--to", dest="end", help="window end, exclusive (ISO date/time)")
    p.add_argument("--source", choices=SOURCES, default="auto", help="where the ticks come from")
    p.add_argument("--ticks-dir", help="tick store folder (default $TICKWISE_TICKS or var/ticks)")
    p.add_argument(
        "--tick-rate",
        type=float,
        help=f"generated ticks/s, all instruments (default {TICKS_PER_INSTRUMENT_S:g} each)",
    )
    p.add_argument("--seed", type=int, default=7, help="generated market seed (default 7)")
    p.add_argument(
        "--grid", help="e.g. 'fast_s=5:50:5,slow_s=20:200:10' (default: 3x3 around defaults)"
    )
    p.add_argument("--objective", default="sharpe", help="sharpe, sortino, return_drawdown, return")
    p.add_argument("--turnover-penalty", type=float, default=0.0, help="score -= X * turnover")
    p.add_argument("--latency-ms", type=float, default=0.0, help="order to fill delay")
    p.add_argument("--spread-bps", type=float, default=2.0, help="spread where no quote is known")
    p.add_argument("--fee-bps", type=float, help="fee on notional (default: the venue's table)")
    p.add_argument("--venue", default="", help="fee table of this venue (alpaca, binance, etrade)")
    p.add_argument("--sample-s", type=float, default=60.0, help="equity sampling period (s)")
    p.add_argument("--device", choices=DEVICES, default="auto", help="auto: GPU when visible")
    p.add_argument("--top", type=int, default=10, help="rows of the printed table (default 10)")
    p.add_argument("--curves", type=int, default=5, help="best sets charted (default 5)")
    p.add_argument("--report", help="write the HTML report here")
    p.add_argument("--png-dir", help="write the charts as PNG files into this folder")
    p.add_argument("--heatmap", help="two parameters for the heatmap, e.g. fast_s,slow_s")
    p.add_argument("--out", help="write every (instrument, set) row as Parquet here")
    p.add_argument("--json", help="write the summary and the top rows as JSON here")


def cmd_backtest(args: argparse.Namespace, console: Console) -> int:
    """Run `tickwise backtest`; bad input is one line on stderr and exit status 2."""
    try:
        return _backtest(args, console)
    except (ValueError, OSError) as exc:  # BacktestInputError, TickStoreError, unwritable files
        print(f"tickwise backtest: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tickwise backtest: interrupted", file=sys.stderr)
        return 130


# -- inputs ---------------------------------------------------------------------------------------


def parse_time(text: str, flag: str) -> int:
    """ns since the epoch of an ISO date or date-time (UTC unless it carries an offset)."""
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise BacktestInputError(
            f"{flag} {text!r} is not an ISO date or time (e.g. 2013-10-07 or 2013-10-07T13:30Z)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * NS + delta.microseconds * 1_000


def format_time(ns: int) -> str:
    """An ns timestamp as ISO UTC, to the second (or to the ns when it has a fraction)."""
    when = _EPOCH + dt.timedelta(microseconds=ns // 1_000)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    frac = ns % NS
    return f"{text}.{frac:09d}Z".replace(".000000000Z", "Z") if frac else f"{text}Z"


def parse_instruments(text: str | None) -> int | list[str] | None:
    """None, a count (`50`) or a list of symbols (`SPY,aapl` -> ['SPY', 'AAPL'])."""
    if text is None:
        return None
    text = text.strip()
    if text.isdigit():
        count = int(text)
        if count < 1:
            raise BacktestInputError("--instruments must be at least 1")
        return count
    symbols = [s.strip().upper() for s in text.split(",") if s.strip()]
    if not symbols:
        raise BacktestInputError(f"--instruments {text!r} names no symbol")
    twice = sorted({s for s in symbols if symbols.count(s) > 1})
    if twice:
        raise BacktestInputError(f"--instruments names {', '.join(twice)} twice")
    return symbols


def default_grid(spec: StrategySpec) -> str:
    """Half, the default and twice the default of the first two parameters (within bounds)."""
    items = []
    for p in spec.params.params[:2]:
        values = sorted({min(p.high, max(p.low, p.default * f)) for f in (0.5, 1.0, 2.0)})
        if p.integer:
            values = sorted({float(round(v)) for v in values})
        items.append(f"{p.name}=" + "|".join(f"{v:g}" for v in values))
    return ",".join(items)


def _heat_axes(text: str | None, spec: StrategySpec) -> tuple[str, str] | None:
    if text is None:
        return None
    names = [s.strip() for s in text.split(",")]
    if len(names) != 2 or not all(names):
        raise BacktestInputError(f"--heatmap {text!r}: give two parameters, e.g. fast_s,slow_s")
    check_heat_axes(spec.params.names, names[0], names[1])
    return names[0], names[1]


@dataclass(frozen=True, slots=True)
class Window:
    """The ticks to backtest and where they came from."""

    series: TickSeries
    source: str  # for the summary: "tick store DIR" or "generated (seed 7, 200 ticks/s)"
    start_ns: int
    end_ns: int
    extra: dict[str, Any]


def _window_bounds(
    start: str | None, end: str | None, default: tuple[int, int] | None
) -> tuple[int, int]:
    """[start, end) from the flags, the missing ends taken from `default` (or one hour)."""
    lo = parse_time(start, "--from") if start else None
    hi = parse_time(end, "--to") if end else None
    if default is not None:
        lo = default[0] if lo is None else lo
        hi = default[1] if hi is None else hi
    if lo is None and hi is None:
        lo = parse_time(GENERATED_START, "--from")
    if lo is None:
        assert hi is not None
        lo = hi - GENERATED_SPAN_NS
    if hi is None:
        hi = lo + GENERATED_SPAN_NS
    if hi <= lo:
        raise BacktestInputError(
            f"empty time range: --to ({format_time(hi)}) must be after --from ({format_time(lo)})"
        )
    return lo, hi


def _drop_empty(series: TickSeries, err: Console) -> TickSeries:
    """The series without instruments that have no tick in the window (named on stderr)."""
    counts = series.counts()
    empty = [s for s, c in zip(series.symbols, counts, strict=True) if c == 0]
    if not empty or len(empty) == len(series):
        return series
    err.print(
        f"no ticks in the window for {', '.join(empty[:10])}"
        + (f" (+{len(empty) - 10} more)" if len(empty) > 10 else "")
        + ": left out",
        markup=False,
        highlight=False,
    )
    keep = np.flatnonzero(counts > 0)
    owner = np.repeat(np.arange(len(series)), counts)
    mask = np.isin(owner, keep)
    return TickSeries(
        symbols=tuple(series.symbols[int(k)] for k in keep),
        offsets=np.concatenate([[0], np.cumsum(counts[keep])]).astype(np.int64),
        ts=series.ts[mask],
        price=series.price[mask],
        size=series.size[mask],
        kind=series.kind[mask],
        asset_class=series.asset_class[keep],
    )


def load_generated(
    instruments: int | list[str] | None,
    start: str | None,
    end: str | None,
    tick_rate: float | None,
    seed: int,
) -> Window:
    """The synthetic market over [from, to): the universe's first N, or the named instruments."""
    from tickwise.data.generator import GeneratorConfig, MarketGenerator
    from tickwise.data.universe import build_universe

    universe = build_universe(seed=seed)
    if isinstance(instruments, list):
        missing = [s for s in instruments if s not in universe]
        if missing:
            first = ", ".join(universe.symbols()[:5])
            raise BacktestInputError(
                f"{', '.join(missing)} not in the generated universe (it starts {first}, ...); "
                "give --instruments N for its first N names"
            )
        chosen = [universe.by_symbol(s) for s in instruments]
    else:
        count = GENERATED_INSTRUMENTS if instruments is None else instruments
        if count > len(universe):
            raise BacktestInputError(
                f"--instruments {count}: the generated universe has {len(universe)} instruments"
            )
        chosen = list(universe)[:count]
    registry = InstrumentRegistry(replace(inst, index=i) for i, inst in enumerate(chosen))
    lo, hi = _window_bounds(start, end, None)
    rate = TICKS_PER_INSTRUMENT_S * len(registry) if tick_rate is None else tick_rate
    if not (rate > 0 and math.isfinite(rate)):
        raise BacktestInputError(f"--tick-rate must be a positive number, got {rate:g}")
    expected = rate * (hi - lo) / NS
    if expected > MAX_GENERATED_TICKS:
        raise BacktestInputError(
            f"the generated window would hold about {expected:,.0f} ticks (limit "
            f"{MAX_GENERATED_TICKS:,}): shorten --from/--to or lower --tick-rate"
        )
    gen = MarketGenerator(
        registry, GeneratorConfig(tick_rate=rate, block_ms=GENERATOR_BLOCK_MS), seed=seed
    )
    batch = gen.generate(lo, hi - 1)  # ts_event in (lo, hi - 1]: inside [lo, hi)
    series = TickSeries.from_batch(batch, registry, instruments=range(len(registry)))
    return Window(
        series,
        f"generated market (seed {seed}, {rate:,.0f} ticks/s)",
        lo,
        hi,
        {"source": "generated", "seed": seed, "tick_rate": rate},
    )


def _store_registry(symbols: Sequence[str]) -> InstrumentRegistry:
    """Index <-> symbol for a store read; the asset class (fees, annualising) from the name."""
    return InstrumentRegistry(
        Instrument(
            i, s, AssetClass.CRYPTO if "/" in s else AssetClass.EQUITY, 0.01, 1e-9, 0.0, True
        )
        for i, s in enumerate(symbols)
    )


def load_store(
    store: TickStore,
    instruments: int | list[str] | None,
    start: str | None,
    end: str | None,
) -> Window:
    """The tick store's window [from, to) (default: everything stored for the symbols)."""
    stored = store.symbols()
    hint = f"import ticks with `tickwise data import PATH --ticks-dir {store.root}`"
    if not stored:
        raise BacktestInputError(
            f"the tick store {store.root} is empty: {hint}, or use --source generated"
        )
    if isinstance(instruments, list):
        missing = [s for s in instruments if s not in stored]
        if missing:
            raise BacktestInputError(
                f"the tick store {store.root} has no ticks for {', '.join(missing)}: {hint} "
                f"(it holds {_listing(stored)})"
            )
        symbols = instruments
    else:
        symbols = stored if instruments is None else stored[:instruments]
    spans = [s for s in (store.span(sym) for sym in symbols) if s is not None]
    held = (min(s[0] for s in spans), max(s[1] for s in spans) + 1)
    lo, hi = _window_bounds(start, end, held)
    registry = _store_registry(symbols)
    batch = store.read(symbols, lo, hi, registry)
    if len(batch) == 0:
        raise BacktestInputError(
            f"no ticks for {_listing(symbols)} in [{format_time(lo)}, {format_time(hi)}) "
            f"(the tick store holds them from {format_time(held[0])} to {format_time(held[1])})"
        )
    series = TickSeries.from_batch(batch, registry, instruments=range(len(registry)))
    extra = {"source": "store", "ticks_dir": str(store.root)}
    return Window(series, f"tick store {store.root}", lo, hi, extra)


def _listing(symbols: Sequence[str], n: int = 8) -> str:
    return ", ".join(symbols[:n]) + (f" (+{len(symbols) - n} more)" if len(symbols) > n else "")


def load_window(args: argparse.Namespace, err: Console) -> Window:
    """The ticks the flags ask for, from the store or the generator."""
    from tickwise.config import Config, ticks_dir
    from tickwise.data.tickstore import TickStore

    instruments = parse_instruments(args.instruments)
    source = args.source
    store: TickStore | None = None
    if source != "generated":
        store = TickStore(ticks_dir(Config(), args.ticks_dir))
        if source == "auto":
            source = "store" if store.symbols() else "generated"
            if source == "generated":
                err.print(
                    f"the tick store {store.root} is empty: using the generated market",
                    markup=False,
                    highlight=False,
                )
    if source == "store":
        assert store is not None
        window = load_store(store, instruments, args.start, args.end)
        return replace(window, series=_drop_empty(window.series, err))
    window = load_generated(instruments, args.start, args.end, args.tick_rate, args.seed)
    return replace(window, series=_drop_empty(window.series, err))


# -- the run --------------------------------------------------------------------------------------


@contextmanager
def grid_progress(
    err: Console, n_instruments: int, work: float, label: str
) -> Iterator[Callable[[int], None] | None]:
    """A progress bar over instruments when `work` (ticks x sets) is large, else None."""
    if work < PROGRESS_WORK:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("instruments"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task(label, total=n_instruments)
        yield lambda done: bar.advance(task, done)


def _backtest(args: argparse.Namespace, console: Console) -> int:
    err = Console(stderr=True)
    started = time.perf_counter()
    # everything that can be checked before touching data
    fill = FillModel(
        latency_ms=args.latency_ms,
        spread_bps=args.spread_bps,
        venue=args.venue,
        fee_bps=args.fee_bps,
    )
    bt = GridBacktester(args.strategy, fill, sample_s=args.sample_s, device=args.device)
    if args.objective not in OBJECTIVES:
        raise BacktestInputError(
            f"unknown objective {args.objective!r} (known: {', '.join(sorted(OBJECTIVES))})"
        )
    if not (args.turnover_penalty >= 0 and math.isfinite(args.turnover_penalty)):
        raise BacktestInputError("--turnover-penalty must be a finite number >= 0")
    if args.top < 1 or args.curves < 0:
        raise BacktestInputError("--top must be >= 1 and --curves >= 0")
    sets = bt.param_sets(args.grid or default_grid(bt.spec))
    heat = _heat_axes(args.heatmap, bt.spec)

    window = load_window(args, err)
    series = window.series
    loaded_s = time.perf_counter() - started
    console.print(
        f"{args.strategy}: {_count(sets.shape[0], 'set')} x {_count(len(series), 'instrument')}, "
        f"{series.n_ticks:,} ticks from {window.source}, "
        f"[{format_time(window.start_ns)}, {format_time(window.end_ns)}), "
        f"loaded in {loaded_s:.1f} s; device {bt.device}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    work = float(series.n_ticks) * sets.shape[0]
    with grid_progress(err, len(series), work, f"{args.strategy} grid") as progress:
        result = bt.run(series, sets, args.objective, args.turnover_penalty, progress=progress)
    result.extra.update(
        {
            **window.extra,
            "from": format_time(window.start_ns),
            "to": format_time(window.end_ns),
        }
    )
    # a pipe or a file has no width: print the table whole rather than folded to 80 columns
    wide = console if console.is_terminal else Console(file=console.file, width=160)
    wide.print(top_table(result, args.top))
    console.print(
        f"{result.backtests:,} backtests ({_count(result.n_sets, 'set')} x "
        f"{_count(len(result.symbols), 'instrument')}) over {result.ticks:,} ticks on "
        f"{result.device} in {result.elapsed_s:.2f} s: {result.tick_sets_per_s:.3g} ticks x sets/s",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    _write_outputs(args, bt, series, result, heat, console)
    return 0


def _write_outputs(
    args: argparse.Namespace,
    bt: GridBacktester,
    series: TickSeries,
    result: GridResult,
    heat: tuple[str, str] | None,
    console: Console,
) -> None:
    written: list[Path] = []
    if args.out:
        path = _target(args.out)
        result.write_parquet(path)
        written.append(path)
    if args.json:
        path = _target(args.json)
        result.write_json(path, top=max(50, args.top))
        written.append(path)
    if args.report or args.png_dir:
        recordings: list[Recording] = [
            bt.record(series, k, result.params[j]) for k, j in best_pairs(result, args.curves)
        ]
        heat_x, heat_y = heat or default_heat_axes(result)
        written += write_report(
            result,
            recordings,
            _target(args.report) if args.report else None,
            heat_x,
            heat_y,
            Path(args.png_dir) if args.png_dir else None,
            top=max(20, args.top),
        )
    for path in written:
        console.print(f"wrote {path}", markup=False, highlight=False, soft_wrap=True)


def _target(text: str) -> Path:
    path = Path(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def top_table(result: GridResult, n: int) -> Table:
    """The `n` best (instrument, set) rows as a rich table (the fixed parameters in the title)."""
    params = varying_params(result) or list(result.param_names)
    fixed = [
        f"{name}={result.params[0, i]:g}"
        for i, name in enumerate(result.param_names)
        if name not in params
    ]
    title = (
        f"top {min(n, result.backtests)} of {result.backtests:,} backtests by {result.objective}"
    )
    table = Table(title=title, caption=f"fixed: {', '.join(fixed)}" if fixed else None)
    table.add_column("#", justify="right")
    table.add_column("symbol")
    for name in params:
        table.add_column(name, justify="right")
    for name in ("score", "return", "sharpe", "max dd", "trades", "turnover", "hit rate"):
        table.add_column(name, justify="right")
    for rank, row in enumerate(result.top(n), 1):
        table.add_row(
            str(rank),
            row["symbol"],
            *(f"{row[p]:g}" for p in params),
            _num(row["score"]),
            _pct(row["total_return"]),
            _num(row["sharpe"]),
            _pct(row["max_drawdown"]),
            f"{row['trades']:,.0f}",
            _num(row["turnover"]),
            _pct(row["hit_rate"]),
        )
    return table


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _num(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else "-"


def _pct(value: float) -> str:
    return f"{100.0 * value:.2f}%" if math.isfinite(value) else "-"
