"""Engine configuration: embedded tier defaults, a TOML file, then command-line overrides.

Every setting has a default, so `tickwise run` works with no file. A file only names what it
changes. Anything wrong (an unknown section or key, a value of the wrong type or out of range)
raises `ConfigError` with one line that says what is wrong and where.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from tickwise.model.instruments import Venue


class ConfigError(ValueError):
    """A configuration problem, phrased for the person who wrote the config."""


@dataclass(frozen=True, slots=True)
class RunConfig:
    tier: str = "dev"
    duration_s: float = 60.0
    seed: int = 7
    summary_json: str = ""
    live_panel: bool = True


@dataclass(frozen=True, slots=True)
class MarketConfig:
    stocks: int = 1000
    crypto: int = 150
    tick_rate: float = 20_000.0
    batch_interval_ms: float = 5.0
    malformed_fraction: float = 0.0
    burst_at_s: float = -1.0
    burst_multiplier: float = 5.0
    burst_duration_s: float = 1.0


@dataclass(frozen=True, slots=True)
class ClientsConfig:
    """`all_follow`: every client also follows a core portfolio its venue trades, so one
    signal on a core instrument fans out to every client (the fan-out stress of `tickwise
    bench`; seeding only, so a store seeded without it is seeded again)."""

    count: int = 30_000
    seed: int = 11
    all_follow: bool = False


@dataclass(frozen=True, slots=True)
class StrategyConfig:
    """Strategy family per asset class, parameter overrides ("name=value,..."), and warm-up.

    Before going live, every strategy state is warmed on `warmup_s` seconds of market history
    (generated, or the tick store's window), so the first live signal reflects a warm state.
    """

    equity: str = "trend"
    crypto: str = "trend"
    equity_params: str = ""
    crypto_params: str = ""
    warmup_s: float = 300.0


@dataclass(frozen=True, slots=True)
class AllocationConfig:
    rebalance_band: float = 0.0025


@dataclass(frozen=True, slots=True)
class VenueSimConfig:
    """Where orders go and how the simulated venues behave.

    `mode`: "inproc" (simulated venues inside the router actors), "http" (the venues' real wire
    protocols to simulator servers: started by the run itself, or the ones at `*_url`), or
    "live" (the real venues, paper-trading hosts unless `*_url` says otherwise; credentials from
    the encrypted store opened with the master key in the environment, see docs/venues.md).
    """

    mode: str = "inproc"
    alpaca_delay_ms: float = 15.0
    binance_delay_ms: float = 8.0
    etrade_delay_ms: float = 40.0
    jitter_ms: float = 2.0
    alpaca_url: str = ""
    binance_url: str = ""
    etrade_url: str = ""
    network_delay_ms: float = 0.0
    faults: str = ""
    rate_limits: bool = False

    def delay_ms(self, venue: Venue) -> float:
        """The simulated acknowledgement delay of `venue`."""
        return {
            Venue.ALPACA: self.alpaca_delay_ms,
            Venue.BINANCE: self.binance_delay_ms,
            Venue.ETRADE: self.etrade_delay_ms,
        }[venue]

    def url(self, venue: Venue) -> str:
        """The configured host of `venue` ("" when none)."""
        return {
            Venue.ALPACA: self.alpaca_url,
            Venue.BINANCE: self.binance_url,
            Venue.ETRADE: self.etrade_url,
        }[venue]


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """Pre-trade risk controls beyond each client's own limits (docs/configuration.md).

    `price_band_pct`: refuse a signal whose price is more than this many percent from its
    instrument's last accepted price; `price_band_confirmations` consecutive refused signals
    that agree on a new level move the reference there (a real move trades again, a lone bad
    print does not). `max_quote_age_ms`: refuse a signal whose market data is older than this
    (the feed's clock: generated and replayed ticks are stamped with the wall clock).
    `max_daily_loss_pct`: no buys for a client whose mark-to-market loss since the start of the
    UTC day exceeds this percentage of its equity then; sells still go. `*_max_orders_per_s`:
    the desk's cap on the order rate to each venue, a token bucket holding `throttle_burst_s`
    seconds of it (at least one order). 0 disables any one of them.
    """

    price_band_pct: float = 10.0
    price_band_confirmations: int = 3
    max_quote_age_ms: float = 5_000.0
    max_daily_loss_pct: float = 5.0
    alpaca_max_orders_per_s: float = 0.0
    binance_max_orders_per_s: float = 0.0
    etrade_max_orders_per_s: float = 0.0
    throttle_burst_s: float = 1.0

    def __post_init__(self) -> None:
        for f in fields(self):
            problem = _range_problem("risk", f.name, getattr(self, f.name))
            if problem:
                raise ConfigError(f"[risk] {f.name}: {problem}")

    def max_orders_per_s(self, venue: Venue) -> float:
        """The desk's order-rate cap to `venue` (0: none)."""
        return {
            Venue.ALPACA: self.alpaca_max_orders_per_s,
            Venue.BINANCE: self.binance_max_orders_per_s,
            Venue.ETRADE: self.etrade_max_orders_per_s,
        }[venue]

    def order_burst(self, venue: Venue) -> float:
        """Orders the throttle of `venue` lets through at once: `throttle_burst_s` of its rate,
        at least one."""
        return max(1.0, self.max_orders_per_s(venue) * self.throttle_burst_s)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    address: str = ""
    strategy_shards: int = 2
    # One allocator per 2 cores: with SQLite's journal of chunks a second one only waits for
    # the first's write lock and doubles the messages (benchmarks/README.md, "Scaling").
    allocators: int = 1
    routers_per_venue: int = 1
    max_inflight_batches: int = 64
    journal_chunk: int = 65536
    drain_timeout_s: float = 30.0
    # An order journaled but never sent (its router crashed, the process was killed) is resent
    # when found if its market event is this recent; older, it is marked EXPIRED instead.
    resend_within_s: float = 5.0


@dataclass(frozen=True, slots=True)
class StoreConfig:
    url: str = "sqlite:///var/tickwise.sqlite"


@dataclass(frozen=True, slots=True)
class TicksConfig:
    """The tick store (Parquet, see docs/market-data.md) and live recording into it.

    `dir` empty means `$TICKWISE_TICKS` if set, else `ticks/` beside the SQLite store file
    (`var/ticks` with the default store), so a run pointed at a scratch store records there.
    """

    dir: str = ""
    record: bool = True
    flush_s: float = 60.0
    flush_rows: int = 500_000


@dataclass(frozen=True, slots=True)
class TuningConfig:
    """Continuous walk-forward re-tuning of every instrument (docs/tuning.md).

    Each instrument is re-tuned every `every_s` seconds or `every_ticks` new ticks, whichever
    comes first, `batch` instruments per kernel launch, over `sets` candidate parameter sets
    sampled from the strategy's search space (`search_equity` / `search_crypto`, "name=low:high"
    items; empty = the built-in space). The live parameters are swapped only when the winner's
    validation score beats theirs by `margin`. The tuner runs at OS priority `nice` (19 = yield
    to the live path) on `threads` numba threads (0 = all cores but one), or on a GPU when Ray has
    one.
    """

    enabled: bool = True
    every_s: float = 60.0
    every_ticks: int = 20_000
    batch: int = 64
    sets: int = 512
    train_s: float = 240.0
    valid_s: float = 60.0
    warmup_s: float = 60.0
    objective: str = "sharpe"
    turnover_penalty: float = 0.0
    margin: float = 0.5
    min_trades: int = 2
    min_ticks: int = 200
    sample_s: float = 10.0
    device: str = "auto"
    threads: int = 0
    nice: int = 19
    search_equity: str = ""
    search_crypto: str = ""


@dataclass(frozen=True, slots=True)
class DashboardConfig:
    """The web dashboard, its JSON API and `/metrics`, served by `tickwise run` (docs/dashboard.md).

    Bound to `host` (localhost unless said otherwise) on `port` (0: any free port). Every page
    and call needs the token: `$TICKWISE_DASHBOARD_TOKEN` if set, else `token` if set here, else
    one generated at start and printed once.
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8750
    token: str = ""


@dataclass(frozen=True, slots=True)
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    market: MarketConfig = field(default_factory=MarketConfig)
    clients: ClientsConfig = field(default_factory=ClientsConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    allocation: AllocationConfig = field(default_factory=AllocationConfig)
    venues: VenueSimConfig = field(default_factory=VenueSimConfig)
    risk: RiskConfig = field(default_factory=RiskConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    ticks: TicksConfig = field(default_factory=TicksConfig)
    tuning: TuningConfig = field(default_factory=TuningConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)

    @property
    def instruments(self) -> int:
        return self.market.stocks + self.market.crypto

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Every setting by section, for the run's record: secrets are never in it."""
        out = {f.name: dataclasses.asdict(getattr(self, f.name)) for f in fields(self)}
        if out["dashboard"]["token"]:
            out["dashboard"]["token"] = "(set)"
        out["store"]["url"] = redact_url(out["store"]["url"])
        return out


# Tier presets (WORKLOAD.md). A file and flags apply on top of the chosen tier.
TIERS: dict[str, dict[str, dict[str, Any]]] = {
    "tiny": {
        "run": {"tier": "tiny", "duration_s": 15.0},
        "market": {"stocks": 43, "crypto": 7, "tick_rate": 2_000.0},
        "clients": {"count": 1_000},
        # Faster trend parameters than the defaults, so a 10-20 s run trades enough to test.
        "strategy": {
            "equity_params": "fast_s=3,slow_s=15,band=0.00005,min_hold_s=3",
            "crypto_params": "fast_s=3,slow_s=15,band=0.00005,min_hold_s=3",
            "warmup_s": 60.0,
        },
        "engine": {"strategy_shards": 1, "allocators": 1},
        # Short windows and a small grid, so a 10-20 s run re-tunes every instrument.
        "tuning": {
            "every_s": 5.0,
            "sets": 64,
            "train_s": 30.0,
            "valid_s": 10.0,
            "warmup_s": 10.0,
            "min_ticks": 30,
            "sample_s": 2.0,
        },
    },
    "dev": {
        "run": {"tier": "dev", "duration_s": 60.0},
        # 20,000 ticks/s sustained and, half-way, the burst of WORKLOAD.md: 100,000 for 1 s.
        "market": {
            "stocks": 1000,
            "crypto": 150,
            "tick_rate": 20_000.0,
            "burst_at_s": 30.0,
            "burst_multiplier": 5.0,
            "burst_duration_s": 1.0,
        },
        "clients": {"count": 30_000},
    },
    # One 16-core node (+ a GPU when there is one): the venues' wire protocols to simulator
    # servers with network delay, 50,000 ticks/s and the open's burst of 250,000 for 1 s.
    "seed": {
        "run": {"tier": "seed", "duration_s": 300.0},
        "market": {
            "stocks": 1000,
            "crypto": 150,
            "tick_rate": 50_000.0,
            "burst_at_s": 60.0,
            "burst_multiplier": 5.0,
            "burst_duration_s": 1.0,
        },
        "clients": {"count": 30_000},
        "venues": {"mode": "http", "network_delay_ms": 1.0},
        "engine": {"strategy_shards": 4, "allocators": 4, "routers_per_venue": 2},
    },
}

_RANGES: dict[tuple[str, str], tuple[float, float]] = {
    ("tuning", "every_s"): (1.0, 86_400.0),
    ("tuning", "every_ticks"): (1, 10**12),
    ("tuning", "batch"): (1, 100_000),
    ("tuning", "sets"): (1, 1_000_000),
    ("tuning", "train_s"): (1.0, 30 * 86_400.0),
    ("tuning", "valid_s"): (1.0, 30 * 86_400.0),
    ("tuning", "warmup_s"): (0.0, 30 * 86_400.0),
    ("tuning", "margin"): (0.0, 1e6),
    ("tuning", "turnover_penalty"): (0.0, 1e6),
    ("tuning", "min_trades"): (0, 10**9),
    ("tuning", "min_ticks"): (1, 10**12),
    ("tuning", "sample_s"): (0.001, 86_400.0),
    ("tuning", "threads"): (0, 1024),
    ("tuning", "nice"): (0, 19),
    ("run", "duration_s"): (0.1, 7 * 86_400),
    ("market", "stocks"): (0, 8000),
    ("market", "crypto"): (0, 8000),
    ("market", "tick_rate"): (1.0, 5_000_000.0),
    ("market", "batch_interval_ms"): (0.5, 1000.0),
    ("market", "malformed_fraction"): (0.0, 0.5),
    ("market", "burst_multiplier"): (1.0, 100.0),
    ("market", "burst_duration_s"): (0.0, 3600.0),
    ("clients", "count"): (1, 1_679_615),
    ("allocation", "rebalance_band"): (0.0, 0.5),
    ("strategy", "warmup_s"): (0.0, 86_400.0),
    ("engine", "strategy_shards"): (1, 256),
    ("engine", "allocators"): (1, 256),
    ("engine", "routers_per_venue"): (1, 64),
    ("engine", "max_inflight_batches"): (1, 10_000),
    ("engine", "journal_chunk"): (1, 1_000_000),
    ("engine", "drain_timeout_s"): (0.0, 3600.0),
    ("venues", "network_delay_ms"): (0.0, 10_000.0),
    ("ticks", "flush_s"): (0.1, 86_400.0),
    ("ticks", "flush_rows"): (1, 100_000_000),
    ("risk", "price_band_pct"): (0.0, 1000.0),
    ("risk", "price_band_confirmations"): (1, 1000),
    ("risk", "max_quote_age_ms"): (0.0, 86_400_000.0),
    ("risk", "max_daily_loss_pct"): (0.0, 100.0),
    ("risk", "alpaca_max_orders_per_s"): (0.0, 10_000_000.0),
    ("risk", "binance_max_orders_per_s"): (0.0, 10_000_000.0),
    ("risk", "etrade_max_orders_per_s"): (0.0, 10_000_000.0),
    ("risk", "throttle_burst_s"): (0.0, 3600.0),
    ("dashboard", "port"): (0, 65535),
}
_CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("run", "tier"): tuple(TIERS),
    ("venues", "mode"): ("inproc", "http", "live"),
    ("tuning", "device"): ("auto", "cpu", "gpu"),
    ("tuning", "objective"): ("sharpe", "sortino", "return_drawdown", "return"),
}


def _range_problem(section: str, key: str, value: Any) -> str:
    """What is wrong with `value` against the range of [section] key ("" when nothing)."""
    bounds = _RANGES.get((section, key))
    if bounds and not bounds[0] <= value <= bounds[1]:
        return f"{value!r} is out of range [{bounds[0]}, {bounds[1]}]"
    return ""


def _coerce(where: str, value: Any, annotation: Any) -> Any:
    if annotation in ("float", float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise ConfigError(f"{where}: expected a finite number, got {_short(value)}")
        return number
    if annotation in ("int", int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation in ("bool", bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if annotation in ("str", str):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported setting type {annotation!r}")  # pragma: no cover


def _short(value: Any) -> str:
    """A value for an error message, cut short (a number may have hundreds of digits)."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _apply_section(section: Any, name: str, values: Mapping[str, Any], source: str) -> Any:
    known = {f.name: f for f in fields(section)}
    changes: dict[str, Any] = {}
    for key, value in values.items():
        where = f"{source}: [{name}] {key}"
        if key not in known:
            raise ConfigError(f"{where}: unknown setting (known: {', '.join(sorted(known))})")
        coerced = _coerce(where, value, known[key].type)
        problem = _range_problem(name, key, coerced)
        if problem:
            raise ConfigError(f"{where}: {problem}")
        choices = _CHOICES.get((name, key))
        if choices and coerced not in choices:
            raise ConfigError(f"{where}: {coerced!r} is not one of {', '.join(choices)}")
        changes[key] = coerced
    return replace(section, **changes)


def apply(config: Config, overrides: Mapping[str, Any], source: str) -> Config:
    """Apply {section: {key: value}} to `config`; `source` names where they came from."""
    sections = {f.name for f in fields(config)}
    changes: dict[str, Any] = {}
    for name, values in overrides.items():
        if name not in sections:
            raise ConfigError(
                f"{source}: unknown section [{name}] (known: {', '.join(sorted(sections))})"
            )
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: [{name}] must be a table of settings")
        changes[name] = _apply_section(getattr(config, name), name, values, source)
    return replace(config, **changes)


def redact_url(url: str) -> str:
    """`url` with the password of its user part hidden ("postgresql://u:***@host/db"), fit to
    print or record."""
    scheme, sep, rest = url.partition("://")
    user, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in user:
        return url
    return f"{scheme}://{user.split(':', 1)[0]}:***@{host}"


def load(
    path: str | Path | None = None,
    tier: str | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Defaults, then the tier preset, then the TOML file, then command-line overrides."""
    file_values: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            file_values = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{p}: config file not found") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{p}: not UTF-8 text (byte {exc.start})") from None
        except OSError as exc:
            raise ConfigError(f"{p}: cannot be read: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from None
        for name, values in file_values.items():
            if not isinstance(values, Mapping):
                raise ConfigError(f"{p}: {name} must be a [{name}] table of settings")
    chosen = tier or file_values.get("run", {}).get("tier") or "dev"
    if not isinstance(chosen, str) or chosen not in TIERS:
        raise ConfigError(f"tier {_short(chosen)} is not one of {', '.join(TIERS)}")
    config = apply(Config(), TIERS[chosen], f"tier {chosen}")
    if file_values:
        config = apply(config, file_values, str(path))
    if overrides:
        config = apply(config, {k: v for k, v in overrides.items() if v}, "command line")
    if tier:
        config = replace(config, run=replace(config.run, tier=tier))
    if config.instruments == 0:
        raise ConfigError("market: at least one instrument is needed (stocks + crypto > 0)")
    if config.venues.faults:
        from tickwise.venues.sim.faults import FaultPlan, FaultPlanError

        try:
            FaultPlan.parse(config.venues.faults)
        except FaultPlanError as exc:
            raise ConfigError(f"[venues] faults: {exc}") from None
    return config


def scale_instruments(config: Config, total: int) -> Config:
    """Keep the stock/crypto proportion of `config` while changing the instrument count."""
    if total < 1:
        raise ConfigError(f"--instruments must be >= 1, got {total}")
    share = config.market.crypto / max(1, config.instruments)
    crypto = min(total - 1, round(total * share)) if total > 1 else 0
    return replace(config, market=replace(config.market, stocks=total - crypto, crypto=crypto))


DEFAULT_TICKS_DIR = "var/ticks"


def ticks_dir(config: Config, explicit: str | None = None) -> Path:
    """Where the tick store lives: `explicit` (a flag), else `[ticks] dir`, else
    `$TICKWISE_TICKS`, else `ticks/` beside the SQLite store file, else `var/ticks`."""
    for choice in (explicit, config.ticks.dir, os.environ.get("TICKWISE_TICKS")):
        if choice:
            return Path(choice)
    url = config.store.url
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    if path and "://" not in path and path != ":memory:":
        return Path(path).parent / "ticks"
    return Path(DEFAULT_TICKS_DIR)
