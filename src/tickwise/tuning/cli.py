"""`tickwise params ...`: the re-tuning audit trail from the store.

tickwise params history --instrument SYM [--limit N] [--run RUN_ID] [--store URL]
tickwise params show [--strategy S] [--store URL]
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tickwise.config import ConfigError, load
from tickwise.errors import one_line

if TYPE_CHECKING:
    from tickwise.store import Store


def add_params_parser(sub: Any) -> None:
    params = sub.add_parser("params", help="re-tuned parameters: history and what is live")
    psub = params.add_subparsers(dest="params_command", required=True)
    history = psub.add_parser("history", help="an instrument's re-tunes, newest first")
    history.add_argument("--instrument", required=True, metavar="SYM", help="symbol, e.g. SPY")
    history.add_argument(
        "--limit", type=_positive_int, default=20, help="how many re-tunes (default 20)"
    )
    history.add_argument("--run", metavar="RUN_ID", help="only the re-tunes of this run")
    show = psub.add_parser("show", help="the live parameters of every re-tuned instrument")
    show.add_argument("--strategy", help="only instruments re-tuned with this strategy")
    for p in (history, show):
        p.add_argument("--store", help="store URL (default: the config's [store] url)")
        p.add_argument("--config", help="TOML config file whose [store] url to use")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def cmd_params(args: argparse.Namespace, console: Console, now_ns: int | None = None) -> int:
    """`tickwise params ...`: every error is one line on stderr and exit status 2."""
    import sqlite3
    import time

    from tickwise.store import StoreError

    now = time.time_ns() if now_ns is None else now_ns
    url = "?"
    try:
        overrides = {"store": {"url": args.store}} if args.store else None
        url = load(args.config, overrides=overrides).store.url
        store = _existing_store(url)
        try:
            if args.params_command == "history":
                return cmd_params_history(store, args.instrument, args.limit, args.run, console)
            if args.params_command == "show":
                return cmd_params_show(store, args.strategy, now, console)
        finally:
            store.close()
    except ConfigError as exc:
        print(f"tickwise params {args.params_command}: {one_line(exc)}", file=sys.stderr)
        return 2
    except (ValueError, OSError, sqlite3.Error, StoreError, NotImplementedError) as exc:
        message = f"store {url}: {one_line(exc)}"
        print(f"tickwise params {args.params_command}: {message}", file=sys.stderr)
        return 2
    raise AssertionError(f"unhandled params command {args.params_command}")  # pragma: no cover


def _existing_store(url: str) -> Store:
    """Open the store at `url` for reading: a SQLite file that does not exist is an error here
    (a mistyped path would otherwise create an empty store and report nothing recorded)."""
    from pathlib import Path

    from tickwise.store import open_store

    path = url.removeprefix("sqlite:///")
    if path and "://" not in path and path != ":memory:" and not Path(path).is_file():
        raise FileNotFoundError("no such file")
    return open_store(url)


def cmd_params_history(
    store: Store, symbol: str, limit: int, run_id: str | None, console: Console
) -> int:
    rows = store.retune_history(symbol, limit, run_id)
    if not rows and symbol.upper() != symbol:
        symbol = symbol.upper()
        rows = store.retune_history(symbol, limit, run_id)
    if not rows:
        where = f" in run {run_id}" if run_id else ""
        console.print(f"no re-tunes recorded for {symbol}{where}", markup=False, highlight=False)
        return 0
    strategies = ", ".join(sorted({r.strategy for r in rows}))
    table = Table(title=f"re-tunes of {symbol} ({strategies}), newest first: {len(rows)}")
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("decision", no_wrap=True)
    for name in ("live score", "winner score", "train trades"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("parameters (live -> winner)")
    table.add_column("reason")
    for r in rows:
        table.add_row(
            _utc(r.ts_ns),
            Text(r.decision, style=_DECISION_STYLE.get(r.decision, "")),
            _score(r.live_score),
            _score(r.winner_score),
            f"{r.winner_trades:,}",
            Text(param_change(r.param_names, r.live_params, r.winner_params)),
            Text(r.reason),
        )
    console.print(table)
    return 0


def cmd_params_show(store: Store, strategy: str | None, now_ns: int, console: Console) -> int:
    current = store.current_params(strategy)
    if not current:
        of = f" for strategy {strategy}" if strategy else ""
        console.print(f"no re-tunes recorded yet{of}", markup=False, highlight=False)
        return 0
    table = Table(title=f"live parameters of {len(current)} re-tuned instruments")
    for name in ("symbol", "strategy", "parameters"):
        table.add_column(name)
    for name in ("swapped", "last re-tune", "last score", "re-tunes"):
        table.add_column(name, justify="right")
    for symbol in sorted(current):
        c = current[symbol]
        swapped = (
            "never" if c.swapped_at_ns is None else f"{format_age(now_ns - c.swapped_at_ns)} ago"
        )
        table.add_row(
            Text(symbol),
            Text(c.strategy),
            Text(param_change(c.param_names, c.values, ())),
            swapped,
            f"{format_age(now_ns - c.last_retune_ns)} ago ({c.last_decision})",
            _score(c.last_score),
            f"{c.retunes:,}",
        )
    console.print(table)
    return 0


_DECISION_STYLE = {"swap": "green", "keep": "", "failed": "red"}


def format_age(ns: int) -> str:
    """A duration in nanoseconds for people: 45s, 3m12s, 2h05m, 1d03h (negative reads 0s)."""
    seconds = max(0, ns) // 1_000_000_000
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def param_change(names: Sequence[str], live: Sequence[float], winner: Sequence[float]) -> str:
    """`fast_s=5->10 slow_s=60`: each parameter's live value, and the winner's where it differs
    (either side may be unknown: empty)."""
    parts = []
    for i, name in enumerate(names):
        old = _param(live[i]) if live else "?"
        new = _param(winner[i]) if winner else old
        parts.append(f"{name}={old}" if new == old else f"{name}={old}->{new}")
    return " ".join(parts)


def _param(value: float) -> str:
    return f"{value:g}"


def _score(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4g}"


def _utc(ns: int) -> str:
    import datetime as dt

    moment = dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")
