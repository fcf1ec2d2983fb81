"""`tickwise venue-sim`: one venue's simulator server, standalone, until Ctrl-C.

    tickwise venue-sim --venue binance --port 9002 --delay-ms 8 --faults "unknown=0.01"

Accounts come from a tickwise store (`--store`: the clients at this venue, with their cash, the
same accounts `tickwise run` trades) or are made up (`--clients N`: ids 1..N with `--cash` each).
Keys are the simulator's derived ones (`credentials.demo_credential`): key ids are printed,
secrets never. The market is the calibrated generator at `--tick-rate` ticks/s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import signal
import sys
from dataclasses import dataclass
from typing import TextIO

import numpy as np
import numpy.typing as npt

from tickwise.data.universe import build_universe
from tickwise.model.instruments import InstrumentRegistry, Venue
from tickwise.venues.sim.faults import FaultInjector, FaultPlan
from tickwise.venues.sim.server.common import AppFactory, SimServer, make_context

_APP_MODULES = {
    Venue.ALPACA: "tickwise.venues.sim.server.alpaca",
    Venue.BINANCE: "tickwise.venues.sim.server.binance",
    Venue.ETRADE: "tickwise.venues.sim.server.etrade",
}


def app_factory(venue: Venue) -> AppFactory:
    """The `build_app` of a venue's protocol server."""
    module = importlib.import_module(_APP_MODULES[venue])
    factory: AppFactory = module.build_app
    return factory


@dataclass(frozen=True)
class ServerSpec:
    """What one simulator server is built from (picklable: it crosses to a Ray actor)."""

    venue: Venue
    registry: InstrumentRegistry
    clients: npt.NDArray[np.int32]
    cash: npt.NDArray[np.float64]
    ack_delay_ms: float | None = None
    network_delay_ms: float = 0.0
    faults: str = ""
    stall_s: float = 15.0
    rate_limits: bool = True
    tick_rate: float | None = None
    seed: int = 7
    host: str = "127.0.0.1"
    port: int = 0

    def build(self) -> SimServer:
        plan = FaultPlan.parse(self.faults, self.stall_s)
        context = make_context(
            self.venue,
            self.registry,
            self.clients,
            self.cash,
            ack_delay_ms=self.ack_delay_ms,
            network_delay_ms=self.network_delay_ms,
            faults=FaultInjector(plan, self.seed),
            rate_limits=self.rate_limits,
            seed=self.seed,
        )
        return SimServer(
            context,
            app_factory(self.venue),
            host=self.host,
            port=self.port,
            tick_rate=self.tick_rate,
            seed=self.seed,
        )


def add_venue_sim_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "venue-sim", help="serve one venue's protocol (REST + WebSocket) from the simulator"
    )
    p.add_argument("--venue", required=True, choices=[v.label for v in Venue])
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one, printed)")
    p.add_argument(
        "--delay-ms", type=float, default=None, help="matching delay (default: the venue's)"
    )
    p.add_argument("--network-delay-ms", type=float, default=0.0, help="added before answers")
    p.add_argument(
        "--faults",
        default="",
        help='e.g. "5xx=0.01,unknown=0.02,timeout=0.005,drop=0.005,'
        '429=0.01,disconnect=0.01" (see docs/venues.md)',
    )
    p.add_argument("--stall-s", type=float, default=15.0, help="how long a 'timeout' holds")
    p.add_argument("--no-rate-limits", action="store_true", help="do not apply request limits")
    p.add_argument("--store", help="take the accounts at this venue from a tickwise store")
    p.add_argument("--clients", type=int, default=100, help="made-up accounts 1..N (no --store)")
    p.add_argument("--cash", type=float, default=100_000.0, help="cash per made-up account")
    p.add_argument("--stocks", type=int, default=1000, help="stocks in the generated universe")
    p.add_argument("--crypto", type=int, default=150, help="crypto pairs in the universe")
    p.add_argument("--tick-rate", type=float, default=2_000.0, help="generated ticks per second")
    p.add_argument("--seed", type=int, default=7, help="universe, market and fault seed")


def spec_from_args(args: argparse.Namespace) -> ServerSpec:
    venue = Venue.parse(args.venue)
    registry = build_universe(args.stocks, args.crypto, seed=args.seed)
    if args.store:
        from tickwise.store import open_store

        store = open_store(args.store)
        try:
            book = store.load_client_book()
        finally:
            store.close()
        mine = book.venue == venue
        clients, cash = book.client_id[mine], book.equity[mine]
    else:
        if args.clients < 1:
            raise SystemExit("venue-sim: --clients must be >= 1")
        clients = np.arange(1, args.clients + 1, dtype=np.int32)
        cash = np.full(clients.size, float(args.cash))
    return ServerSpec(
        venue=venue,
        registry=registry,
        clients=clients.astype(np.int32),
        cash=cash.astype(np.float64),
        ack_delay_ms=args.delay_ms,
        network_delay_ms=args.network_delay_ms,
        faults=args.faults,
        stall_s=args.stall_s,
        rate_limits=not args.no_rate_limits,
        tick_rate=args.tick_rate,
        seed=args.seed,
        host=args.host,
        port=args.port,
    )


async def _serve(spec: ServerSpec, out: TextIO = sys.stdout) -> None:
    server = spec.build()
    await server.start()
    ctx = server.context
    ids = ctx.accounts.clients
    print(
        f"{spec.venue.label} simulator on {server.url} (WebSocket {server.ws_url}): "
        f"{ids.size:,} accounts, {len(spec.registry):,} instruments, "
        f"faults {FaultPlan.parse(spec.faults).describe()}",
        file=out,
        flush=True,
    )
    if ids.size:
        print(
            f"  e.g. client {int(ids[0])}: key id {ctx.accounts.credential(int(ids[0])).key_id}",
            file=out,
            flush=True,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
        injected = dict(ctx.faults.injected)
        print(
            f"stopped: {ctx.exchange.orders_received:,} orders received, faults {injected}",
            file=out,
        )


def cmd_venue_sim(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    asyncio.run(_serve(spec))
    return 0
