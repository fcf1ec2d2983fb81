"""What the composition root wires together: the world of one run, and the stage factories.

Actors receive *factories* (module-level functions bound with `functools.partial`) rather than
built objects, so each stage is constructed inside its own worker process and nothing that
can't cross a process boundary (a database connection, compiled kernels) is ever pickled.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

from tickwise.config import Config, ConfigError
from tickwise.data.generator import GeneratorConfig, MarketGenerator
from tickwise.data.universe import build_universe
from tickwise.data.validation import TickValidator
from tickwise.execution.allocator import Allocator, AllocatorConfig
from tickwise.execution.journal import Journal
from tickwise.execution.reconciliation import reconcile_positions
from tickwise.execution.throttle import VenueThrottle
from tickwise.ledger.ledger import Ledger
from tickwise.model.clients import ClientBook, Portfolio
from tickwise.model.instruments import AssetClass, InstrumentRegistry, Venue
from tickwise.model.orders import ExecutionBatch, OrderBatch
from tickwise.store import open_store
from tickwise.store.base import Store
from tickwise.store.seeding import CORE_PREFIX, seed_clients
from tickwise.strategy import get_strategy
from tickwise.strategy.shard import StrategyShard
from tickwise.tuning.tuner import Tuner, TunerConfig
from tickwise.tuning.walkforward import WalkForwardConfig
from tickwise.venues.connect import (
    LIVE_ENDPOINTS,
    VenueEndpoint,
    connect_venue,
    simulator_endpoint,
)
from tickwise.venues.credentials import CredentialVault, MasterKey, seed_demo_credentials
from tickwise.venues.sim import SimVenue, SimVenueConfig
from tickwise.venues.sim.server.serve import ServerSpec


@dataclass
class World:
    """Everything a run is built from, prepared once in the driver."""

    config: Config
    run_id: str
    registry: InstrumentRegistry
    book: ClientBook
    portfolios: list[Portfolio]
    allocator_books: list[ClientBook]
    allocator_bounds: npt.NDArray[np.int64]
    shard_of_instrument: npt.NDArray[np.int64]
    strategies: dict[AssetClass, tuple[str, npt.NDArray[np.float64]]]
    store: Store = field(repr=False)
    # Per instrument, the parameters the tuner last swapped in (any earlier run) when tuning is
    # on: a restarted tickwise trades what it had tuned, not the configured defaults.
    tuned: dict[int, npt.NDArray[np.float64]] = field(default_factory=dict)

    # -- factories handed to actors ------------------------------------------------------

    @property
    def make_source(self) -> Callable[[], MarketGenerator]:
        m = self.config.market
        gen_config = GeneratorConfig(tick_rate=m.tick_rate)
        return partial(MarketGenerator, self.registry, gen_config, self.config.run.seed)

    @property
    def make_validator(self) -> Callable[[], TickValidator]:
        return partial(TickValidator, len(self.registry))

    @property
    def make_store(self) -> Callable[[], Store]:
        return partial(open_store, self.config.store.url)

    @property
    def make_ledger(self) -> Callable[[], Ledger]:
        return partial(Ledger, self.book.client_id.copy(), self.book.equity.copy())

    def allocator_factory(self, index: int) -> Callable[[], Allocator]:
        r = self.config.risk
        cfg = AllocatorConfig(
            rebalance_band=self.config.allocation.rebalance_band,
            price_band_pct=r.price_band_pct,
            price_band_confirmations=r.price_band_confirmations,
            max_quote_age_ms=r.max_quote_age_ms,
            max_daily_loss_pct=r.max_daily_loss_pct,
        )
        return partial(Allocator, self.allocator_books[index], self.portfolios, self.registry, cfg)

    def journal_factory(self) -> Callable[[], Journal]:
        return partial(_make_journal, self.config.store.url, self.run_id)

    def shard_factory(self, shard: int) -> Callable[[], StrategyShard]:
        mine = np.flatnonzero(self.shard_of_instrument == shard)
        choices = [self._strategy_of(int(i)) for i in mine]
        names = [name for name, _ in choices]
        params = [vec for _, vec in choices]
        return partial(StrategyShard, mine, names, params)

    def tuner_factory(self) -> Callable[[], Tuner]:
        """The tuner of every instrument, starting from the parameters the shards start with."""
        t = self.config.tuning
        groups: dict[str, tuple[list[int], list[npt.NDArray[np.float64]]]] = {}
        for i in range(len(self.registry)):
            name, vec = self._strategy_of(i)
            members, params = groups.setdefault(name, ([], []))
            members.append(i)
            params.append(vec)
        strategies = {n: (np.array(m), np.stack(p)) for n, (m, p) in groups.items()}
        search = {}
        for cls, text in (
            (AssetClass.EQUITY, t.search_equity),
            (AssetClass.CRYPTO, t.search_crypto),
        ):
            if text:
                search[self.strategies[cls][0]] = text
        cfg = TunerConfig(
            every_s=t.every_s,
            every_ticks=t.every_ticks,
            batch=t.batch,
            sets=t.sets,
            search=search,
            seed=self.config.run.seed,
            device=t.device,
            sample_s=t.sample_s,
            walk=WalkForwardConfig(
                train_s=t.train_s,
                valid_s=t.valid_s,
                warmup_s=t.warmup_s,
                objective=t.objective,
                turnover_penalty=t.turnover_penalty,
                margin=t.margin,
                min_trades=t.min_trades,
                min_ticks=t.min_ticks,
            ),
        )
        return partial(
            make_tuner, self.config.store.url, self.registry, strategies, cfg, self.run_id
        )

    def router_specs(self) -> dict[Venue, list[Callable[[], SimVenue]]]:
        """One venue simulator per (venue, lane); a lane is `client % routers_per_venue`."""
        lanes = self.config.engine.routers_per_venue
        v = self.config.venues
        specs: dict[Venue, list[Callable[[], SimVenue]]] = {}
        for venue in Venue:
            at_venue = self.book.venue == venue
            if not at_venue.any():
                continue
            specs[venue] = []
            for lane in range(lanes):
                rows = np.flatnonzero(at_venue & (self.book.client_id % lanes == lane))
                sim_config = SimVenueConfig(ack_delay_ms=v.delay_ms(venue), jitter_ms=v.jitter_ms)
                specs[venue].append(
                    partial(
                        SimVenue,
                        venue,
                        self.registry,
                        self.book.client_id[rows].copy(),
                        self.book.equity[rows].copy(),
                        sim_config,
                        self.config.run.seed + 101 * int(venue) + lane,
                    )
                )
        return specs

    # -- recovery ------------------------------------------------------------------------

    @property
    def persistent_venues(self) -> frozenset[Venue]:
        """Venues whose books outlive a run: live ones, and simulator servers at a configured
        URL. An in-process simulator, or a server this run starts, begins empty each run, so
        only this run's fills describe what its accounts hold."""
        v = self.config.venues
        if v.mode == "live":
            return frozenset(Venue)
        if v.mode == "http":
            return frozenset(venue for venue in Venue if v.url(venue))
        return frozenset()

    def fill_history(self, index: int | None = None) -> Callable[[], ExecutionBatch]:
        """The recorded fills that make up what the clients hold (of allocator `index`'s range,
        or of everyone): this run's, and earlier runs' at persistent venues."""
        clients = self.book.client_id if index is None else self.allocator_books[index].client_id
        at = np.isin(self.book.venue, [int(v) for v in self.persistent_venues])
        lasting = np.intersect1d(clients, self.book.client_id[at])
        return partial(
            recorded_fills, self.config.store.url, self.run_id, clients.copy(), lasting.copy()
        )

    def range_unanswered(self, index: int) -> Callable[[], OrderBatch]:
        """For an allocator Ray restarts: its clients' orders of this run without a final answer."""
        return partial(
            unanswered_orders_of,
            self.config.store.url,
            self.run_id,
            self.allocator_books[index].client_id.copy(),
        )

    def throttle_factory(self, venue: Venue) -> Callable[[], VenueThrottle | None]:
        """Each router lane's share of the desk's order-rate cap at `venue` (none when 0)."""
        r, lanes = self.config.risk, self.config.engine.routers_per_venue
        rate = r.max_orders_per_s(venue)
        if rate <= 0:
            return _no_throttle
        return partial(VenueThrottle, rate / lanes, max(1.0, r.order_burst(venue) / lanes))

    def portfolio_members(self) -> dict[int, tuple[frozenset[int], frozenset[int]]]:
        """Portfolio id -> (its instruments, the clients subscribed to it): the scope of a
        per-portfolio halt, for the routers that cancel open orders on one."""
        return {
            int(p.portfolio_id): (
                frozenset(int(i) for i in p.instruments),
                frozenset(
                    int(c) for c in self.book.sub_client[self.book.sub_portfolio == p.portfolio_id]
                ),
            )
            for p in self.portfolios
        }

    def router_name(self, venue: Venue, lane: int) -> str:
        """A router's Ray actor name: allocators find routers by name (even after a restart)."""
        return f"tickwise-{self.run_id}-router-{venue.label}-{lane}"

    def router_names(self) -> dict[int, list[str]]:
        lanes = self.config.engine.routers_per_venue
        return {
            int(venue): [self.router_name(venue, lane) for lane in range(lanes)]
            for venue in Venue
            if (self.book.venue == venue).any()
        }

    def lane_unanswered(self, venue: Venue, lane: int) -> Callable[[], OrderBatch]:
        """For a router Ray restarts: its lane's orders of this run without a final answer."""
        lanes = self.config.engine.routers_per_venue
        return partial(
            unanswered_orders, self.config.store.url, self.run_id, int(venue), lane, lanes
        )

    def lanes_of(self, orders: OrderBatch) -> dict[tuple[Venue, int], OrderBatch]:
        """`orders` split by the (venue, router lane) that sends them."""
        lanes = self.config.engine.routers_per_venue
        key = orders.venue.astype(np.int64) * lanes + orders.client % lanes
        return {
            (Venue(int(k) // lanes), int(k) % lanes): orders.take(np.flatnonzero(key == k))
            for k in np.unique(key)
        }

    def server_specs(self) -> dict[Venue, ServerSpec]:
        """A simulator server per venue with clients and no configured URL (`--venues http`)."""
        v = self.config.venues
        specs: dict[Venue, ServerSpec] = {}
        for venue in Venue:
            at_venue = self.book.venue == venue
            if not at_venue.any() or self.config.venues.url(venue):
                continue
            specs[venue] = ServerSpec(
                venue=venue,
                registry=self.registry,
                clients=self.book.client_id[at_venue].astype(np.int32),
                cash=self.book.equity[at_venue].astype(np.float64),
                ack_delay_ms=v.delay_ms(venue),
                network_delay_ms=v.network_delay_ms,
                faults=v.faults,
                rate_limits=v.rate_limits,
                tick_rate=None,  # the run's feed is the market
                seed=self.config.run.seed + int(venue),
            )
        return specs

    def venue_endpoints(self, started: dict[Venue, dict[str, str]]) -> dict[Venue, VenueEndpoint]:
        """Where each venue with clients is: a server this run started, a configured URL, or
        (live) the venue's paper host."""
        live = self.config.venues.mode == "live"
        endpoints: dict[Venue, VenueEndpoint] = {}
        for venue in Venue:
            if not (self.book.venue == venue).any():
                continue
            url = self.config.venues.url(venue)
            if venue in started:
                endpoints[venue] = simulator_endpoint(venue, started[venue]["url"])
            elif url and not live:
                endpoints[venue] = simulator_endpoint(venue, url)
            elif url:
                base = LIVE_ENDPOINTS[venue]
                endpoints[venue] = VenueEndpoint(venue, url, base.stream_url, simulated=False)
            elif live:
                endpoints[venue] = LIVE_ENDPOINTS[venue]
            else:
                raise ConfigError(f"[venues] no simulator server for {venue.label}")
        return endpoints

    def network_router_specs(
        self, endpoints: dict[Venue, VenueEndpoint]
    ) -> dict[Venue, list[Callable[[], Any]]]:
        """One network adapter per (venue, lane), built in the router's own process."""
        lanes = self.config.engine.routers_per_venue
        specs: dict[Venue, list[Callable[[], Any]]] = {}
        for venue, endpoint in endpoints.items():
            at_venue = self.book.venue == venue
            specs[venue] = [
                partial(
                    connect_venue,
                    endpoint,
                    self.registry,
                    self.book.client_id[at_venue & (self.book.client_id % lanes == lane)].copy(),
                    self.config.store.url,
                    self.config.venues.rate_limits,
                )
                for lane in range(lanes)
            ]
        return specs

    # -- driver-side ---------------------------------------------------------------------

    def _strategy_of(self, instrument: int) -> tuple[str, npt.NDArray[np.float64]]:
        name, vec = self.strategies[self.registry[instrument].asset_class]
        return name, self.tuned.get(instrument, vec)

    def shard_restore(self, shard: int) -> Callable[[], dict[int, npt.NDArray[np.float64]]]:
        """For a shard Ray restarts: the parameters swapped in since the run began (from the
        audit trail, which the tuner writes every few seconds), so the shard resumes trading
        what the tuner chose rather than what it started with."""
        if not self.config.tuning.enabled:
            return dict
        mine = np.flatnonzero(self.shard_of_instrument == shard)
        names = {int(i): self._strategy_of(int(i))[0] for i in mine}
        return partial(tuned_params, self.config.store.url, self.registry, names)

    def store_checks(self) -> dict[str, Any]:
        stats = self.store.order_stats(self.run_id)
        return {"duplicate_client_order_ids": int(stats.get("duplicate_client_order_ids", 0))}

    def finish_run(self, summary: dict[str, Any]) -> None:
        self.store.finish_run(self.run_id, json.dumps(summary, default=float))

    def close(self) -> None:
        self.store.close()


def ensure_simulator_credentials(store: Store, book: ClientBook) -> int:
    """Make sure every client at Binance and E*Trade has simulator credentials in the store,
    sealed under the current master key (re-sealed when the key changed); returns rows written.
    Alpaca clients trade through the firm's Broker API key and need none."""
    vault = CredentialVault(MasterKey.from_env())
    written = 0
    for venue in (Venue.BINANCE, Venue.ETRADE):
        clients = book.client_id[book.venue == venue]
        if clients.size == 0:
            continue
        rows = store.load_credentials(clients, venue)
        current = len(rows) == clients.size and all(
            r.master_key_id == vault.current_key_id for r in rows
        )
        if not current:
            written += seed_demo_credentials(store, vault, clients, venue)
    return written


def venue_summary(
    config: Config, routers: Sequence[dict[str, Any]], servers: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """How orders reached the venues: the mode, each adapter's counters, each server's."""
    adapters: dict[str, int] = {}
    for r in routers:
        for key, value in r.get("venue", {}).items():
            if isinstance(value, int | float):
                adapters[key] = adapters.get(key, 0) + int(value)
    return {"mode": config.venues.mode, "adapters": adapters, "servers": list(servers)}


def make_tuner(
    url: str,
    registry: InstrumentRegistry,
    strategies: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]],
    config: TunerConfig,
    run_id: str,
) -> Tuner:
    """The tuner, its live parameters overlaid with the latest swaps in the audit trail: at
    start those of earlier runs (as the shards start), after a restart this run's too."""
    names = {int(i): name for name, (members, _) in strategies.items() for i in members}
    swapped = tuned_params(url, registry, names)
    live = {}
    for name, (members, params) in strategies.items():
        params = params.copy()
        for row, instrument in enumerate(members):
            if int(instrument) in swapped:
                params[row] = swapped[int(instrument)]
        live[name] = (members, params)
    return Tuner(registry, live, config, None, run_id)


def tuned_params(
    url: str, registry: InstrumentRegistry, strategies: dict[int, str]
) -> dict[int, npt.NDArray[np.float64]]:
    """The latest swapped-in parameters of each instrument in `strategies` (instrument ->
    strategy name) that the audit trail holds for that strategy; instruments never swapped are
    left out."""
    store = open_store(url)
    try:
        current = store.current_params()
    finally:
        store.close()
    out: dict[int, npt.NDArray[np.float64]] = {}
    for instrument, name in strategies.items():
        row = current.get(registry[instrument].symbol)
        if row is None or row.strategy != name or row.swapped_at_ns is None:
            continue
        spec = get_strategy(name)
        try:  # parameters of another version of the strategy do not carry over
            out[instrument] = spec.validate(np.asarray(row.values, dtype=np.float64))
        except (ValueError, KeyError):
            continue
    return out


def _no_throttle() -> None:
    return None


def unanswered_orders(url: str, run_id: str, venue: int, lane: int, lanes: int) -> OrderBatch:
    """One router lane's orders of a run that the journal holds without a venue answer."""
    orders = _unanswered(url, run_id)
    return orders.take(np.flatnonzero((orders.venue == venue) & (orders.client % lanes == lane)))


def unanswered_orders_of(url: str, run_id: str, clients: npt.NDArray[np.int32]) -> OrderBatch:
    """`clients`' orders of a run that the journal holds without a venue answer."""
    orders = _unanswered(url, run_id)
    return orders.take(np.flatnonzero(np.isin(orders.client, clients)))


def _unanswered(url: str, run_id: str) -> OrderBatch:
    store = open_store(url)
    try:
        return store.unsettled_orders(run_id)
    finally:
        store.close()


def recorded_fills(
    url: str, run_id: str, clients: npt.NDArray[np.int32], lasting: npt.NDArray[np.int32]
) -> ExecutionBatch:
    """The fills of `clients` in run `run_id`, and of `lasting` clients (at venues whose books
    outlive a run) in every run, in the order they were recorded."""
    store = open_store(url)
    try:
        this_run = store.recorded_fills(run_id)
        earlier = store.recorded_fills() if lasting.size else ExecutionBatch.empty()
    finally:
        store.close()
    mine = this_run.take(np.flatnonzero(np.isin(this_run.client, clients)))
    kept = earlier.take(
        np.flatnonzero(
            np.isin(earlier.client, lasting)
            & ~np.isin(earlier.client_order_id, mine.client_order_id)
        )
    )
    return ExecutionBatch.concat([kept, mine])


def _make_journal(url: str, run_id: str) -> Journal:
    return Journal(open_store(url).on_order_path(), run_id)


def strategy_choice(name: str, overrides: str) -> tuple[str, npt.NDArray[np.float64]]:
    """The strategy `name` with its defaults changed by "param=value,..." (checked now)."""
    try:
        spec = get_strategy(name)
    except KeyError as exc:
        raise ConfigError(f"[strategy] {exc.args[0]}") from None
    values: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in overrides.split(","))):
        key, sep, text = item.partition("=")
        try:
            values[key.strip()] = float(text)
        except ValueError:
            sep = ""
        if not sep:
            raise ConfigError(f"[strategy] {name} params: {item!r} is not name=number")
    try:
        return name, spec.validate(spec.params.from_mapping(values))
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"[strategy] {name} params: {exc}") from None


def prepare_world(config: Config, run_id: str) -> World:
    """Build the universe, make sure the store holds the configured clients, split the work."""
    strategies = {
        AssetClass.EQUITY: strategy_choice(config.strategy.equity, config.strategy.equity_params),
        AssetClass.CRYPTO: strategy_choice(config.strategy.crypto, config.strategy.crypto_params),
    }
    registry = build_universe(config.market.stocks, config.market.crypto, seed=config.run.seed)
    store = open_store(config.store.url)
    store.save_instruments(registry)
    portfolios = list(store.load_portfolios())
    has_core = any(p.name.startswith(CORE_PREFIX) for p in portfolios)
    if store.client_count() != config.clients.count or has_core != config.clients.all_follow:
        seed_clients(
            store,
            registry,
            config.clients.count,
            config.clients.seed,
            all_follow_portfolio=config.clients.all_follow,
        )
        portfolios = list(store.load_portfolios())
    book = store.load_client_book()
    if config.venues.mode == "http":
        ensure_simulator_credentials(store, book)
    store.start_run(run_id, json.dumps(config.to_dict()))
    n_alloc = min(config.engine.allocators, len(book))
    chunks = np.array_split(np.arange(len(book)), n_alloc)
    allocator_books = [book.select(book.client_id[c]) for c in chunks]
    bounds = np.array([book.client_id[c[0]] for c in chunks], dtype=np.int64)
    shards = config.engine.strategy_shards
    shard_of = np.arange(len(registry), dtype=np.int64) % shards
    tuned: dict[int, npt.NDArray[np.float64]] = {}
    if config.tuning.enabled:
        names = {i: strategies[registry[i].asset_class][0] for i in range(len(registry))}
        tuned = tuned_params(config.store.url, registry, names)
    return World(
        config=config,
        run_id=run_id,
        registry=registry,
        book=book,
        portfolios=portfolios,
        allocator_books=allocator_books,
        allocator_bounds=bounds,
        shard_of_instrument=shard_of,
        strategies=strategies,
        store=store,
        tuned=tuned,
    )


def reconcile(
    world: World, ledger_book: Any, venue_books: Sequence[Any], unread: Sequence[str] = ()
) -> dict[str, Any]:
    """The ledger against the venues' books; with a book `unread`, nothing is compared (a
    missing book would read as every position of its clients gone) and mismatches are None."""
    if unread:
        return {
            "clients_checked": 0,
            "position_mismatches": None,
            "examples": [],
            "venue_books_unread": list(unread),
        }
    report = reconcile_positions(ledger_book, venue_books)
    return {
        "clients_checked": int(report.clients_checked),
        "position_mismatches": int(report.position_mismatches),
        "examples": [list(map(float, m)) for m in report.mismatches[:5]],
        "venue_books_unread": [],
    }
