"""The tradable universe: ~1,000 US stocks and ~150 crypto pairs, built deterministically.

Stocks come first (indexes 0..n_stocks-1), then crypto pairs. Well-known names keep their real
tickers and trade near their real price level; the rest get synthetic tickers and prices drawn
from the seed. Every number here is reproducible from `(n_stocks, n_crypto, seed)` alone, so a
restarted process, a test and a benchmark all see the same universe.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import numpy.typing as npt

from tickwise.model.instruments import AssetClass, Instrument, InstrumentRegistry

# (ticker, price level in USD): liquid US names near their real levels, most active first.
FAMOUS_STOCKS: tuple[tuple[str, float], ...] = (
    ("SPY", 520.0), ("QQQ", 440.0), ("AAPL", 190.0), ("MSFT", 420.0), ("NVDA", 120.0),
    ("AMZN", 180.0), ("TSLA", 180.0), ("META", 480.0), ("GOOGL", 170.0), ("BAC", 38.0),
    ("AMD", 160.0), ("IWM", 205.0), ("F", 12.0), ("INTC", 31.0), ("T", 17.0),
    ("JPM", 198.0), ("XOM", 115.0), ("PFE", 28.0), ("C", 62.0), ("WFC", 58.0),
    ("AIG", 75.0), ("IBM", 170.0), ("KO", 62.0), ("DIS", 100.0), ("CSCO", 48.0),
    ("VZ", 40.0), ("NFLX", 620.0), ("BA", 180.0), ("GE", 160.0), ("UBER", 70.0),
    ("NKE", 92.0), ("WMT", 65.0), ("JNJ", 150.0), ("PG", 165.0), ("MRK", 128.0),
    ("CVX", 158.0), ("ORCL", 125.0), ("GS", 460.0), ("MS", 98.0), ("HD", 345.0),
    ("MCD", 260.0), ("SBUX", 78.0), ("PYPL", 63.0), ("COIN", 230.0), ("PLTR", 22.0),
    ("SOFI", 7.0), ("GM", 45.0), ("V", 275.0), ("MA", 455.0), ("UNH", 495.0),
    ("EEM", 42.0), ("USO", 78.0),
)  # fmt: skip

# (base asset, price level in USD) for the canonical "BASE/USD" pairs, most active first.
FAMOUS_CRYPTO: tuple[tuple[str, float], ...] = (
    ("BTC", 60_000.0), ("ETH", 3_000.0), ("SOL", 150.0), ("BNB", 550.0), ("XRP", 0.55),
    ("DOGE", 0.12), ("ADA", 0.40), ("AVAX", 28.0), ("LINK", 13.0), ("DOT", 6.0),
    ("LTC", 70.0), ("BCH", 380.0), ("TRX", 0.13), ("MATIC", 0.55), ("SHIB", 0.00002),
    ("UNI", 7.5), ("ATOM", 6.5), ("XLM", 0.09), ("ETC", 21.0), ("NEAR", 5.0),
    ("APT", 7.0), ("ARB", 0.75), ("OP", 1.6), ("FIL", 4.0), ("AAVE", 95.0),
    ("ALGO", 0.13), ("SAND", 0.28), ("MANA", 0.30), ("AXS", 5.0), ("CRV", 0.30),
)  # fmt: skip

STOCK_TICK_SIZE = 0.01
STOCK_MIN_NOTIONAL = 1.0
FRACTIONAL_LOT = 1e-9
CRYPTO_MIN_NOTIONAL = 5.0
FRACTIONABLE_SHARE = 0.9
STOCK_PRICE_RANGE = (5.0, 500.0)
CRYPTO_PRICE_RANGE = (0.05, 60_000.0)
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_PRICE_OF = {sym: px for sym, px in FAMOUS_STOCKS} | {
    f"{base}/USD": px for base, px in FAMOUS_CRYPTO
}


def _unit(symbol: str, seed: int, salt: str) -> float:
    """A deterministic draw in [0, 1) for one symbol, independent of where it sits in a list."""
    return zlib.crc32(f"{salt}:{seed}:{symbol}".encode()) / 2.0**32


def reference_price(symbol: str, asset_class: AssetClass, seed: int = 7) -> float:
    """The starting price of an instrument: its real level if well known, else log-uniform."""
    if symbol in _PRICE_OF:
        return _PRICE_OF[symbol]
    low, high = STOCK_PRICE_RANGE if asset_class is AssetClass.EQUITY else CRYPTO_PRICE_RANGE
    u = _unit(symbol, seed, "price")
    if asset_class is AssetClass.CRYPTO:
        u = u**1.6  # most synthetic alt-coins are cheap; a few trade in the thousands
    price = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    return round(price, 2) if asset_class is AssetClass.EQUITY else float(f"{price:.4g}")


def crypto_tick_size(price: float) -> float:
    """Price increment by price level: about five significant digits, at most one cent."""
    return min(0.01, 10.0 ** (math.floor(math.log10(price)) - 4))


def crypto_lot_size(price: float) -> float:
    """Quantity increment worth about a dollar or less: 1e-5 for BTC up to 0.01 for cheap coins."""
    return min(0.01, max(1e-5, 10.0 ** math.floor(math.log10(1.0 / price))))


def _synthetic_tickers(count: int, taken: set[str], rng: np.random.Generator) -> list[str]:
    """Unique uppercase 2-4 letter tickers (3-4 mostly), none equal to a name already taken."""
    out: list[str] = []
    seen = set(taken)
    while len(out) < count:
        length = int(rng.choice([2, 3, 3, 4, 4, 4]))
        ticker = "".join(_LETTERS[i] for i in rng.integers(0, 26, size=length))
        if ticker not in seen:
            seen.add(ticker)
            out.append(ticker)
    return out


def build_universe(n_stocks: int = 1000, n_crypto: int = 150, seed: int = 7) -> InstrumentRegistry:
    """Stocks (indexes 0..n_stocks-1) then crypto pairs, identical for identical arguments."""
    if n_stocks < 0 or n_crypto < 0:
        raise ValueError("n_stocks and n_crypto must be >= 0")
    rng = np.random.default_rng([seed, 0x5EED])
    famous_stocks = [sym for sym, _ in FAMOUS_STOCKS[:n_stocks]]
    famous_bases = [base for base, _ in FAMOUS_CRYPTO[:n_crypto]]
    taken = {sym for sym, _ in FAMOUS_STOCKS} | {base for base, _ in FAMOUS_CRYPTO}
    stock_syms = famous_stocks + _synthetic_tickers(n_stocks - len(famous_stocks), taken, rng)
    taken |= set(stock_syms)
    bases = famous_bases + _synthetic_tickers(n_crypto - len(famous_bases), taken, rng)

    items: list[Instrument] = []
    for sym in stock_syms:
        fractionable = sym in _PRICE_OF or _unit(sym, seed, "frac") < FRACTIONABLE_SHARE
        items.append(
            Instrument(
                index=len(items),
                symbol=sym,
                asset_class=AssetClass.EQUITY,
                tick_size=STOCK_TICK_SIZE,
                lot_size=FRACTIONAL_LOT if fractionable else 1.0,
                min_notional=STOCK_MIN_NOTIONAL,
                fractionable=fractionable,
            )
        )
    for base in bases:
        symbol = f"{base}/USD"
        price = reference_price(symbol, AssetClass.CRYPTO, seed)
        items.append(
            Instrument(
                index=len(items),
                symbol=symbol,
                asset_class=AssetClass.CRYPTO,
                tick_size=crypto_tick_size(price),
                lot_size=crypto_lot_size(price),
                min_notional=CRYPTO_MIN_NOTIONAL,
                fractionable=True,
            )
        )
    return InstrumentRegistry(items)


def universe_prices(registry: InstrumentRegistry, seed: int = 7) -> npt.NDArray[np.float64]:
    """Starting price per instrument index, snapped to each instrument's tick size."""
    prices = np.empty(len(registry), dtype=np.float64)
    for inst in registry:
        raw = reference_price(inst.symbol, inst.asset_class, seed)
        ticks = max(1.0, round(raw / inst.tick_size))
        prices[inst.index] = ticks * inst.tick_size
    return prices
