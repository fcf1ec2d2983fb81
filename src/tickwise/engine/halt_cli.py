"""`tickwise halt`, `tickwise resume`, `tickwise halts`: the kill switch from a shell.

tickwise halt   [--portfolio N | --client N] --reason TEXT [--cancel-open] [--store URL]
tickwise resume [--portfolio N | --client N] [--reason TEXT] [--store URL]
tickwise halts  [--history N] [--store URL]

Without --portfolio or --client the scope is global. A running engine applies a halt from its
next batch of signals (see engine.halts); the halt stays in force across restarts until resumed.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from tickwise.config import ConfigError, load
from tickwise.errors import one_line
from tickwise.store.base import HALT_GLOBAL, Store


def add_halt_parsers(sub: Any) -> None:
    h = sub.add_parser("halt", help="kill switch: stop new orders (global, a portfolio, a client)")
    r = sub.add_parser("resume", help="lift a halt: let orders flow again in its scope")
    ls = sub.add_parser("halts", help="the halts in force, or the halt audit trail")
    for p in (h, r):
        scope = p.add_mutually_exclusive_group()
        scope.add_argument("--portfolio", type=int, metavar="N", help="only this portfolio")
        scope.add_argument("--client", type=int, metavar="N", help="only this client")
    h.add_argument("--reason", required=True, help="why (kept in the audit trail)")
    h.add_argument(
        "--cancel-open", action="store_true", help="also cancel orders still open at the venues"
    )
    r.add_argument("--reason", default="", help="why (kept in the audit trail)")
    ls.add_argument(
        "--history", type=int, metavar="N", help="the last N halt and resume events instead"
    )
    for p in (h, r, ls):
        p.add_argument("--store", help="store URL (default: the config's [store] url)")
        p.add_argument("--config", help="TOML config file whose [store] url to use")


def _scope(args: argparse.Namespace) -> str:
    if args.portfolio is not None:
        return f"portfolio:{args.portfolio}"
    if args.client is not None:
        return f"client:{args.client}"
    return HALT_GLOBAL


def cmd_halt(args: argparse.Namespace, console: Console) -> int:
    """Every error is one line on stderr and exit status 2."""
    from tickwise.tuning.cli import _existing_store

    try:
        overrides = {"store": {"url": args.store}} if args.store else None
        url = load(args.config, overrides=overrides).store.url
        store = _existing_store(url)
    except (ConfigError, ValueError, OSError) as exc:
        print(f"tickwise {args.command}: {one_line(exc)}", file=sys.stderr)
        return 2
    try:
        return _dispatch(args, store, console)
    except ValueError as exc:
        print(f"tickwise {args.command}: {one_line(exc)}", file=sys.stderr)
        return 2
    finally:
        store.close()


def _dispatch(args: argparse.Namespace, store: Store, console: Console) -> int:
    """Through the query facade, as the dashboard does."""
    from tickwise.web.queries import Queries, QueryError

    who = f"cli:{_user()}"
    queries = Queries(store)
    try:
        if args.command == "halt":
            scope = _scope(args)
            done = queries.halt(scope, args.reason, args.cancel_open, who)
            console.print(f"halted {scope} (generation {done['generation']})", markup=False)
            return 0
        if args.command == "resume":
            scope = _scope(args)
            done = queries.resume(scope, args.reason, who)
            if not done["resumed"]:
                console.print(f"{scope} was not halted; recorded the resume anyway", markup=False)
            console.print(f"resumed {scope} (generation {done['generation']})", markup=False)
            return 0
    except QueryError as exc:
        raise ValueError(str(exc)) from exc
    rows = store.halt_history(args.history) if args.history else store.active_halts()
    if not rows:
        console.print("no halt in force" if not args.history else "no halt recorded")
        return 0
    title = f"last {len(rows)} halt events" if args.history else f"{len(rows)} halts in force"
    table = Table(title=title)
    for name in ("time (UTC)", "scope", "action", "cancel open", "by", "reason"):
        table.add_column(name)
    for row in rows:
        table.add_row(
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(row.ts_ns / 1e9)),
            row.scope,
            row.action,
            "yes" if row.cancel_open else "",
            row.actor,
            row.reason,
        )
    console.print(table)
    return 0


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
