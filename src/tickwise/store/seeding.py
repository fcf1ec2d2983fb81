"""Deterministic synthetic clients, accounts and model portfolios (WORKLOAD.md, "Clients and
portfolios").

The universe is drawn column-wise with numpy from one seed, so 30,000 clients take well under a
second and the same seed always gives the same book. Portfolio sizes adapt to the registry: a
registry with 43 stocks gets equity portfolios of 43 stocks, one without crypto gets no crypto
portfolios (and its Binance clients then hold no subscription).

With `all_follow_portfolio=True` every client also follows a "Core" portfolio its venue can
trade ("Core US Equity" for Alpaca and E*Trade, "Core Crypto" for Binance), so a signal on a
core portfolio's first instrument fans out to every client of those venues: the engine's fan-out
stress. No single instrument can reach every client, since Binance trades no stocks and E*Trade
no crypto; `core_instruments` gives one instrument per core portfolio, which together do.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from tickwise.model.clients import Account, ClientBook, Portfolio
from tickwise.model.ids import MAX_CLIENTS, AccountId, ClientId, PortfolioId
from tickwise.model.instruments import VENUE_RULES, AssetClass, InstrumentRegistry, Venue
from tickwise.store.base import ClientUniverse, Store

CORE_PREFIX = "Core "
_EQUITY_NAMES = (
    "US Large Cap Core",
    "US Growth Leaders",
    "US Value & Dividend",
    "US Technology",
    "US Quality Factor",
    "US Small & Mid Cap",
)
_CRYPTO_NAMES = ("Crypto Majors", "Crypto Broad Market")
_FIRST = np.array(
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara "  # noqa: SIM905
    "Richard Susan Joseph Jessica Thomas Sarah Charles Karen Wei Priya Carlos Ana Hiro Fatima "
    "Lukas Sofia Omar Mei".split()
)
_LAST = np.array(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "  # noqa: SIM905
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Chen Patel Kim Nguyen "
    "Schmidt Rossi Silva Tanaka Okafor".split()
)
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_LOWER_ALNUM = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789", dtype=np.uint8)
_BASE64URL = np.frombuffer(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", dtype=np.uint8
)


@dataclass(frozen=True, slots=True)
class SeedingConfig:
    """The shape of the synthetic client universe; defaults follow WORKLOAD.md."""

    alpaca_share: float = 0.55
    etrade_share: float = 0.20
    binance_share: float = 0.25
    equity_portfolios: int = 6
    crypto_portfolios: int = 2
    equity_portfolio_size: tuple[int, int] = (100, 300)
    crypto_portfolio_size: tuple[int, int] = (50, 150)
    median_equity: float = 25_000.0
    equity_sigma: float = 1.0  # of log equity
    min_equity: float = 1_000.0
    max_equity: float = 5_000_000.0
    max_subscriptions: int = 3
    invested: tuple[float, float] = (0.6, 1.0)  # range of a client's total allocation
    max_order_fraction: float = 0.25  # max order notional, as a share of equity
    max_position_weight: float = 0.20
    all_follow_portfolio: bool = False
    core_allocation: float = 0.10
    core_equity_size: int = 10
    core_crypto_size: int = 5

    def __post_init__(self) -> None:
        shares = (self.alpaca_share, self.etrade_share, self.binance_share)
        if min(shares) < 0 or abs(sum(shares) - 1.0) > 1e-9:
            raise ValueError("venue shares must be >= 0 and sum to 1")
        if not 0 < self.invested[0] <= self.invested[1] <= 1:
            raise ValueError("invested range must satisfy 0 < low <= high <= 1")
        if not 0 < self.core_allocation < 1:
            raise ValueError("core_allocation must be in (0, 1)")
        if self.max_subscriptions < 1:
            raise ValueError("max_subscriptions must be >= 1")

    @property
    def venue_shares(self) -> dict[Venue, float]:
        return {
            Venue.ALPACA: self.alpaca_share,
            Venue.ETRADE: self.etrade_share,
            Venue.BINANCE: self.binance_share,
        }


def generate_clients(
    registry: InstrumentRegistry,
    count: int = 30_000,
    seed: int = 11,
    *,
    all_follow_portfolio: bool = False,
    config: SeedingConfig | None = None,
) -> ClientUniverse:
    """A deterministic universe of `count` clients over the instruments of `registry`."""
    if not 0 < count <= MAX_CLIENTS:
        raise ValueError(f"client count must be in 1..{MAX_CLIENTS}, got {count}")
    cfg = config or SeedingConfig()
    if all_follow_portfolio:
        cfg = replace(cfg, all_follow_portfolio=True)
    rng = np.random.default_rng(seed)
    portfolios = _model_portfolios(registry, cfg, rng)
    client_id = np.arange(count, dtype=np.int32)
    venue = _venues(count, cfg, rng)
    equity = np.round(
        np.clip(
            np.exp(rng.normal(np.log(cfg.median_equity), cfg.equity_sigma, count)),
            cfg.min_equity,
            cfg.max_equity,
        ),
        2,
    )
    sub_client, sub_portfolio, sub_allocation = _subscriptions(venue, portfolios, cfg, rng)
    book = ClientBook(
        client_id=client_id,
        venue=venue,
        equity=equity,
        max_order_notional=np.round(equity * cfg.max_order_fraction, 2),
        max_position_weight=np.full(count, cfg.max_position_weight),
        sub_client=sub_client,
        sub_portfolio=sub_portfolio,
        sub_allocation=sub_allocation,
    )
    account_ids = _account_ids(venue, rng)
    accounts = tuple(
        Account(account_id=AccountId(a), client_id=ClientId(c), venue=Venue(v))
        for a, c, v in zip(account_ids, client_id.tolist(), venue.tolist(), strict=True)
    )
    names = np.char.add(
        np.char.add(_FIRST[rng.integers(0, len(_FIRST), count)], " "),
        _LAST[rng.integers(0, len(_LAST), count)],
    )
    return ClientUniverse(book, tuple(portfolios), accounts, tuple(names.tolist()))


def seed_clients(
    store: Store,
    registry: InstrumentRegistry,
    count: int = 30_000,
    seed: int = 11,
    *,
    all_follow_portfolio: bool = False,
) -> ClientUniverse:
    """Generate a universe and save it, with the instruments it refers to, into `store`."""
    universe = generate_clients(registry, count, seed, all_follow_portfolio=all_follow_portfolio)
    store.save_instruments(registry)
    store.save_clients(universe)
    return universe


def core_instruments(universe: ClientUniverse) -> tuple[int, ...]:
    """The first instrument of each core portfolio: signals on these reach every follower."""
    return tuple(
        p.instruments[0]
        for p in universe.portfolios
        if p.name.startswith(CORE_PREFIX) and p.instruments
    )


# --- portfolios --------------------------------------------------------------------------------


def _model_portfolios(
    registry: InstrumentRegistry, cfg: SeedingConfig, rng: np.random.Generator
) -> list[Portfolio]:
    plans = [
        (AssetClass.EQUITY, cfg.equity_portfolios, cfg.equity_portfolio_size, _EQUITY_NAMES),
        (AssetClass.CRYPTO, cfg.crypto_portfolios, cfg.crypto_portfolio_size, _CRYPTO_NAMES),
    ]
    portfolios: list[Portfolio] = []
    for asset_class, how_many, (low, high), names in plans:
        universe = registry.indexes_of(asset_class)
        if universe.size == 0:
            continue
        # Bigger names (lower index: the universe lists the best-known first) are likelier members.
        pick_p = 1.0 / (np.arange(universe.size) + 10.0)
        pick_p /= pick_p.sum()
        for j in range(how_many):
            size = min(int(rng.integers(low, high + 1)), universe.size)
            members = np.sort(rng.choice(universe, size=size, replace=False, p=pick_p))
            name = names[j] if j < len(names) else f"{names[-1]} {j + 1}"
            portfolios.append(_cap_weighted(len(portfolios), name, asset_class, members, rng))
    if cfg.all_follow_portfolio:
        for asset_class, size, name in (
            (AssetClass.EQUITY, cfg.core_equity_size, "US Equity"),
            (AssetClass.CRYPTO, cfg.core_crypto_size, "Crypto"),
        ):
            universe = registry.indexes_of(asset_class)
            if universe.size:
                members = universe[: min(size, universe.size)]
                portfolios.append(
                    _cap_weighted(len(portfolios), CORE_PREFIX + name, asset_class, members, rng)
                )
    return portfolios


def _cap_weighted(
    portfolio_id: int,
    name: str,
    asset_class: AssetClass,
    members: npt.NDArray[np.int64],
    rng: np.random.Generator,
) -> Portfolio:
    """Weights decaying with rank like market caps (a power law), summing to 1."""
    alpha = rng.uniform(0.6, 1.0)
    weights = (np.arange(members.size) + 1.0) ** -alpha
    weights /= weights.sum()
    return Portfolio(
        portfolio_id=PortfolioId(portfolio_id),
        name=name,
        asset_class=asset_class,
        instruments=tuple(int(i) for i in members),
        weights=tuple(float(w) for w in weights),
    )


# --- clients -----------------------------------------------------------------------------------


def _venues(count: int, cfg: SeedingConfig, rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """Venue per client with the configured shares exactly (largest remainder), shuffled."""
    venues = list(cfg.venue_shares)
    exact = np.array([cfg.venue_shares[v] for v in venues]) * count
    counts = np.floor(exact).astype(np.int64)
    short = count - int(counts.sum())
    counts[np.argsort(-(exact - counts), kind="stable")[:short]] += 1
    out = np.repeat(np.array([int(v) for v in venues], dtype=np.uint8), counts)
    return rng.permutation(out)


def _subscriptions(
    venue: npt.NDArray[np.uint8],
    portfolios: list[Portfolio],
    cfg: SeedingConfig,
    rng: np.random.Generator,
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], npt.NDArray[np.float64]]:
    """1..max_subscriptions tradable portfolios per client, allocations summing to <= 1."""
    count, n_port = venue.size, len(portfolios)
    if n_port == 0:
        return np.empty(0, np.int32), np.empty(0, np.int32), np.empty(0, np.float64)
    # tradable[v, p]: can a client at venue v trade portfolio p's asset class?
    tradable = np.array(
        [
            [VENUE_RULES[v].trades(p.asset_class) and bool(p.instruments) for p in portfolios]
            for v in sorted(Venue)
        ],
        dtype=np.bool_,
    )
    is_core = np.array([p.name.startswith(CORE_PREFIX) for p in portfolios], dtype=np.bool_)
    eligible = tradable[venue] & ~is_core
    wanted = np.minimum(rng.integers(1, cfg.max_subscriptions + 1, count), eligible.sum(axis=1))
    keys = np.where(eligible, rng.random((count, n_port)), 2.0)
    kth = np.sort(keys, axis=1)[np.arange(count), np.maximum(wanted - 1, 0)]
    chosen = eligible & (keys <= kth[:, None]) & (wanted > 0)[:, None]
    shares = np.where(chosen, rng.gamma(2.0, size=(count, n_port)), 0.0)
    totals = shares.sum(axis=1)
    invested = rng.uniform(cfg.invested[0], cfg.invested[1], count)
    alloc = shares * (invested / np.where(totals > 0, totals, 1.0))[:, None]
    if cfg.all_follow_portfolio and is_core.any():
        # The first core portfolio the venue can trade (equity before crypto).
        core_ok = tradable[venue] & is_core
        core_col = np.argmax(core_ok, axis=1)
        has_core = core_ok.any(axis=1)
        alloc *= np.where(has_core, 1.0 - cfg.core_allocation, 1.0)[:, None]
        rows = np.flatnonzero(has_core)
        alloc[rows, core_col[rows]] = cfg.core_allocation
    alloc = np.round(alloc, 6)
    alloc = np.where(alloc.sum(axis=1, keepdims=True) > 1.0, np.floor(alloc * 1e6) / 1e6, alloc)
    row, col = np.nonzero(alloc > 0)
    ids = np.array([p.portfolio_id for p in portfolios], dtype=np.int32)
    return row.astype(np.int32), ids[col], alloc[row, col]


def _account_ids(venue: npt.NDArray[np.uint8], rng: np.random.Generator) -> list[str]:
    """Venue-style account ids: an Alpaca broker account UUID, a Binance virtual sub-account
    email, an E*Trade accountIdKey."""
    n = venue.size
    # Alpaca: UUID version 4 (8-4-4-4-12 lowercase hex).
    nibbles = rng.integers(0, 16, (n, 32))
    nibbles[:, 12] = 4
    nibbles[:, 16] = 8 + (nibbles[:, 16] & 3)
    hexes = _HEX[nibbles]
    dash = np.full((n, 1), ord("-"), dtype=np.uint8)
    uuid = np.hstack(
        [
            hexes[:, :8],
            dash,
            hexes[:, 8:12],
            dash,
            hexes[:, 12:16],
            dash,
            hexes[:, 16:20],
            dash,
            hexes[:, 20:],
        ]
    )
    # Binance: "<10 lowercase alnum>_virtual@<8 hex>noemail.com".
    local = _LOWER_ALNUM[rng.integers(0, _LOWER_ALNUM.size, (n, 10))]
    domain = _HEX[rng.integers(0, 16, (n, 8))]
    email = np.hstack([local, _ascii("_virtual@", n), domain, _ascii("noemail.com", n)])
    # E*Trade: accountIdKey, 22 base64url characters.
    key = _BASE64URL[rng.integers(0, 64, (n, 22))]
    texts = {
        Venue.ALPACA: _strings(uuid),
        Venue.BINANCE: _strings(email),
        Venue.ETRADE: _strings(key),
    }
    out = np.empty(n, dtype=object)
    for v, strings in texts.items():
        mask = venue == v
        out[mask] = strings[mask]
    return out.tolist()


def _ascii(text: str, rows: int) -> npt.NDArray[np.uint8]:
    return np.tile(np.frombuffer(text.encode("ascii"), dtype=np.uint8), (rows, 1))


def _strings(chars: npt.NDArray[np.uint8]) -> npt.NDArray[np.str_]:
    width = chars.shape[1]
    return np.ascontiguousarray(chars).view(f"S{width}").ravel().astype(f"U{width}")
