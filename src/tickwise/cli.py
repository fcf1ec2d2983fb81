"""`tickwise ...`: the command line.

tickwise run [--config F] [--tier tiny|dev] [--duration S] [--instruments N] [--clients N]
             [--tick-rate R] [--store URL] [--address A] [--summary-json F] [--no-panel]
             [--dashboard-port P | --no-dashboard] [--keep-dashboard]
tickwise dashboard [--engine URL] [--store URL] [--host H] [--port P]
tickwise bench --tier tiny|dev|seed [--venues inproc|http] [--out results.json] [--duration S]
tickwise clients seed --count N [--store URL] [--tier T]
tickwise data import PATH... [--format auto|lean|binance|csv|parquet] [--ticks-dir DIR]
tickwise data ls [--ticks-dir DIR]
tickwise data compact [--date YYYY-MM-DD] [--symbol SYM] [--ticks-dir DIR]
tickwise backtest --strategy S [--instruments SPY,AAPL|N] [--from ISO --to ISO] [--grid G]
                  [--report out.html] [--png-dir DIR] [--out rows.parquet] [--json top.json] ...
tickwise params history --instrument SYM [--limit N] [--run RUN_ID] [--store URL]
tickwise params show [--strategy S] [--store URL]
tickwise halt [--portfolio N | --client N] --reason TEXT [--cancel-open] [--store URL]
tickwise resume [--portfolio N | --client N] [--reason TEXT] [--store URL]
tickwise halts [--history N] [--store URL]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from tickwise import __version__
from tickwise.config import Config, ConfigError, load, redact_url, scale_instruments
from tickwise.errors import one_line

if TYPE_CHECKING:
    from tickwise.data.tickstore import TickStore


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tickwise", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"tickwise {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the live engine (generated market, simulated venues)")
    _common(run)
    run.add_argument("--duration", type=float, help="seconds to run (default: the tier's)")
    run.add_argument(
        "--instruments", type=int, help="instruments (stocks/crypto kept in proportion)"
    )
    run.add_argument("--clients", type=int, help="client accounts")
    run.add_argument("--tick-rate", type=float, help="ticks per second, all instruments together")
    run.add_argument("--address", help="Ray cluster address (default: local Ray in this process)")
    run.add_argument(
        "--venues",
        choices=["inproc", "http", "live"],
        help="in-process simulated venues (default), simulator servers over HTTP/WebSocket, "
        "or the real venues (see docs/venues.md)",
    )
    run.add_argument("--summary-json", help="write the run summary as JSON to this file")
    run.add_argument("--no-panel", action="store_true", help="no live panel, plain log lines")
    run.add_argument("--dashboard-port", type=int, help="dashboard port (0: any free port)")
    run.add_argument("--no-dashboard", action="store_true", help="serve no dashboard")
    run.add_argument(
        "--keep-dashboard",
        action="store_true",
        help="after the run, keep serving the dashboard until Ctrl-C",
    )
    dash = sub.add_parser(
        "dashboard", help="serve the dashboard over a store, or attached to a running engine"
    )
    _common(dash)
    dash.add_argument(
        "--engine",
        help="a running engine's dashboard URL (its token in $TICKWISE_ENGINE_TOKEN)",
    )
    dash.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    dash.add_argument("--port", type=int, help="port (default [dashboard] port)")

    from tickwise.engine.bench_cli import add_bench_parser

    add_bench_parser(sub, _common)
    clients = sub.add_parser("clients", help="client accounts in the store")
    csub = clients.add_subparsers(dest="clients_command", required=True)
    seed = csub.add_parser("seed", help="write clients, accounts, portfolios and subscriptions")
    _common(seed)
    seed.add_argument("--count", type=int, default=None, help="how many clients (default 30000)")
    seed.add_argument("--seed", type=int, default=None, help="random seed")
    _data_parser(sub)
    from tickwise.backtest.cli import add_backtest_parser

    add_backtest_parser(sub)
    from tickwise.tuning.cli import add_params_parser

    add_params_parser(sub)
    from tickwise.venues.sim.server.serve import add_venue_sim_parser

    add_venue_sim_parser(sub)
    from tickwise.venues.credentials_cli import add_credentials_parser

    add_credentials_parser(sub)
    from tickwise.engine.halt_cli import add_halt_parsers

    add_halt_parsers(sub)
    return parser


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML config file (see docs/configuration.md)")
    p.add_argument("--tier", choices=["tiny", "dev", "seed"], help="workload tier preset")
    p.add_argument("--store", help="store URL, e.g. sqlite:///var/tickwise.sqlite")


def build_config(args: argparse.Namespace) -> Config:
    overrides: dict[str, dict[str, Any]] = {
        "run": {"duration_s": getattr(args, "duration", None)},
        "market": {"tick_rate": getattr(args, "tick_rate", None)},
        "clients": {"count": getattr(args, "clients", None) or getattr(args, "count", None)},
        "engine": {"address": getattr(args, "address", None)},
        "venues": {"mode": getattr(args, "venues", None)},
        "store": {"url": args.store},
    }
    if getattr(args, "seed", None) is not None:
        overrides["clients"]["seed"] = args.seed
    cleaned = {s: {k: v for k, v in kv.items() if v is not None} for s, kv in overrides.items()}
    config = load(args.config, tier=args.tier, overrides=cleaned)
    if getattr(args, "instruments", None) is not None:
        config = scale_instruments(config, args.instruments)
    if getattr(args, "summary_json", None):
        config = replace(config, run=replace(config.run, summary_json=args.summary_json))
    if getattr(args, "no_panel", False):
        config = replace(config, run=replace(config.run, live_panel=False))
    dashboard = config.dashboard
    if getattr(args, "no_dashboard", False):
        dashboard = replace(dashboard, enabled=False)
    port = getattr(args, "dashboard_port", None)
    if getattr(args, "port", None) is not None:
        port = args.port
    if port is not None:
        if not 0 <= port <= 65535:
            raise ConfigError(f"dashboard port {port} is out of range [0, 65535]")
        dashboard = replace(dashboard, port=port)
    if getattr(args, "host", None):
        dashboard = replace(dashboard, host=args.host)
    return replace(config, dashboard=dashboard)


def cmd_run(config: Config, console: Console, keep_dashboard: bool = False) -> int:
    from tickwise.engine.controller import Engine, write_summary
    from tickwise.engine.panel import LivePanel

    console.print(
        f"tickwise {__version__}: tier {config.run.tier}, {config.instruments:,} instruments, "
        f"{config.clients.count:,} clients, {config.market.tick_rate:,.0f} ticks/s, "
        f"{config.run.duration_s:g} s, store {redact_url(config.store.url)}",
        highlight=False,
    )
    panel = LivePanel(Console(stderr=True), interactive=None if config.run.live_panel else False)
    engine = Engine(config, panel)
    server = None
    try:
        console.print("starting Ray and the actors...", highlight=False)
        engine.start()
        if config.dashboard.enabled:
            from tickwise.web.dashboard import announce, serve

            try:
                server, token, generated = serve(config, engine.live)
            except RuntimeError as exc:  # the run goes on: the dashboard is for watching it
                console.print(f"[yellow]no dashboard: {one_line(exc)}[/yellow]")
            else:
                console.print(
                    announce(server.url, token, generated),
                    highlight=False,
                    markup=False,
                    soft_wrap=True,
                )
        with panel:
            summary = engine.run()
    finally:
        engine.shutdown()
        if server is not None and not keep_dashboard:
            server.stop()
    console.print(summary_table(summary))
    if config.run.summary_json:
        write_summary(summary, config.run.summary_json)
        console.print(f"summary written to {config.run.summary_json}", highlight=False)
    ok = bool(summary["invariants"]["ok"])
    if not ok:
        console.print("[red]run invariants violated: see the summary[/red]")
    if server is not None and keep_dashboard:
        from tickwise.web.dashboard import wait_forever

        console.print("the dashboard stays up (the store's view of the run): Ctrl-C to stop")
        try:
            wait_forever()
        except KeyboardInterrupt:
            server.stop()
    return 0 if ok else 2


def cmd_dashboard(config: Config, engine_url: str | None, console: Console) -> int:
    """Serve the dashboard until Ctrl-C: attached to an engine, or over the store alone."""
    from tickwise.web.dashboard import announce, attach, dashboard_token, serve, wait_forever

    if engine_url:
        token, generated = dashboard_token(config)
        server = attach(engine_url, config.dashboard.host, config.dashboard.port, token)
    else:
        server, token, generated = serve(config, None)
    console.print(
        announce(server.url, token, generated), highlight=False, markup=False, soft_wrap=True
    )
    try:
        wait_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def summary_table(summary: dict[str, Any]) -> Table:
    table = Table(title=f"tickwise run summary ({summary['tier']}, {summary['duration_s']} s)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    t, o, r = summary["ticks"], summary["orders"], summary["reconciliation"]
    rows = [
        ("instruments / clients", f"{summary['instruments']:,} / {summary['clients']:,}"),
        ("ticks received / processed", f"{t['received']:,} / {t['processed']:,}"),
        ("ticks rejected (counted)", f"{t['rejected']:,}"),
        ("ticks per second", f"{t['per_s']:,.0f}"),
        ("signals", f"{summary['signals']:,}"),
        ("orders journaled / sent", f"{o['journaled']:,} / {o['sent']:,}"),
        (
            "orders acked / filled / rejected",
            f"{o['acked']:,} / {o['filled']:,} / {o['rejected']:,}",
        ),
        ("duplicate client order ids", f"{o['duplicate_client_order_ids']}"),
        (
            "clients reconciled / mismatches",
            f"{r['clients_checked']:,} / {r['position_mismatches']}"
            if not r["venue_books_unread"]
            else f"not checked: {len(r['venue_books_unread'])} venue books unread",
        ),
    ]
    for name, value in rows:
        table.add_row(name, value)
    for stage, lat in summary["latency_ms"].items():
        table.add_row(
            f"latency {stage} p50/p99/max ms", f"{lat['p50']} / {lat['p99']} / {lat['max']}"
        )
    return table


def cmd_clients_seed(config: Config, console: Console) -> int:
    from tickwise.data.universe import build_universe
    from tickwise.store import open_store
    from tickwise.store.seeding import seed_clients

    registry = build_universe(config.market.stocks, config.market.crypto, seed=config.run.seed)
    store = open_store(config.store.url)
    try:
        store.save_instruments(registry)
        seed_clients(store, registry, config.clients.count, config.clients.seed)
        console.print(
            f"seeded {store.client_count():,} clients over {len(registry):,} instruments "
            f"into {redact_url(config.store.url)}",
            highlight=False,
        )
    finally:
        store.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console()
    if args.command == "data":
        return cmd_data(args, console)
    if args.command == "backtest":
        from tickwise.backtest.cli import cmd_backtest

        return cmd_backtest(args, console)
    if args.command == "params":
        from tickwise.tuning.cli import cmd_params

        return cmd_params(args, console)
    if args.command == "credentials":
        from tickwise.venues.credentials import CredentialError
        from tickwise.venues.credentials_cli import cmd_credentials

        try:
            return cmd_credentials(args, console)
        except CredentialError as exc:
            print(f"tickwise credentials: {one_line(exc)}", file=sys.stderr)
            return 2
    if args.command in ("halt", "resume", "halts"):
        from tickwise.engine.halt_cli import cmd_halt

        return cmd_halt(args, console)
    if args.command == "venue-sim":
        from tickwise.venues.sim.faults import FaultPlanError
        from tickwise.venues.sim.server.serve import cmd_venue_sim

        try:
            return cmd_venue_sim(args)
        except FaultPlanError as exc:
            print(f"tickwise venue-sim: {one_line(exc)}", file=sys.stderr)
            return 2
    try:
        config = build_config(args)
    except ConfigError as exc:
        print(f"tickwise: config error: {exc}", file=sys.stderr)
        return 2
    if args.command == "run":
        return cmd_run(config, console, keep_dashboard=args.keep_dashboard)
    if args.command == "bench":
        from tickwise.engine.bench_cli import cmd_bench

        return cmd_bench(config, args, console)
    if args.command == "dashboard":
        try:
            return cmd_dashboard(config, args.engine, console)
        except RuntimeError as exc:
            print(f"tickwise dashboard: {one_line(exc)}", file=sys.stderr)
            return 2
    if args.command == "clients" and args.clients_command == "seed":
        return cmd_clients_seed(config, console)
    raise AssertionError(f"unhandled command {args.command}")  # pragma: no cover


# -- tickwise data: the tick store ----------------------------------------------------------


def _data_parser(sub: Any) -> None:
    from tickwise.data.importer import FORMATS

    data = sub.add_parser("data", help="the tick store: import, list and compact ticks")
    dsub = data.add_subparsers(dest="data_command", required=True)
    imp = dsub.add_parser("import", help="import LEAN, Binance, CSV or Parquet files")
    imp.add_argument("paths", nargs="+", metavar="PATH", help="files or folders")
    imp.add_argument("--format", choices=FORMATS, default="auto", help="default: from names")
    ls = dsub.add_parser("ls", help="symbols, dates and rows in the tick store")
    compact = dsub.add_parser("compact", help="merge each partition's part files into one")
    compact.add_argument("--date", help="only this UTC date (YYYY-MM-DD)")
    compact.add_argument("--symbol", help="only this symbol")
    for p in (imp, ls, compact):
        p.add_argument("--ticks-dir", help="tick store folder (default: see [ticks] dir)")
        p.add_argument("--config", help="TOML config file whose [ticks] dir to use")


def cmd_data(args: argparse.Namespace, console: Console) -> int:
    """`tickwise data ...`: every error is one line on stderr and exit status 2."""
    from tickwise.data.importer import TickImportError
    from tickwise.data.tickstore import TickStoreError

    try:
        config = load(args.config) if args.config else Config()
        store = _tick_store(config, args.ticks_dir)
        if args.data_command == "import":
            return cmd_data_import(store, args.paths, args.format, console)
        if args.data_command == "ls":
            return cmd_data_ls(store, console)
        if args.data_command == "compact":
            return cmd_data_compact(store, args.date, args.symbol, console)
    except (ConfigError, TickImportError, TickStoreError, OSError) as exc:
        print(f"tickwise data {args.data_command}: {one_line(exc)}", file=sys.stderr)
        return 2
    raise AssertionError(f"unhandled data command {args.data_command}")  # pragma: no cover


def _tick_store(config: Config, explicit: str | None) -> TickStore:
    from tickwise.config import ticks_dir
    from tickwise.data.tickstore import TickStore

    return TickStore(ticks_dir(config, explicit))


def cmd_data_import(store: TickStore, paths: Sequence[str], fmt: str, console: Console) -> int:
    from tickwise.data.importer import import_paths

    report = import_paths(paths, store, fmt)
    dates = sorted(report.dates)
    span = f"{dates[0]} .. {dates[-1]}" if dates else "none"
    symbols = sorted(report.symbols)
    shown = ", ".join(symbols[:12]) + (f" (+{len(symbols) - 12} more)" if len(symbols) > 12 else "")
    lines = [
        f"imported into {store.root}: {report.files:,} files, {report.rows_read:,} rows read, "
        f"{report.imported:,} imported, {report.already_stored:,} already stored, "
        f"{report.rejected_total:,} rejected",
        f"symbols: {len(symbols)} ({shown or 'none'}); dates: {len(dates)} ({span})",
    ]
    if report.rejected:
        reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(report.rejected.items()) if v)
        lines.append(f"rejected by reason: {reasons}")
    for path, why in report.skipped_files[:10]:
        lines.append(f"skipped {path}: {why}")
    if len(report.skipped_files) > 10:
        lines.append(f"... and {len(report.skipped_files) - 10} more files skipped")
    for line in lines:
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    return 0


def cmd_data_ls(store: TickStore, console: Console) -> int:
    rows = store.summary()
    if not rows:
        console.print(f"no ticks in {store.root}", highlight=False, markup=False, soft_wrap=True)
        return 0
    table = Table(title=f"tick store {store.root}")
    for name in ("symbol", "first date", "last date"):
        table.add_column(name)
    for name in ("dates", "files", "rows"):
        table.add_column(name, justify="right")
    for r in rows:
        table.add_row(
            r.symbol,
            str(r.first_date),
            str(r.last_date),
            f"{r.dates:,}",
            f"{r.files:,}",
            f"{r.rows:,}",
        )
    total = sum(r.rows for r in rows)
    table.add_row("total", "", "", "", f"{sum(r.files for r in rows):,}", f"{total:,}")
    console.print(table)
    return 0


def cmd_data_compact(
    store: TickStore, date: str | None, symbol: str | None, console: Console
) -> int:
    import datetime as dt

    from tickwise.data.tickstore import TickStoreError

    try:
        day = dt.date.fromisoformat(date) if date else None
    except ValueError:
        raise TickStoreError(f"--date {date!r} is not a date (YYYY-MM-DD)") from None
    report = store.compact(day, symbol)
    console.print(
        f"compacted {report.partitions:,} partitions of {store.root}: "
        f"{report.files_before:,} files -> {report.files_after:,}, {report.rows:,} rows",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
